/* Private to server/: what mintcad's parts share. */
#ifndef MINTCA_SRV_INT_H
#define MINTCA_SRV_INT_H

#include <openssl/x509.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"

/* Every CA this server issues from: the default one (config "ca", created on
 * first start) and the "issuing_cas", each with its signer and profiles. */
typedef struct srv_cas srv_cas;

/* Open them all and hand each profile to its CA (moves the profiles and
 * credentials out of c). Caller frees with srv_cas_free(). NULL on error. */
srv_cas *srv_cas_open(struct cfg *c, db_store *st, struct ca_err *err);
void srv_cas_free(srv_cas *cas);
/* One CA with no store behind it (tests, fuzzing); takes ownership. */
srv_cas *srv_cas_wrap(ca_ctx *ca);
size_t srv_cas_count(const srv_cas *cas);
ca_ctx *srv_cas_at(const srv_cas *cas, size_t i);   /* 0 is the default CA */
ca_ctx *srv_cas_find(const srv_cas *cas, const char *name);
/* The PKCS#11 token CA i was opened from (borrowed), NULL for a file key. */
sig_p11 *srv_cas_p11(const srv_cas *cas, size_t i);
/* Where an EST label leads (RFC 7030 §3.2.2): a profile name gives its CA and
 * itself; a CA name gives that CA and its first profile (NULL when it has
 * none); no label gives the default profile. 0, or -1 when it leads nowhere. */
int srv_cas_route(const srv_cas *cas, const char *label, const char *default_profile,
		  ca_ctx **ca, const char **profile);

/* Trust for client certificates: every CA of this server (a certificate it
 * issued authenticates as anchor "<CA name>") and the configured anchors. */
typedef struct srv_trust srv_trust;

/* Caller frees with srv_trust_free(). NULL on error (a missing or empty
 * anchor file is an error naming the file). */
srv_trust *srv_trust_new(const struct cfg *c, const srv_cas *cas, struct ca_err *err);
void srv_trust_free(srv_trust *t);
/* PEM of every trusted certificate, for the TLS layer to request client
 * certificates (MHD_OPTION_HTTPS_MEM_TRUST). Borrowed. */
const char *srv_trust_pem(const srv_trust *t);
/* Verify a peer chain given as DER certificates (leaf first). On success
 * returns the leaf (caller frees with X509_free) and writes the name of the
 * anchor that verified it. NULL when it does not verify. */
X509 *srv_trust_verify(const srv_trust *t, const unsigned char *const *ders,
		       const size_t *lens, size_t n, char anchor[CA_NAME_MAX], char *why, size_t whylen);

/* The default CA, first start and every start: open the signers, create the
 * root and issuing CA certificates if the store has none (under an advisory
 * lock), and return its context with the internal server-TLS profile (no
 * other profile). On success *p11 holds the PKCS#11 token (or NULL) to close
 * after the context. */
ca_ctx *srv_open_ca(struct cfg *c, db_store *st, sig_p11 **p11, struct ca_err *err);
/* A CA of "issuing_cas": certificate and chain from the store, key from its
 * own signer. */
ca_ctx *srv_open_issuing_ca(const struct cfg_ca *cc, db_store *st, sig_p11 **p11, struct ca_err *err);
/* The chain above a CA certificate, from the store: intermediates into ca,
 * the root returned (caller frees). */
int srv_load_chain(db_store *st, const char *name, X509 **root, STACK_OF(X509) *mids, struct ca_err *err);

/* The internal profile the server's own TLS certificate is issued under. */
#define SRV_TLS_PROFILE "server.tls"

/* Make sure the TLS certificate and key files exist and are valid for at
 * least 7 more days; issue them through ca_issue() otherwise. 0 or -1. */
int srv_ensure_tls(const struct cfg *c, ca_ctx *ca, struct ca_err *err);

#endif
