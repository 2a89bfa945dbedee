/* ca_serial_new: 16 octets, positive (RFC 5280 §4.1.2.2), hex that matches
 * the integer, distinct, and drawn from the context's randomness. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <check.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include "mintca/ca.h"
#include "suites.h"

#define SERIAL_OCTETS 16

static ca_ctx *ctx;

static void setup_ctx(void)
{
	struct ca_err err = { 0 };
	sig_key *key = sig_mem_key(EVP_EC_gen("P-256"));
	X509 *cert;

	ck_assert(key != NULL);
	cert = ca_make_root(key, "/CN=serial test root", 86400, &err);
	ck_assert_msg(cert != NULL, "ca_make_root: %s", err.detail);
	ctx = ca_ctx_new("serial-test", key, cert, NULL, NULL, &err);
	ck_assert_msg(ctx != NULL, "ca_ctx_new: %s", err.detail);
}

static void teardown_ctx(void)
{
	ca_ctx_free(ctx);
	ctx = NULL;
}

/* Checks every property of one serial; returns its content octets in oct. */
static void check_serial(const ASN1_INTEGER *s, const char *hex, unsigned char oct[SERIAL_OCTETS])
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	unsigned char *der = NULL;
	BIGNUM *bn;
	char *bnhex;
	int len;

	ck_assert_msg(ASN1_STRING_type(s) == V_ASN1_INTEGER, "serial is negative");
	ck_assert_int_eq(ASN1_STRING_length(s), SERIAL_OCTETS);
	ck_assert_msg(d[0] != 0 && d[0] < 0x80, "first octet 0x%02x: not minimal or not positive", d[0]);
	/* DER: tag, length 16, 16 content octets. */
	len = i2d_ASN1_INTEGER(s, &der);
	ck_assert_int_eq(len, 2 + SERIAL_OCTETS);
	ck_assert_int_eq(der[0], 0x02);
	ck_assert_int_eq(der[1], SERIAL_OCTETS);
	OPENSSL_free(der);
	/* hex: 32 lower-case digits, the same integer. */
	ck_assert_uint_eq(strlen(hex), 2 * SERIAL_OCTETS);
	ck_assert_msg(strspn(hex, "0123456789abcdef") == 2 * SERIAL_OCTETS, "hex '%s' not lower-case hex", hex);
	ck_assert((bn = ASN1_INTEGER_to_BN(s, NULL)) != NULL);
	ck_assert((bnhex = BN_bn2hex(bn)) != NULL);
	ck_assert_msg(strcasecmp(bnhex, hex) == 0, "hex %s, integer %s", hex, bnhex);
	OPENSSL_free(bnhex);
	BN_free(bn);
	memcpy(oct, d, SERIAL_OCTETS);
}

START_TEST(serial_is_positive_16_octets_with_matching_lowercase_hex)
{
	/* 1 in 8 draws has a first octet below 0x10: 2000 draws cover it. */
	for (int i = 0; i < 2000; i++) {
		struct ca_err err = { 0 };
		ASN1_INTEGER *s = NULL;
		char hex[41];
		unsigned char oct[SERIAL_OCTETS];

		ck_assert_msg(ca_serial_new(ctx, &s, hex, &err) == 0, "draw %d: %s", i, err.detail);
		check_serial(s, hex, oct);
		ASN1_INTEGER_free(s);
	}
}
END_TEST

static int cmp_serial(const void *a, const void *b)
{
	return memcmp(a, b, SERIAL_OCTETS);
}

