/* Revocation inputs: serials as people and tools write them, RFC 5280 reason
 * names, the CRL shard of a serial, and ca_revoke's refusals that need no
 * store. Table-driven, with empty, one-character and maximum-size rows. */
#include <string.h>
#include <check.h>
#include "mintca/ca.h"
#include "suites.h"

static const struct {
	const char *in;
	const char *out; /* NULL: refused */
} serials[] = {
	{ "0A1B", "0a1b" },
	{ "0a1b", "0a1b" },
	{ "a1b", "0a1b" },                       /* odd length: whole octets */
	{ "0x0A:1B", "0a1b" },                   /* openssl colon form */
	{ "serial=7F00FF", "7f00ff" },           /* openssl x509 -serial */
	{ "00007f", "7f" },                      /* redundant leading octets */
	{ "80", "0080" },                        /* top bit: a 00 octet keeps it positive */
	{ "0080", "0080" },
	{ "1", "01" },
	{ "7fffffffffffffffffffffffffffffffffffffff", "7fffffffffffffffffffffffffffffffffffffff" },
	{ "ffffffffffffffffffffffffffffffffffffffff", NULL }, /* needs 21 octets */
	{ "7fffffffffffffffffffffffffffffffffffffffff", NULL },
	{ "", NULL },
	{ "0", NULL },                           /* zero is not positive */
	{ "0000", NULL },
	{ "0x", NULL },
	{ "zz", NULL },
	{ "12-34", NULL },
	{ "12\n34", NULL },
	{ "0x0A 1B", "0a1b" },
};

START_TEST(serial_normalize_table)
{
	char out[41];
	int r = ca_serial_normalize(serials[_i].in, out);

	if (serials[_i].out == NULL) {
		ck_assert_msg(r != 0, "'%s' accepted as '%s'", serials[_i].in, out);
	} else {
		ck_assert_msg(r == 0, "'%s' refused", serials[_i].in);
		ck_assert_str_eq(out, serials[_i].out);
	}
}
END_TEST

static const struct {
	const char *name;
	int code;
} reasons[] = {
	{ "unspecified", 0 }, { "keyCompromise", 1 }, { "KEYCOMPROMISE", 1 }, { "cACompromise", 2 },
	{ "affiliationChanged", 3 }, { "superseded", 4 }, { "cessationOfOperation", 5 },
	{ "certificateHold", 6 }, { "privilegeWithdrawn", 9 }, { "aACompromise", 10 }, { "4", 4 },
	{ "removeFromCRL", -1 }, { "8", -1 }, { "7", -1 }, { "11", -1 }, { "-1", -1 }, { "", -1 },
	{ "compromised", -1 }, { "1x", -1 },
};

START_TEST(reason_names_table)
{
	ck_assert_int_eq(ca_reason_from_name(reasons[_i].name), reasons[_i].code);
	if (reasons[_i].code >= 0)
		ck_assert_int_eq(ca_reason_from_name(ca_reason_name(reasons[_i].code)), reasons[_i].code);
}
END_TEST

START_TEST(crl_shard_of_serial)
{
	ck_assert_uint_eq(ca_crl_shard("48eff79f048b0a73", 0), 0);
	ck_assert_uint_eq(ca_crl_shard("48eff79f048b0a73", 1), 1);
	/* 0x48eff79f = 1223686047; mod 16 = 15 */
	ck_assert_uint_eq(ca_crl_shard("48eff79f048b0a73", 16), 16);
	ck_assert_uint_eq(ca_crl_shard("00000000", 7), 1);
	ck_assert_uint_eq(ca_crl_shard("01", 7), 2);
	for (unsigned n = 1; n < 300; n += 37)
		for (unsigned v = 0; v < 1000; v += 97) {
			char hex[9];
			snprintf(hex, sizeof(hex), "%08x", v * 2654435761u);
			unsigned s = ca_crl_shard(hex, n);
			ck_assert(s >= 1 && s <= n);
		}
}
END_TEST

/* Refused before the store is touched (st may be anything non-NULL: these
 * requests never reach it). */
START_TEST(revoke_refuses_before_the_store)
{
	struct ca_revoke_res res;
	struct ca_err err = { 0 };
	const char *bad[] = { "0a1b", "xyz" };
	const char *one[] = { "0a1b" };
	const char *two[] = { "0a1b", "0a1c" };
	db_store *fake = (db_store *)&err;
	struct ca_revoke_req r1 = { .serials = bad, .n = 2 };
	struct ca_revoke_req r2 = { .serials = one, .n = 1, .reason = 8 };
	struct ca_revoke_req r3 = { .serials = two, .n = 2, .release = true };
	struct ca_revoke_req r4 = { .serials = one, .n = 0 };

	ck_assert_int_ne(ca_revoke(fake, &r1, &res, &err), 0);
	ck_assert_int_eq(err.code, CA_E_BAD_REQUEST);
	ck_assert_msg(strstr(err.detail, "serial 2") != NULL, "%s", err.detail);
	ck_assert_int_ne(ca_revoke(fake, &r2, &res, &err), 0);
	ck_assert_int_eq(err.code, CA_E_BAD_REQUEST);
	ck_assert_int_ne(ca_revoke(fake, &r3, &res, &err), 0);
	ck_assert_int_eq(err.code, CA_E_BAD_REQUEST);
	ck_assert_int_ne(ca_revoke(fake, &r4, &res, &err), 0);
	ck_assert_int_eq(res.chunks, 0);
}
END_TEST

Suite *revoke_suite(void)
{
	Suite *s = suite_create("revoke");
	TCase *t = tcase_create("inputs");

	tcase_add_loop_test(t, serial_normalize_table, 0, sizeof(serials) / sizeof(serials[0]));
	tcase_add_loop_test(t, reason_names_table, 0, sizeof(reasons) / sizeof(reasons[0]));
	tcase_add_test(t, crl_shard_of_serial);
	tcase_add_test(t, revoke_refuses_before_the_store);
	suite_add_tcase(s, t);
	return s;
}
