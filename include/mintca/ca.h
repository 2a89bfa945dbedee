/* ca-core: the one issuance path. EST (and later ACME, SCEP, the CLI and bulk
 * jobs) call ca_issue() with a request struct and get a certificate or a
 * typed error back. */
#ifndef MINTCA_CA_H
#define MINTCA_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/x509.h>
#include "mintca/err.h"
#include "mintca/sig.h"
#include "mintca/db.h"

typedef struct ca_ctx ca_ctx;

/* Key types a profile may allow (bit mask). RSA sizes are bounded separately. */
enum ca_key_type {
	CA_KEY_EC_P256 = 1u << 0,
	CA_KEY_EC_P384 = 1u << 1,
	CA_KEY_RSA = 1u << 2,
	CA_KEY_ED25519 = 1u << 3,
};

/* Extended key usages a profile may put in certificates (bit mask). */
enum ca_eku {
	CA_EKU_CLIENT_AUTH = 1u << 0,
	CA_EKU_SERVER_AUTH = 1u << 1,
};

#define CA_NAME_MAX 64

/* A certificate profile: what may be issued and who may ask for it. */
struct ca_profile {
	char name[CA_NAME_MAX];
	unsigned key_types;          /* enum ca_key_type bits */
	unsigned rsa_min_bits, rsa_max_bits;
	long long validity_seconds;  /* notAfter - notBefore, before CA clamp */
	long long backdate_seconds;  /* notBefore = now - backdate */
	unsigned eku;                /* enum ca_eku bits */
	unsigned max_sans;           /* 0: no SAN allowed */
	bool allow_reenroll;
	/* Who may ask: password users and client-certificate trust anchors by
	 * name. Arrays owned by the profile (ca_profile_free_lists). */
	char **basic_users;
	size_t n_basic_users;
	char **cert_anchors;
	size_t n_cert_anchors;
	bool operator_allowed;       /* the operator CLI and the server itself */
	bool internal;               /* the server's own; no protocol label reaches it */
};

/* Free the name lists inside a profile (not the profile itself). */
void ca_profile_free_lists(struct ca_profile *p);
/* Parse "ec-p256", "ec-p384", "rsa", "ed25519": bit, or 0 if unknown. */
unsigned ca_key_type_from_name(const char *name);
/* Parse "clientAuth", "serverAuth": bit, or 0 if unknown. */
unsigned ca_eku_from_name(const char *name);

enum ca_auth_kind {
	CA_AUTH_NONE,        /* anonymous */
	CA_AUTH_BASIC,       /* HTTP Basic user, password already verified */
	CA_AUTH_CLIENT_CERT, /* TLS client certificate, chain already verified */
	CA_AUTH_OPERATOR,    /* local operator (mintctl, the server itself) */
};

/* Who is asking, as established by the transport. */
struct ca_requester {
	enum ca_auth_kind kind;
	char id[256];              /* user name, or client certificate subject */
	char anchor[CA_NAME_MAX];  /* CLIENT_CERT: the trust anchor that verified it */
};

struct ca_issue_req {
	const unsigned char *csr_der; /* PKCS#10, DER */
	size_t csr_len;
	const char *profile;          /* profile name */
	const struct ca_requester *who;
	const char *protocol;         /* "est", "cli", "bootstrap" */
	X509 *renew_of;               /* re-enrollment: the certificate being renewed
				       * (issued by this CA, presented by the client);
				       * the CSR must keep its subject and SANs */
};

struct ca_issue_res {
	/* The issued certificate, ready to encode (i2d, PEM, PKCS#7). Its public
	 * key is the CSR's SubjectPublicKeyInfo copied as bytes and is not decoded
	 * in memory (decoding costs more than the signature on OpenSSL 3.0):
	 * X509_get0_pubkey(cert) is NULL. Decode der when the key is needed. */
	X509 *cert;
	unsigned char *der;           /* the certificate, DER */
	size_t der_len;
	char serial_hex[41];
};                                    /* free both with ca_issue_res_free() */

/* Create a CA context for one issuing CA. Takes ownership of issuing_key,
 * issuing_cert and root_cert (root_cert may equal NULL when the issuing CA is
 * itself a root). store may be NULL (no store: tests and benchmarks; the
 * certificate is then not recorded). NULL on error. */
ca_ctx *ca_ctx_new(const char *ca_name, sig_key *issuing_key, X509 *issuing_cert,
		   X509 *root_cert, db_store *store, struct ca_err *err);
void ca_ctx_free(ca_ctx *ctx);

/* Copy a profile into the context (takes ownership of its lists; *p is
 * zeroed). 0, or -1 when a profile of that name already exists. */
int ca_ctx_add_profile(ca_ctx *ctx, struct ca_profile *p, struct ca_err *err);
const struct ca_profile *ca_profile_find(const ca_ctx *ctx, const char *name);

/* Injected clock and randomness so tests can fix time and serials. */
typedef time_t (*ca_clock_fn)(void *arg);
typedef int (*ca_rand_fn)(unsigned char *buf, size_t len, void *arg); /* 0 ok */
void ca_ctx_set_clock(ca_ctx *ctx, ca_clock_fn fn, void *arg);
void ca_ctx_set_rand(ca_ctx *ctx, ca_rand_fn fn, void *arg);

const char *ca_name(const ca_ctx *ctx);
X509 *ca_issuing_cert(const ca_ctx *ctx);     /* borrowed */
X509 *ca_root_cert(const ca_ctx *ctx);        /* borrowed, may be NULL */

/* The one issuance path. Returns 0 and fills res, or -1 and fills err. */
int ca_issue(ca_ctx *ctx, const struct ca_issue_req *req, struct ca_issue_res *res,
	     struct ca_err *err) __attribute__((warn_unused_result));
void ca_issue_res_free(struct ca_issue_res *res);

/* CSR checks, step 1 of ca_issue, also used on their own by tests and
 * `mintctl`: decode (no trailing bytes), verify the signature (proof of
 * possession), and check the key against the profile. Caller frees the
 * returned request with X509_REQ_free(). NULL on error. */
X509_REQ *ca_csr_decode(const unsigned char *der, size_t len, struct ca_err *err);
int ca_csr_check_key(X509_REQ *req, const struct ca_profile *p, struct ca_err *err);

/* Serial numbers: 16 random octets with the top bit cleared (positive,
 * 127 bits from the CSPRNG). Writes lower-case hex into hex[41]. */
int ca_serial_new(ca_ctx *ctx, ASN1_INTEGER **out, char hex[41], struct ca_err *err);

/* CA certificate creation (first start, `mintctl`): a self-signed root, or an
 * intermediate signed by parent. subject is "/CN=.../O=...". Caller frees the
 * certificate with X509_free(). NULL on error. */
X509 *ca_make_root(sig_key *key, const char *subject, long long validity_seconds,
		   struct ca_err *err);
X509 *ca_make_intermediate(sig_key *parent_key, X509 *parent_cert, EVP_PKEY *child_pub,
			   const char *subject, long long validity_seconds,
			   struct ca_err *err);
/* Parse "/CN=a/O=b" into a name. Caller frees. NULL on error. */
X509_NAME *ca_name_parse(const char *subject, struct ca_err *err);

#endif
