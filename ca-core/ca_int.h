/* Private to ca-core: the CA context. */
#ifndef MINTCA_CA_INT_H
#define MINTCA_CA_INT_H

#include <openssl/x509v3.h>
#include "mintca/ca.h"

struct ca_ctx {
	char name[CA_NAME_MAX];
	sig_key *key;
	X509 *cert;
	X509 *root;
	db_store *store;            /* NULL: nothing is recorded (tests, benchmarks) */
	time_t not_after;           /* the issuing CA's own notAfter */
	struct ca_profile *profiles;
	size_t n_profiles;
	ca_clock_fn clock;
	void *clock_arg;
	ca_rand_fn rand;
	void *rand_arg;
};

/* Subject and SANs as text, for the store and logs. Caller frees both
 * (sans with ca_text_sans_free). 0 or -1. */
int ca_text_subject(const X509_NAME *n, char **out);
int ca_text_sans(const GENERAL_NAMES *gens, char ***out, size_t *n);
void ca_text_sans_free(char **sans, size_t n);

/* Step 4 of ca_issue: RFC 5280 checks on the finished TBS. 0 or -1. */
int ca_lint(const ca_ctx *ctx, X509 *x, struct ca_err *err);

/* Add an extension built from its OpenSSL structure. 0 or -1. */
int ca_add_ext(X509 *x, int nid, int crit, void *value, struct ca_err *err);

/* RFC 5280 §4.2.1.2 key identifier of pub; caller frees. NULL on error. */
ASN1_OCTET_STRING *ca_key_id(X509_PUBKEY *pub);
/* Add subjectKeyIdentifier and (unless issuer is NULL) authorityKeyIdentifier. */
int ca_add_key_ids(X509 *x, X509 *issuer, struct ca_err *err);

#endif
