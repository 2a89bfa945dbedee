/* Private to mintctl: the commands in other files, and what they share. */
#ifndef MINTCA_MINTCTL_H
#define MINTCA_MINTCTL_H

#include <stddef.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"
#include "mintca/db.h"

#include "srv_int.h"

/* Config, store (migrated) and every CA, or NULL after printing why. */
srv_cas *ctl_open_all(const char *path, struct cfg **c, db_store **st);
void ctl_close_all(struct cfg *c, db_store *st, srv_cas *cas);
/* The CA a profile issues from, or NULL after printing why. */
ca_ctx *ctl_ca_of(const srv_cas *cas, const char *profile);
/* A CSR file (PEM or DER) as DER; caller frees with OPENSSL_free. NULL if unreadable. */
unsigned char *ctl_read_csr(const char *path, size_t *len);

int ctl_policy_explain(int argc, char **argv);
int ctl_profile_size(int argc, char **argv);
int ctl_ca_init(int argc, char **argv);
int ctl_ca_create(int argc, char **argv);
int ctl_ca_import(int argc, char **argv);
int ctl_revoke(int argc, char **argv);

#endif
