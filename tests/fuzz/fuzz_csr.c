/* libFuzzer target: CSR intake (decode, proof of possession, key checks).
 *
 * ca_csr_decode() has its own decoding (ca-core/csr.c: OpenSSL's template
 * engine without the per-request key decoder), so this target also checks
 * it against OpenSSL's own: a request it accepts must be one that
 * d2i_X509_REQ + X509_REQ_verify accept too, with the same subject,
 * attributes and key, and the other way round. A difference aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include "mintca/ca.h"

/* What OpenSSL's own decoding says of data: 1 accepted, 0 refused. */
static int openssl_accepts(const uint8_t *data, size_t size, X509_REQ **out)
{
	const unsigned char *p = data;
	X509_REQ *r;
	EVP_PKEY *pk;

	*out = NULL;
	if (size == 0 || size > 64 * 1024 || (r = d2i_X509_REQ(NULL, &p, (long)size)) == NULL)
		return 0;
	if (p != data + size || X509_REQ_get_version(r) != X509_REQ_VERSION_1 ||
	    (pk = X509_REQ_get0_pubkey(r)) == NULL || X509_REQ_verify(r, pk) != 1) {
		X509_REQ_free(r);
		return 0;
	}
	*out = r;
	return 1;
}

static int same_der(const void *a, const void *b, int (*i2d)(const void *, unsigned char **))
{
	unsigned char *da = NULL, *db = NULL;
	int la = i2d(a, &da), lb = i2d(b, &db), same;

	same = la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
	OPENSSL_free(da);
	OPENSSL_free(db);
	return same;
}

static int i2d_name(const void *n, unsigned char **out) { return i2d_X509_NAME((X509_NAME *)n, out); }
static int i2d_spki(const void *k, unsigned char **out) { return i2d_X509_PUBKEY((X509_PUBKEY *)k, out); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_err err = { 0 };
	struct ca_profile p = {
		.name = "fuzz", .key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA | CA_KEY_ED25519,
		.rsa_min_bits = 2048, .rsa_max_bits = 4096,
	};
	X509_REQ *r = ca_csr_decode(data, size, &err), *ref = NULL;
	int theirs = openssl_accepts(data, size, &ref);

	if ((r != NULL) != theirs) {
		fprintf(stderr, "ca_csr_decode %s, OpenSSL %s: %s\n", r ? "accepts" : "refuses",
			theirs ? "accepts" : "refuses", err.detail);
		abort();
	}
	if (r != NULL) {
		if (!same_der(X509_REQ_get_subject_name(r), X509_REQ_get_subject_name(ref), i2d_name) ||
		    !same_der(X509_REQ_get_X509_PUBKEY(r), X509_REQ_get_X509_PUBKEY(ref), i2d_spki) ||
		    X509_REQ_get_attr_count(r) != X509_REQ_get_attr_count(ref) ||
		    ca_csr_key_type(r) != EVP_PKEY_get_base_id(X509_REQ_get0_pubkey(ref))) {
			fprintf(stderr, "ca_csr_decode and d2i_X509_REQ disagree on the contents\n");
			abort();
		}
		(void)ca_csr_check_key(r, &p, &err);
	}
	X509_REQ_free(ref);
	X509_REQ_free(r);
	ERR_clear_error();
	return 0;
}