START_TEST(serials_are_distinct_over_100000_draws)
{
	enum { N = 100000 };
	unsigned char *all = malloc((size_t)N * SERIAL_OCTETS);
	int dup = -1;

	ck_assert(all != NULL);
	for (int i = 0; i < N; i++) {
		struct ca_err err = { 0 };
		ASN1_INTEGER *s = NULL;
		char hex[41];

		ck_assert_msg(ca_serial_new(ctx, &s, hex, &err) == 0, "draw %d: %s", i, err.detail);
		ck_assert_int_eq(ASN1_STRING_length(s), SERIAL_OCTETS);
		memcpy(all + (size_t)i * SERIAL_OCTETS, ASN1_STRING_get0_data(s), SERIAL_OCTETS);
		ASN1_INTEGER_free(s);
	}
	qsort(all, N, SERIAL_OCTETS, cmp_serial);
	for (int i = 1; i < N && dup < 0; i++)
		if (memcmp(all + (size_t)(i - 1) * SERIAL_OCTETS, all + (size_t)i * SERIAL_OCTETS,
			   SERIAL_OCTETS) == 0)
			dup = i;
	free(all);
	ck_assert_msg(dup < 0, "two equal serials among %d", N);
}
END_TEST

/* An injected generator that fills every byte with one value. */
struct fixed_rand {
	unsigned char byte;
	size_t asked;  /* bytes asked for on the last call */
	int calls;
};

static int fixed_rand_fn(unsigned char *buf, size_t len, void *arg)
{
	struct fixed_rand *f = arg;

	memset(buf, f->byte, len);
	f->asked = len;
	f->calls++;
	return 0;
}

static int failing_rand_fn(unsigned char *buf, size_t len, void *arg)
{
	(void)buf;
	(void)len;
	(*(int *)arg)++;
	return -1;
}

static const struct {
	unsigned char byte;
	const char *hex; /* the serial that must come out */
} fixed_rows[] = {
	/* All zero: the first octet is replaced so the serial stays non-zero
	 * and 16 octets long. */
	{ 0x00, "01000000000000000000000000000000" },
	/* Only the sign bit in the first octet: cleared, then replaced. */
	{ 0x80, "01808080808080808080808080808080" },
	/* All ones: the sign bit is cleared, the integer stays positive. */
	{ 0xff, "7fffffffffffffffffffffffffffffff" },
	{ 0x0a, "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a" },
};

START_TEST(serial_stays_positive_and_nonzero_with_injected_fixed_rand)
{
	struct fixed_rand f = { .byte = fixed_rows[_i].byte };
	struct ca_err err = { 0 };
	ASN1_INTEGER *s = NULL;
	char hex[41];
	unsigned char oct[SERIAL_OCTETS];

	ca_ctx_set_rand(ctx, fixed_rand_fn, &f);
	ck_assert_msg(ca_serial_new(ctx, &s, hex, &err) == 0, "%s", err.detail);
	ck_assert_int_eq(f.calls, 1);
	ck_assert_uint_eq(f.asked, SERIAL_OCTETS);
	check_serial(s, hex, oct);
	ck_assert_str_eq(hex, fixed_rows[_i].hex);
	ASN1_INTEGER_free(s);
}
END_TEST

START_TEST(serial_fails_when_rand_fails)
{
	int calls = 0;
	struct ca_err err = { 0 };
	ASN1_INTEGER *s = NULL;
	char hex[41] = "";

	ca_ctx_set_rand(ctx, failing_rand_fn, &calls);
	ck_assert_int_eq(ca_serial_new(ctx, &s, hex, &err), -1);
	ck_assert_int_eq(calls, 1);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(err.code, CA_E_INTERNAL);
	ck_assert(err.detail[0] != '\0');
}
END_TEST

Suite *serial_suite(void)
{
	Suite *s = suite_create("serial");
	TCase *tc = tcase_create("serial");

	tcase_add_checked_fixture(tc, setup_ctx, teardown_ctx);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, serial_is_positive_16_octets_with_matching_lowercase_hex);
	tcase_add_test(tc, serials_are_distinct_over_100000_draws);
	tcase_add_loop_test(tc, serial_stays_positive_and_nonzero_with_injected_fixed_rand, 0,
			    (int)(sizeof(fixed_rows) / sizeof(fixed_rows[0])));
	tcase_add_test(tc, serial_fails_when_rand_fails);
	suite_add_tcase(s, tc);
	return s;
}
