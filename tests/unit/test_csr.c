/* ca_csr_decode and ca_csr_check_key: which keys each profile takes, and
 * which byte strings are not a certificate request at all. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem; the Makefile defines it too */
#endif
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "mintca/ca.h"
#include "suites.h"

#define ALL_KEYS (CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA | CA_KEY_ED25519)
#define CN "csr-test-subject"

enum key_id {
	K_P256, K_P384, K_P521, K_K256, K_RSA1024, K_RSA2048, K_RSA3072, K_RSA4096,
	K_ED25519, K_ED448, K_P256_EXPLICIT, K_COUNT
};

static const struct {
	const char *what;
	const char *alg;   /* EVP_PKEY_Q_keygen type */
	const char *curve; /* EC only */
	size_t bits;       /* RSA only */
} key_spec[K_COUNT] = {
	[K_P256] = { "EC P-256", "EC", "P-256", 0 },
	[K_P384] = { "EC P-384", "EC", "P-384", 0 },
	[K_P521] = { "EC P-521", "EC", "P-521", 0 },
	[K_K256] = { "EC secp256k1", "EC", "secp256k1", 0 },
	[K_RSA1024] = { "RSA 1024", "RSA", NULL, 1024 },
	[K_RSA2048] = { "RSA 2048", "RSA", NULL, 2048 },
	[K_RSA3072] = { "RSA 3072", "RSA", NULL, 3072 },
	[K_RSA4096] = { "RSA 4096", "RSA", NULL, 4096 },
	[K_ED25519] = { "Ed25519", "ED25519", NULL, 0 },
	[K_ED448] = { "Ed448", "ED448", NULL, 0 },
	[K_P256_EXPLICIT] = { "EC P-256 with explicit curve parameters", "EC", "P-256", 0 },
};

/* Made once by the unchecked fixture (in the parent process, before Check
 * forks each test): RSA key generation is slow. */
static EVP_PKEY *keys[K_COUNT];
static unsigned char *csr[K_COUNT];
static size_t csr_len[K_COUNT];

/* A DER PKCS#10 request for k with subject CN=cn and, when pad > 0, an
 * attribute of pad bytes (to reach an exact size). Caller frees *der with
 * OPENSSL_free. Returns the length, 0 on error. */
