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

/* What happens to a subject attribute of the CSR. */
enum ca_subject_rule {
	CA_SUBJ_KEEP,     /* copied when present (pattern checked if given) */
	CA_SUBJ_REQUIRE,  /* must be present (and match the pattern) */
	CA_SUBJ_OVERRIDE, /* replaced by the profile's value, whatever the CSR says */
	CA_SUBJ_DROP,     /* left out of the certificate */
	CA_SUBJ_REFUSE,   /* its presence refuses the request */
};

struct ca_subject_attr {
	char type[16];             /* short name: "CN", "O", "serialNumber", ... */
	enum ca_subject_rule rule;
	char *value;               /* OVERRIDE */
	char *pattern;             /* POSIX extended regex, whole value; or NULL */
};

/* subjectAltName kinds a profile rules on; HWSERIAL is the otherName
 * hardwareModuleName (RFC 4108 §5) whose serial number the pattern checks. */
enum ca_san_kind { CA_SAN_DNS, CA_SAN_IP, CA_SAN_URI, CA_SAN_EMAIL, CA_SAN_HWSERIAL, CA_SAN_KINDS };

struct ca_san_rule {
	unsigned min, max;         /* max 0: this kind is refused */
	char *pattern;             /* POSIX extended regex on the text form, or NULL */
};

struct ca_custom_ext {
	char *oid;                 /* dotted */
	bool critical;
	unsigned char *der;        /* the extnValue contents, DER */
	size_t der_len;
};

struct ca_profile_built;       /* compiled patterns and fixed extensions */

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
	char ca[CA_NAME_MAX];        /* the issuing CA it issues from; "" = the default CA */

	/* Subject: rules per attribute type; the others follow subject_other
	 * (KEEP, DROP or REFUSE). No rules at all: the CSR's subject is kept. */
	struct ca_subject_attr *subject;
	size_t n_subject;
	enum ca_subject_rule subject_other;
	/* SAN rules per kind; when none is set, DNS/IP/URI/email up to max_sans. */
	struct ca_san_rule san[CA_SAN_KINDS];
	bool san_rules;
	/* Extensions. key_usage: bit n is KeyUsage bit n (RFC 5280 §4.2.1.3:
	 * 0 digitalSignature ... 8 decipherOnly); 0 = by key type
	 * (digitalSignature, plus keyEncipherment for RSA). */
	unsigned key_usage;
	char **eku_oids;             /* dotted OIDs beyond the eku bits */
	size_t n_eku_oids;
	bool no_basic_constraints;   /* leave out CA:FALSE (compact profiles) */
	bool no_subject_key_id;      /* leave out the SKID (compact profiles) */
	unsigned serial_bytes;       /* 9-20 octets, 0 = 16 */
	char **policies;             /* certificatePolicies OIDs */
	size_t n_policies;
	char **crl_urls, **ocsp_urls, **ca_issuers_urls;
	size_t n_crl_urls, n_ocsp_urls, n_ca_issuers_urls;
	/* Partitioned CRLs: the CDP of each certificate is crl_shard_url +
	 * "<shard>.crl" with its shard (ca_crl_shard) out of crl_shards. */
	char *crl_shard_url;
	unsigned crl_shards;
	char **nc_permitted_dns, **nc_excluded_dns; /* nameConstraints (sub-CA profiles) */
	size_t n_nc_permitted_dns, n_nc_excluded_dns;
	struct ca_custom_ext *custom;
	size_t n_custom;
	/* Rate limit for the whole profile: count per window_s, 0 = none. */
	unsigned rate_count, rate_window_s;
	struct ca_profile_built *built; /* set by ca_profile_prepare() */
};

/* Check a filled-in profile and build what does not change per request
 * (compiled patterns, fixed extensions). Called once at load; ca_issue needs
 * it. 0, or -1 with err naming the profile and the reason. */
int ca_profile_prepare(struct ca_profile *p, struct ca_err *err) __attribute__((warn_unused_result));

/* A credential: who may ask, and for which names (credential-level bindings;
 * the profile lists which credentials may use it). Name patterns are POSIX
 * extended regexes on the whole value; NULL allows any. */
struct ca_credential {
	char key[CA_NAME_MAX + 16];  /* "basic:<user>", "cert:<anchor>", "operator" */
	char *cn_pattern;
	char *san_pattern;           /* every SAN, in text form ("DNS:x", "IP:1.2.3.4") */
	unsigned rate_count, rate_window_s;
	struct ca_profile_built *built;
};
int ca_credential_prepare(struct ca_credential *c, struct ca_err *err) __attribute__((warn_unused_result));
void ca_credential_free(struct ca_credential *c);

/* Free everything a profile owns (not the profile struct itself). */
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

/* Add a prepared credential (takes ownership; *c is zeroed). 0 or -1 when
 * one with that key exists. Requesters without a credential entry have no
 * name restrictions beyond their profile's. */
int ca_ctx_add_credential(ca_ctx *ctx, struct ca_credential *c, struct ca_err *err);
const struct ca_credential *ca_credential_find(const ca_ctx *ctx, const char *key);
/* The credential key of a requester ("basic:factory", "cert:mfg", "operator"). */
void ca_requester_key(const struct ca_requester *who, char *buf, size_t len);
/* Parse a credential key back into a requester (for `mintctl policy explain`). */
int ca_requester_parse(const char *key, struct ca_requester *who);
/* Key usage names ("digitalSignature", ...): bit number, or -1. */
int ca_key_usage_bit(const char *name);

