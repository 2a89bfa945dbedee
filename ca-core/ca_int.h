/* Private to ca-core: the CA context. */
#ifndef MINTCA_CA_INT_H
#define MINTCA_CA_INT_H

#include <regex.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "mintca/pol.h"

/* What ca_profile_prepare() / ca_credential_prepare() build once. */
struct ca_profile_built {
	regex_t **subject_re;       /* per profile subject attr, NULL = no pattern */
	int *subject_nid;
	regex_t *san_re[CA_SAN_KINDS]; /* credentials use san_re[0] for every SAN */
	regex_t *cn_re;             /* credentials only */
	STACK_OF(X509_EXTENSION) *fixed; /* the same in every certificate */
	ASN1_OBJECT *hw_oid;        /* id-on-hardwareModuleName */
};

struct ca_ctx {
	char name[CA_NAME_MAX];
	sig_key *key;
	X509 *cert;
	X509 *root;
	STACK_OF(X509) *chain;      /* intermediates between cert and root */
	STACK_OF(X509) *pred;       /* predecessors (rollover): their certificates renew here */
	char (*pred_names)[CA_NAME_MAX];
	db_store *store;            /* NULL: nothing is recorded (tests, benchmarks) */
	time_t not_after;           /* the issuing CA's own notAfter */
	struct ca_profile *profiles;
	size_t n_profiles;
	struct ca_credential *creds;
	size_t n_creds;
	ca_clock_fn clock;
	void *clock_arg;
	ca_rand_fn rand;
	void *rand_arg;
	struct ca_serial_pool *serials; /* reserved ahead (ca-core/serial_pool.c) */
};

/* ca-core/serial_pool.c. With a store: a serial of nbytes (9-20) octets whose
 * reservation is committed, for one certificate, and the block it is from.
 * Then exactly one of ca_serial_unused() and ca_serial_signed(). 0 or -1. */
struct ca_serial_block;
int ca_serial_take(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER **out, char hex[41],
		   struct ca_serial_block **block, struct ca_err *err);
/* A taken serial that nothing was signed with: back to the pool (takes
 * serial). */
void ca_serial_unused(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER *serial, const char hex[41],
		      struct ca_serial_block *block);
/* A taken serial went to the signer: never used again, whatever follows. */
void ca_serial_signed(ca_ctx *ctx, struct ca_serial_block *block);
struct ca_serial_pool *ca_serial_pool_new(ca_ctx *ctx);
/* Gives the unused serials back, settles the blocks, frees the pool. */
void ca_serial_pool_free(ca_ctx *ctx);

/* A crlDistributionPoints extension with one fullName URI per URL, or NULL
 * (out of memory). Caller frees with X509_EXTENSION_free. */
X509_EXTENSION *ca_cdp_ext(const char *const *urls, size_t n);

/* Subject and SANs as text, for the store and logs. Caller frees both
 * (sans with ca_text_sans_free). 0 or -1. */
int ca_text_subject(const X509_NAME *n, char **out);
int ca_text_sans(const GENERAL_NAMES *gens, char ***out, size_t *n);
void ca_text_sans_free(char **sans, size_t n);

/* ca_serial_new with nbytes (9-20) octets. */
int ca_serial_new_len(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER **out, char hex[41], struct ca_err *err);

/* Lower-case hex of a serial, as the store keeps it. */
void pol_serial_text(const ASN1_INTEGER *serial, char out[41]);
/* Kind (enum ca_san_kind) and text ("DNS:x") of one SAN; *value points at the
 * part after the colon. -1 for a kind no profile allows or an unclean value. */
int pol_san_text(const struct ca_profile_built *b, const GENERAL_NAME *g, char *buf, size_t len,
		 const char **value);

/* Step 4 of ca_issue: RFC 5280 checks on the finished TBS. 0 or -1. */
int ca_lint(const ca_ctx *ctx, X509 *x, X509_REQ *csr, struct ca_err *err);
/* dst takes a copy of a SubjectPublicKeyInfo's algorithm and key bits, as
 * they are: no EVP_PKEY in between (ca-core/csr.c). 0, or -1 (out of
 * memory, or parameters of no known form). */
int ca_pubkey_set(X509_PUBKEY *dst, const X509_ALGOR *alg, const unsigned char *bits, int len);

/* Add an extension built from its OpenSSL structure. 0 or -1. */
int ca_add_ext(X509 *x, int nid, int crit, void *value, struct ca_err *err);

/* RFC 5280 §4.2.1.2 key identifier of pub; caller frees. NULL on error. */
ASN1_OCTET_STRING *ca_key_id(X509_PUBKEY *pub);
/* Add authorityKeyIdentifier (the issuer's SKID). 0 or -1. */
int ca_add_akid(X509 *x, X509 *issuer, struct ca_err *err);
/* Add subjectKeyIdentifier and (unless issuer is NULL) authorityKeyIdentifier. */
int ca_add_key_ids(X509 *x, X509 *issuer, struct ca_err *err);

#endif