static size_t make_csr(EVP_PKEY *k, const char *cn, size_t pad, unsigned char **der)
{
	X509_REQ *r = X509_REQ_new();
	int id = EVP_PKEY_get_base_id(k);
	const EVP_MD *md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256();
	unsigned char *filler = NULL;
	int len = 0;

	*der = NULL;
	if (r == NULL || !X509_REQ_set_version(r, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(r, k))
		goto out;
	if (pad > 0) {
		if ((filler = malloc(pad)) == NULL)
			goto out;
		memset(filler, 'p', pad);
		/* A private-arc attribute: ignored by the CA, only here for size. */
		if (!X509_REQ_add1_attr_by_txt(r, "1.3.6.1.4.1.55555.1", V_ASN1_OCTET_STRING,
					       filler, (int)pad))
			goto out;
	}
	if (X509_REQ_sign(r, k, md) <= 0)
		goto out;
	len = i2d_X509_REQ(r, der);
out:
	free(filler);
	X509_REQ_free(r);
	return len > 0 ? (size_t)len : 0;
}

/* A valid Ed25519 request of exactly `size` bytes (Ed25519 signatures have a
 * fixed length, so the size is reachable). Caller frees with OPENSSL_free. */
static unsigned char *csr_of_size(size_t size)
{
	unsigned char *der = NULL;
	size_t pad = size - 300, len;

	for (int i = 0; i < 8; i++) {
		len = make_csr(keys[K_ED25519], CN, pad, &der);
		if (len == size || len == 0)
			break;
		OPENSSL_free(der);
		der = NULL;
		pad = pad + size - len;
	}
	return der;
}

static void setup_keys(void)
{
	if (keys[0] != NULL)
		return;
	for (int i = 0; i < K_COUNT; i++) {
		const char *alg = key_spec[i].alg;
		if (key_spec[i].curve != NULL)
			keys[i] = EVP_PKEY_Q_keygen(NULL, NULL, alg, key_spec[i].curve);
		else if (key_spec[i].bits != 0)
			keys[i] = EVP_PKEY_Q_keygen(NULL, NULL, alg, key_spec[i].bits);
		else
			keys[i] = EVP_PKEY_Q_keygen(NULL, NULL, alg);
		ck_assert_msg(keys[i] != NULL, "cannot generate %s key", key_spec[i].what);
		if (i == K_P256_EXPLICIT)
			ck_assert(EVP_PKEY_set_utf8_string_param(keys[i], OSSL_PKEY_PARAM_EC_ENCODING,
								 OSSL_PKEY_EC_ENCODING_EXPLICIT) == 1);
		csr_len[i] = make_csr(keys[i], CN, 0, &csr[i]);
		ck_assert_msg(csr_len[i] > 0, "cannot make %s request", key_spec[i].what);
	}
}

/* Registered on the last test case only: the keys serve every case. */
static void teardown_keys(void)
{
	for (int i = 0; i < K_COUNT; i++) {
		EVP_PKEY_free(keys[i]);
		OPENSSL_free(csr[i]);
		keys[i] = NULL;
		csr[i] = NULL;
	}
}

static struct ca_profile profile(unsigned key_types, unsigned rsa_min, unsigned rsa_max)
{
	struct ca_profile p = {
		.name = "csr-profile", .key_types = key_types,
		.rsa_min_bits = rsa_min, .rsa_max_bits = rsa_max,
		.validity_seconds = 86400, .max_sans = 4,
	};
	return p;
}

/* ---- key type and size against the profile ---- */

static const struct key_row {
	enum key_id key;
	unsigned key_types, rsa_min, rsa_max;
	const char *profile_what;
} accepted_rows[] = {
	{ K_P256, ALL_KEYS, 2048, 4096, "every type" },
	{ K_P256, CA_KEY_EC_P256, 2048, 4096, "only EC P-256" },
	{ K_P384, ALL_KEYS, 2048, 4096, "every type" },
	{ K_P384, CA_KEY_EC_P384, 2048, 4096, "only EC P-384" },
	{ K_RSA2048, ALL_KEYS, 2048, 4096, "RSA 2048..4096 (lower bound)" },
	{ K_RSA3072, ALL_KEYS, 2048, 4096, "RSA 2048..4096" },
	{ K_RSA3072, CA_KEY_RSA, 2048, 3072, "RSA 2048..3072 (upper bound)" },
	{ K_RSA3072, CA_KEY_RSA, 3072, 3072, "RSA exactly 3072" },
	{ K_RSA4096, ALL_KEYS, 2048, 4096, "RSA 2048..4096 (upper bound)" },
	{ K_ED25519, ALL_KEYS, 2048, 4096, "every type" },
	{ K_ED25519, CA_KEY_ED25519, 2048, 4096, "only Ed25519" },
}, refused_rows[] = {
	{ K_P256, ALL_KEYS & ~CA_KEY_EC_P256, 2048, 4096, "every type but EC P-256" },
	{ K_P256, CA_KEY_EC_P384, 2048, 4096, "only EC P-384" },
	{ K_P384, ALL_KEYS & ~CA_KEY_EC_P384, 2048, 4096, "every type but EC P-384" },
	{ K_P521, ALL_KEYS, 2048, 4096, "every type" },
	{ K_K256, ALL_KEYS, 2048, 4096, "every type" },
	{ K_RSA1024, ALL_KEYS, 2048, 4096, "RSA 2048..4096" },
	{ K_RSA2048, ALL_KEYS & ~CA_KEY_RSA, 2048, 4096, "every type but RSA" },
	{ K_RSA2048, CA_KEY_RSA, 3072, 4096, "RSA 3072..4096" },
	{ K_RSA3072, ALL_KEYS & ~CA_KEY_RSA, 2048, 4096, "every type but RSA" },
	{ K_RSA4096, CA_KEY_RSA, 2048, 3072, "RSA 2048..3072" },
	{ K_RSA4096, ALL_KEYS & ~CA_KEY_RSA, 2048, 4096, "every type but RSA" },
	{ K_ED25519, ALL_KEYS & ~CA_KEY_ED25519, 2048, 4096, "every type but Ed25519" },
	{ K_ED448, ALL_KEYS, 2048, 4096, "every type" },
	/* RFC 5480 §2.1.1: specifiedCurve MUST NOT be used; the CA copies the
	 * CSR's SubjectPublicKeyInfo, so such a key would reach the certificate. */
	{ K_P256_EXPLICIT, ALL_KEYS, 2048, 4096, "every type" },
};

START_TEST(csr_accepts_key_the_profile_allows)
{
	const struct key_row *row = &accepted_rows[_i];
	struct ca_profile p = profile(row->key_types, row->rsa_min, row->rsa_max);
	struct ca_err err = { 0 };
	X509_REQ *req = ca_csr_decode(csr[row->key], csr_len[row->key], &err);
	EVP_PKEY *got;

	ck_assert_msg(req != NULL, "%s: decode failed: %s", key_spec[row->key].what, err.detail);
	/* the key is kept undecoded, and decodes to the one that signed */
	ck_assert(X509_REQ_get0_pubkey(req) == NULL);
	ERR_clear_error();
	ck_assert((got = ca_csr_pubkey(req)) != NULL);
	ck_assert_int_eq(EVP_PKEY_eq(got, keys[row->key]), 1);
	ck_assert_int_eq(ca_csr_key_type(req), EVP_PKEY_get_base_id(keys[row->key]));
	EVP_PKEY_free(got);
	ck_assert_msg(ca_csr_check_key(req, &p, &err) == 0, "%s refused by profile allowing %s: %s",
		      key_spec[row->key].what, row->profile_what, err.detail);
	ck_assert_int_eq(err.code, CA_OK);
	X509_REQ_free(req);
}
END_TEST

START_TEST(csr_refuses_key_the_profile_does_not_allow)
{
	const struct key_row *row = &refused_rows[_i];
	struct ca_profile p = profile(row->key_types, row->rsa_min, row->rsa_max);
	struct ca_err err = { 0 };
	X509_REQ *req = ca_csr_decode(csr[row->key], csr_len[row->key], &err);

	/* Well-formed and correctly signed: only the key check may refuse it. */
	ck_assert_msg(req != NULL, "%s: decode failed: %s", key_spec[row->key].what, err.detail);
	ck_assert_msg(ca_csr_check_key(req, &p, &err) == -1, "%s accepted by profile allowing %s",
		      key_spec[row->key].what, row->profile_what);
	ck_assert_msg(err.code == CA_E_KEY_REFUSED, "%s: code %s", key_spec[row->key].what,
		      ca_code_str(err.code));
	ck_assert_msg(strstr(err.detail, "csr-profile") != NULL, "detail does not name the profile: %s",
		      err.detail);
	X509_REQ_free(req);
}
END_TEST

/* ---- byte strings that are not one valid request ---- */

enum bad_kind {
	B_NULL, B_NULL_WITH_LENGTH, B_EMPTY, B_ONE_BYTE, B_GARBAGE, B_TRAILING_BYTE,
	B_TRUNCATED_BY_ONE, B_TRUNCATED_HALF, B_FLIPPED_SIG_P256, B_FLIPPED_SIG_RSA,
	B_FLIPPED_SIG_ED25519, B_FLIPPED_SUBJECT, B_OVER_64K_VALID, B_ONE_MIB,
	B_P256_OFF_CURVE, B_P384_OFF_CURVE, B_ED25519_KEY_CHANGED,
};

static const struct bad_row {
	enum bad_kind kind;
	const char *what;
	enum ca_code code;
} bad_rows[] = {
	{ B_NULL, "NULL, length 0", CA_E_BAD_CSR },
	{ B_NULL_WITH_LENGTH, "NULL, length 100", CA_E_BAD_CSR },
	{ B_EMPTY, "0 bytes", CA_E_BAD_CSR },
	{ B_ONE_BYTE, "1 byte (0x30)", CA_E_BAD_CSR },
	{ B_GARBAGE, "text", CA_E_BAD_CSR },
	{ B_TRAILING_BYTE, "a valid request and one trailing byte", CA_E_BAD_CSR },
	{ B_TRUNCATED_BY_ONE, "a valid request less its last byte", CA_E_BAD_CSR },
	{ B_TRUNCATED_HALF, "the first half of a valid request", CA_E_BAD_CSR },
	{ B_FLIPPED_SIG_P256, "EC P-256 request with a signature byte flipped", CA_E_BAD_SIGNATURE },
	{ B_FLIPPED_SIG_RSA, "RSA 2048 request with a signature byte flipped", CA_E_BAD_SIGNATURE },
	{ B_FLIPPED_SIG_ED25519, "Ed25519 request with a signature byte flipped", CA_E_BAD_SIGNATURE },
	{ B_FLIPPED_SUBJECT, "request with a subject byte changed after signing", CA_E_BAD_SIGNATURE },
	{ B_OVER_64K_VALID, "a valid request of 64 KiB + 1 byte", CA_E_BAD_CSR },
	{ B_ONE_MIB, "1 MiB of zeros", CA_E_BAD_CSR },
	/* the key is imported from its raw point or bytes (ca-core/csr.c) */
	{ B_P256_OFF_CURVE, "EC P-256 request whose point is moved off the curve", CA_E_BAD_CSR },
	{ B_P384_OFF_CURVE, "EC P-384 request whose point is moved off the curve", CA_E_BAD_CSR },
	{ B_ED25519_KEY_CHANGED, "Ed25519 request with a key byte changed", CA_E_BAD_SIGNATURE },
};

/* The input for a row, malloc'd (or NULL for the NULL rows). */
static unsigned char *bad_input(enum bad_kind kind, size_t *len)
{
	static const char text[] = "this is not a certificate request";
	const enum key_id flip_key[] = {
		[B_FLIPPED_SIG_P256] = K_P256, [B_FLIPPED_SIG_RSA] = K_RSA2048,
		[B_FLIPPED_SIG_ED25519] = K_ED25519,
	};
	unsigned char *b = NULL, *hit, *big;

	*len = 0;
	switch (kind) {
	case B_NULL:
		return NULL;
	case B_NULL_WITH_LENGTH:
		*len = 100;
		return NULL;
	case B_EMPTY:
		return malloc(1);
	case B_ONE_BYTE:
		b = malloc(1);
		b[0] = 0x30;
		*len = 1;
		return b;
	case B_GARBAGE:
		*len = sizeof(text) - 1;
		return (unsigned char *)strdup(text);
	case B_TRAILING_BYTE:
		*len = csr_len[K_P256] + 1;
		b = malloc(*len);
		memcpy(b, csr[K_P256], csr_len[K_P256]);
		b[*len - 1] = 0x00;
		return b;
	case B_TRUNCATED_BY_ONE:
	case B_TRUNCATED_HALF:
		*len = kind == B_TRUNCATED_BY_ONE ? csr_len[K_P256] - 1 : csr_len[K_P256] / 2;
		b = malloc(*len);
		memcpy(b, csr[K_P256], *len);
		return b;
	case B_P256_OFF_CURVE:
	case B_P384_OFF_CURVE:
	case B_ED25519_KEY_CHANGED: {
		/* The key BIT STRING: tag, length, no unused bits, then the
		 * uncompressed point (04 x y) or the 32 Ed25519 bytes. */
		static const unsigned char p256[] = { 0x03, 0x42, 0x00, 0x04 },
					   p384[] = { 0x03, 0x62, 0x00, 0x04 },
					   ed[] = { 0x03, 0x21, 0x00 };
		const unsigned char *pat = kind == B_P256_OFF_CURVE ? p256 : kind == B_P384_OFF_CURVE ? p384 : ed;
		size_t pat_len = kind == B_ED25519_KEY_CHANGED ? sizeof(ed) : sizeof(p256);
		enum key_id k = kind == B_P256_OFF_CURVE ? K_P256 : kind == B_P384_OFF_CURVE ? K_P384 : K_ED25519;

		*len = csr_len[k];
		b = malloc(*len);
		memcpy(b, csr[k], *len);
		hit = memmem(b, *len, pat, pat_len);
		ck_assert(hit != NULL);
		/* the last content byte (the end of y; a changed y is no longer
		 * on the curve), or the first Ed25519 key byte */
		hit[kind == B_ED25519_KEY_CHANGED ? pat_len : 2 + (size_t)hit[1] - 1] ^= 0x01;
		return b;
	}
	case B_FLIPPED_SIG_P256:
	case B_FLIPPED_SIG_RSA:
	case B_FLIPPED_SIG_ED25519:
		/* The signature BIT STRING ends the encoding. */
		*len = csr_len[flip_key[kind]];
		b = malloc(*len);
		memcpy(b, csr[flip_key[kind]], *len);
		b[*len - 1] ^= 0x01;
		return b;
	case B_FLIPPED_SUBJECT:
		*len = csr_len[K_P256];
		b = malloc(*len);
		memcpy(b, csr[K_P256], *len);
		hit = memmem(b, *len, CN, strlen(CN));
		ck_assert(hit != NULL);
		hit[0] = 'C';
		return b;
	case B_OVER_64K_VALID:
		big = csr_of_size(64 * 1024 + 1);
		ck_assert(big != NULL);
		*len = 64 * 1024 + 1;
		b = malloc(*len);
		memcpy(b, big, *len);
		OPENSSL_free(big);
		return b;
	case B_ONE_MIB:
		*len = 1024 * 1024;
		return calloc(1, *len);
	}
	return NULL;
}

START_TEST(csr_decode_refuses_malformed_input)
{
	const struct bad_row *row = &bad_rows[_i];
	struct ca_err err = { 0 };
	size_t len;
	unsigned char *in = bad_input(row->kind, &len);
	X509_REQ *req = ca_csr_decode(in, len, &err);

	ck_assert_msg(req == NULL, "%s: accepted", row->what);
	ck_assert_msg(err.code == row->code, "%s: code %s, want %s (%s)", row->what,
		      ca_code_str(err.code), ca_code_str(row->code), err.detail);
	ck_assert_msg(err.detail[0] != '\0', "%s: no detail", row->what);
	free(in);
}
END_TEST

START_TEST(csr_decode_accepts_valid_request_of_exactly_64_kib)
{
	unsigned char *der = csr_of_size(64 * 1024);
	struct ca_err err = { 0 };
	X509_REQ *req;

	ck_assert(der != NULL);
	req = ca_csr_decode(der, 64 * 1024, &err);
	ck_assert_msg(req != NULL, "64 KiB request refused: %s", err.detail);
	X509_REQ_free(req);
	OPENSSL_free(der);
}
END_TEST

START_TEST(csr_decode_refuses_certificate_in_place_of_request)
{
	EVP_PKEY *k = keys[K_P256];
	X509 *x = X509_new();
	unsigned char *der = NULL;
	int len;
	struct ca_err err = { 0 };

	ck_assert(X509_set_version(x, X509_VERSION_3) && X509_set_pubkey(x, k) &&
		  X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 60) &&
		  X509_sign(x, k, EVP_sha256()) > 0);
	ck_assert((len = i2d_X509(x, &der)) > 0);
	ck_assert(ca_csr_decode(der, (size_t)len, &err) == NULL);
	ck_assert_int_eq(err.code, CA_E_BAD_CSR);
	OPENSSL_free(der);
	X509_free(x);
}
END_TEST

