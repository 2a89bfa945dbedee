/* Private to mintctl: the commands in other files, and what they share. */
#ifndef MINTCA_MINTCTL_H
#define MINTCA_MINTCTL_H

#include <stddef.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"
#include "mintca/db.h"

/* Config, store (migrated) and CA, or NULL after printing why. */
ca_ctx *ctl_open_all(const char *path, struct cfg **c, db_store **st, sig_p11 **p11);
void ctl_close_all(struct cfg *c, db_store *st, sig_p11 *p11, ca_ctx *ca);
/* A CSR file (PEM or DER) as DER; caller frees with OPENSSL_free. NULL if unreadable. */
unsigned char *ctl_read_csr(const char *path, size_t *len);

int ctl_policy_explain(int argc, char **argv);
int ctl_profile_size(int argc, char **argv);

#endif
