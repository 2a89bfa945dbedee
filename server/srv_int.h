/* Private to server/: what mintcad's parts share. */
#ifndef MINTCA_SRV_INT_H
#define MINTCA_SRV_INT_H

#include <openssl/x509.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"

/* Trust for client certificates: this CA's root and the configured anchors. */
typedef struct srv_trust srv_trust;

/* Caller frees with srv_trust_free(). NULL on error (a missing or empty
 * anchor file is an error naming the file). */
srv_trust *srv_trust_new(const struct cfg *c, ca_ctx *ca, struct ca_err *err);
void srv_trust_free(srv_trust *t);
/* PEM of every trusted certificate, for the TLS layer to request client
 * certificates (MHD_OPTION_HTTPS_MEM_TRUST). Borrowed. */
const char *srv_trust_pem(const srv_trust *t);
/* Verify a peer chain given as DER certificates (leaf first). On success
 * returns the leaf (caller frees with X509_free) and writes the name of the
 * anchor that verified it. NULL when it does not verify. */
X509 *srv_trust_verify(const srv_trust *t, const unsigned char *const *ders,
		       const size_t *lens, size_t n, char anchor[CA_NAME_MAX], char *why, size_t whylen);

/* First start and every start: open the signers, create the root and issuing
 * CA certificates if the store has none (under an advisory lock), and return
 * the CA context with the configured profiles and the internal server-TLS
 * profile. Moves the profiles out of c. On success *p11 holds the PKCS#11
 * module (or NULL) to close after the context. */
ca_ctx *srv_open_ca(struct cfg *c, db_store *st, sig_p11 **p11, struct ca_err *err);
void srv_close_ca(ca_ctx *ca, sig_p11 *p11);

/* The internal profile the server's own TLS certificate is issued under. */
#define SRV_TLS_PROFILE "server.tls"

/* Make sure the TLS certificate and key files exist and are valid for at
 * least 7 more days; issue them through ca_issue() otherwise. 0 or -1. */
int srv_ensure_tls(const struct cfg *c, ca_ctx *ca, struct ca_err *err);

#endif