Suite *csr_suite(void)
{
	Suite *s = suite_create("csr");
	TCase *keys_tc = tcase_create("key_policy");
	TCase *input_tc = tcase_create("malformed_input");

	tcase_add_unchecked_fixture(keys_tc, setup_keys, NULL);
	tcase_set_timeout(keys_tc, 30);
	tcase_add_loop_test(keys_tc, csr_accepts_key_the_profile_allows, 0,
			    (int)(sizeof(accepted_rows) / sizeof(accepted_rows[0])));
	tcase_add_loop_test(keys_tc, csr_refuses_key_the_profile_does_not_allow, 0,
			    (int)(sizeof(refused_rows) / sizeof(refused_rows[0])));
	suite_add_tcase(s, keys_tc);

	tcase_add_unchecked_fixture(input_tc, setup_keys, teardown_keys);
	tcase_set_timeout(input_tc, 30);
	tcase_add_loop_test(input_tc, csr_decode_refuses_malformed_input, 0,
			    (int)(sizeof(bad_rows) / sizeof(bad_rows[0])));
	tcase_add_test(input_tc, csr_decode_accepts_valid_request_of_exactly_64_kib);
	tcase_add_test(input_tc, csr_decode_refuses_certificate_in_place_of_request);
	suite_add_tcase(s, input_tc);
	return s;
}