/* Copy a profile into the context (takes ownership of its lists; *p is
 * zeroed). 0, or -1 when a profile of that name already exists. */
int ca_ctx_add_profile(ca_ctx *ctx, struct ca_profile *p, struct ca_err *err);
const struct ca_profile *ca_profile_find(const ca_ctx *ctx, const char *name);
/* Name of the first profile open to protocols (not internal), or NULL. */
const char *ca_first_profile(const ca_ctx *ctx);

/* Injected clock and randomness so tests can fix time and serials. */
typedef time_t (*ca_clock_fn)(void *arg);
typedef int (*ca_rand_fn)(unsigned char *buf, size_t len, void *arg); /* 0 ok */
void ca_ctx_set_clock(ca_ctx *ctx, ca_clock_fn fn, void *arg);
void ca_ctx_set_rand(ca_ctx *ctx, ca_rand_fn fn, void *arg);

/* Add an intermediate between the issuing CA and the root, nearest the
 * issuing CA first (takes ownership). 0 or -1. */
int ca_ctx_add_chain(ca_ctx *ctx, X509 *intermediate, struct ca_err *err);
/* The chain a client needs: issuing CA, intermediates, root (borrowed).
 * Returns how many were written (at most max). */
size_t ca_chain(const ca_ctx *ctx, X509 **out, size_t max);

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
/* A request from ca_csr_decode() keeps its key undecoded (decoding costs
 * more than the signature check: ca-core/csr.c), so X509_REQ_get0_pubkey()
 * is NULL on it. Its key type, from the SubjectPublicKeyInfo's algorithm:
 * EVP_PKEY_EC, EVP_PKEY_RSA, EVP_PKEY_ED25519, another NID, or NID_undef. */
int ca_csr_key_type(X509_REQ *req);
/* The request's key decoded by OpenSSL (the slow path). Caller frees with
 * EVP_PKEY_free(). NULL if it cannot be decoded. */
EVP_PKEY *ca_csr_pubkey(X509_REQ *req);

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
/* Like ca_make_intermediate with pathLenConstraint path_len (-1: none), for
 * an intermediate that itself certifies issuing CAs. */
X509 *ca_make_sub_ca(sig_key *parent_key, X509 *parent_cert, EVP_PKEY *child_pub,
		     const char *subject, long long validity_seconds, int path_len,
		     struct ca_err *err);

/* CA rollover: certificates issued by a predecessor (same chain, older key)
 * may re-enroll with this CA. Takes ownership of cert. 0 or -1. */
int ca_ctx_add_predecessor(ca_ctx *ctx, const char *name, X509 *cert, struct ca_err *err);

/* Parse "/CN=a/O=b" into a name. Caller frees. NULL on error. */
X509_NAME *ca_name_parse(const char *subject, struct ca_err *err);

/* Partitioned CRLs: the shard (1..n) a certificate's serial belongs to, 0
 * when n is 0: 1 + (its first four octets, big-endian) mod n. */
unsigned ca_crl_shard(const char *serial_hex, unsigned n_shards);

/* --- Revocation: the one function every caller uses (mintctl, the operator
 * API). ca-core/revoke.c. --- */

/* A serial as written by people and tools ("0x0A:1B", "0A1B", "a1b") into
 * the form the store keeps: lower-case hex of the DER INTEGER's octets (even
 * length, no redundant leading 00). 0, or -1 if it is not a positive serial
 * of at most 20 octets (RFC 5280 §4.1.2.2). */
int ca_serial_normalize(const char *in, char out[41]);

/* RFC 5280 §5.3.1 reason name ("keyCompromise", ...) or number: the code, or
 * -1. Names of the codes a revocation may carry only. */
int ca_reason_from_name(const char *name);
const char *ca_reason_name(int code);

struct ca_revoke_req {
	const char *const *serials;   /* as given: normalized and checked here */
	size_t n;
	int reason;                   /* RFC 5280 code: 0-6, 9, 10 */
	time_t invalidity_date;       /* 0: none */
	const char *actor;            /* who: "operator:<name>", "api:<subject>" */
	const char *protocol;         /* "cli", "api" */
	bool resume;                  /* a batch: serials revoked before are skipped
				       * and counted (run again after a kill) */
	bool release;                 /* release a certificateHold instead (n == 1) */
	size_t chunk;                 /* serials per transaction, 0 = 1000 */
	/* Called after each committed chunk (may be NULL). */
	void (*progress)(void *arg, size_t done, size_t total, size_t revoked, size_t already);
	void *progress_arg;
};

struct ca_revoke_res {
	size_t revoked, already, chunks;
};

/* Revoke (or release). Every serial is checked before anything changes: a
 * malformed serial, a serial no certificate has (not issued), or (unless
 * resume) one already revoked refuses the whole request with err naming it,
 * and nothing is written. Then one transaction per chunk, each with its
 * audit rows. 0, or -1 (err: CA_E_BAD_REQUEST, CA_E_NOT_FOUND, CA_E_CONFLICT,
 * CA_E_STORE; res says how many chunks were committed before a store error). */
int ca_revoke(db_store *st, const struct ca_revoke_req *req, struct ca_revoke_res *res,
	      struct ca_err *err) __attribute__((warn_unused_result));

#endif
