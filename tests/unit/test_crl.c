/* CRLs (ca-core/crl.c) with software CA keys, no store: what the CRL says
 * (number, dates, entries, reasons, invalidity dates, retention, delta and
 * partition extensions), that it verifies, and that the fast assembly gives
 * the very bytes OpenSSL's own X509_CRL path gives. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <check.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/crl.h"
#include "suites.h"

#define T0 1700000000  /* 2023-11-14T22:13:20Z */
#define DAY 86400

/* ---- made once by the unchecked fixture (parent process) ---- */
static EVP_PKEY *p256_pkey, *ed_pkey;

/* ---- per test ---- */
static ca_ctx *ctx;     /* P-256 CA */

static ca_ctx *make_ca(EVP_PKEY *pk, const char *name)
{
	struct ca_err err = { 0 };
	sig_key *k;
	X509 *cert;
	ca_ctx *c;

	ck_assert(EVP_PKEY_up_ref(pk) == 1);
	ck_assert((k = sig_mem_key(pk)) != NULL);
	cert = ca_make_root(k, "/O=mintca test/CN=CRL test CA", 3650LL * DAY, &err);
	ck_assert_msg(cert != NULL, "%s", err.detail);
	c = ca_ctx_new(name, k, cert, NULL, NULL, &err);
	ck_assert_msg(c != NULL, "%s", err.detail);
	return c;
}

static void keys_setup(void)
{
	p256_pkey = EVP_EC_gen("P-256");
	ed_pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	ck_assert(p256_pkey != NULL && ed_pkey != NULL);
}

static void keys_teardown(void)
{
	EVP_PKEY_free(p256_pkey);
	EVP_PKEY_free(ed_pkey);
}

static void ctx_setup(void)
{
	ctx = make_ca(p256_pkey, "crltest");
}

static void ctx_teardown(void)
{
	ca_ctx_free(ctx);
	ctx = NULL;
}

/* Build a CRL of c from entries, parse it back; *der_out (may be NULL)
 * receives the DER (caller frees). Fails the test on error. */
static X509_CRL *build(ca_ctx *c, const struct crl_entry *e, size_t n, const struct crl_params *p,
		       time_t expired_since, bool delta, unsigned char **der_out, size_t *len_out,
		       struct crl_build_stats *stats)
{
	struct ca_err err = { 0 };
	crl_builder *b = crl_builder_new(c, expired_since, delta, &err);
	unsigned char *der = NULL;
	const unsigned char *q;
	size_t len = 0;
	X509_CRL *crl;

	ck_assert_msg(b != NULL, "%s", err.detail);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(crl_builder_add(b, &e[i], &err) == 0, "entry %zu: %s", i, err.detail);
	ck_assert_msg(crl_builder_finish(b, p, &der, &len, &err) == 0, "%s", err.detail);
	if (stats != NULL)
		crl_builder_stats(b, stats);
	crl_builder_free(b);
	q = der;
	crl = d2i_X509_CRL(NULL, &q, (long)len);
	ck_assert_msg(crl != NULL, "d2i_X509_CRL refused the CRL");
	ck_assert_msg(q == der + len, "trailing bytes after the CRL");
	if (der_out != NULL) {
		*der_out = der;
		*len_out = len;
	} else {
		free(der);
	}
	return crl;
}

static time_t t_of(const ASN1_TIME *t)
{
	struct tm tm;

	ck_assert(t != NULL && ASN1_TIME_to_tm(t, &tm) == 1);
	return timegm(&tm);
}

static long long int_ext(X509_CRL *crl, int nid, int *crit)
{
	ASN1_INTEGER *ai = X509_CRL_get_ext_d2i(crl, nid, crit, NULL);
	int64_t v = -1;

	if (ai == NULL)
		return -1;
	ck_assert(ASN1_INTEGER_get_int64(&v, ai) == 1);
	ASN1_INTEGER_free(ai);
	return v;
}

static void serial_is(const X509_REVOKED *r, const char *hex)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
	char *h = BN_bn2hex(bn), lower[64];
	size_t i;

	for (i = 0; h[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] + 32 : h[i]);
	lower[i] = '\0';
	/* BN_bn2hex pads to whole octets */
	ck_assert_msg(strcmp(lower + (strlen(lower) > strlen(hex) ? strlen(lower) - strlen(hex) : 0), hex) == 0,
		      "serial %s, expected %s", lower, hex);
	OPENSSL_free(h);
	BN_free(bn);
}

/* -1: no reasonCode extension */
static int reason_of(const X509_REVOKED *r)
{
	int crit = 0;
	ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
	long v;

	if (e == NULL)
		return -1;
	ck_assert_int_eq(crit, 0);
	v = ASN1_ENUMERATED_get(e);
	ASN1_ENUMERATED_free(e);
	return (int)v;
}

/* 0: no invalidityDate extension */
static time_t invalidity_of(const X509_REVOKED *r)
{
	ASN1_GENERALIZEDTIME *g = X509_REVOKED_get_ext_d2i(r, NID_invalidity_date, NULL, NULL);
	time_t t;

	if (g == NULL)
		return 0;
	ck_assert_int_eq(ASN1_STRING_type(g), V_ASN1_GENERALIZEDTIME);
	t = t_of(g);
	ASN1_GENERALIZEDTIME_free(g);
	return t;
}

static const struct crl_entry three[] = {
	{ .serial_hex = "7f3a0c1122334455667788990011aabb", .revoked_at = T0 - 100, .reason = 0 },
	{ .serial_hex = "c0ffee", .revoked_at = T0 - 50, .reason = 1, .invalidity_date = T0 - 3 * DAY },
	{ .serial_hex = "1", .revoked_at = T0 - 50, .reason = 6, .not_after = T0 + DAY },
};

START_TEST(crl_is_v2_signed_and_lists_entries)
{
	struct crl_params p = { .number = 42, .this_update = T0, .next_update = T0 + DAY };
	X509_CRL *crl = build(ctx, three, 3, &p, T0 - 90 * DAY, false, NULL, NULL, NULL);
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	AUTHORITY_KEYID *akid;
	int crit = -1;

	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ctx))), 1);
	ck_assert_int_eq(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	ck_assert_int_eq(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca_issuing_cert(ctx))), 0);
	ck_assert_int_eq(t_of(X509_CRL_get0_lastUpdate(crl)), T0);
	ck_assert_int_eq(t_of(X509_CRL_get0_nextUpdate(crl)), T0 + DAY);
	ck_assert_int_eq(int_ext(crl, NID_crl_number, &crit), 42);
	ck_assert_int_eq(crit, 0);
	ck_assert_int_eq(int_ext(crl, NID_delta_crl, NULL), -1);
	ck_assert_ptr_null(X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, NULL, NULL));
	ck_assert_ptr_null(X509_CRL_get_ext_d2i(crl, NID_freshest_crl, NULL, NULL));
	/* RFC 5280 §5.2.1: the CA's key identifier */
	akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
	ck_assert(akid != NULL && akid->keyid != NULL);
	ck_assert_int_eq(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca_issuing_cert(ctx))), 0);
	AUTHORITY_KEYID_free(akid);

	ck_assert_int_eq(sk_X509_REVOKED_num(rev), 3);
	serial_is(sk_X509_REVOKED_value(rev, 0), "7f3a0c1122334455667788990011aabb");
	serial_is(sk_X509_REVOKED_value(rev, 1), "c0ffee");
	serial_is(sk_X509_REVOKED_value(rev, 2), "01");
	ck_assert_int_eq(t_of(X509_REVOKED_get0_revocationDate(sk_X509_REVOKED_value(rev, 0))), T0 - 100);
	ck_assert_int_eq(t_of(X509_REVOKED_get0_revocationDate(sk_X509_REVOKED_value(rev, 1))), T0 - 50);
	/* reason 0 (unspecified): no reasonCode at all (RFC 5280 §5.3.1) */
	ck_assert_int_eq(reason_of(sk_X509_REVOKED_value(rev, 0)), -1);
	ck_assert_int_eq(reason_of(sk_X509_REVOKED_value(rev, 1)), 1);
	ck_assert_int_eq(reason_of(sk_X509_REVOKED_value(rev, 2)), 6);
	ck_assert_int_eq(invalidity_of(sk_X509_REVOKED_value(rev, 0)), 0);
	ck_assert_int_eq(invalidity_of(sk_X509_REVOKED_value(rev, 1)), T0 - 3 * DAY);
	X509_CRL_free(crl);
}
END_TEST

START_TEST(crl_without_entries_has_no_revoked_list)
{
	struct crl_params p = { .number = 1, .this_update = T0, .next_update = T0 + DAY };
	unsigned char *der;
	size_t len;
	X509_CRL *crl = build(ctx, NULL, 0, &p, 0, false, &der, &len, NULL);
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);

	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ctx))), 1);
	/* RFC 5280 §5.1.2.6: absent, not an empty SEQUENCE */
	ck_assert(rev == NULL || sk_X509_REVOKED_num(rev) == 0);
	ck_assert(len < 400);
	free(der);
	X509_CRL_free(crl);
}
END_TEST

/* Reason i: 7 never; 8 (removeFromCRL) in delta CRLs only; 0 without the
 * extension; the rest as given. */
START_TEST(crl_lists_reason_codes)
{
	struct crl_entry e = { .serial_hex = "0abc", .revoked_at = T0, .reason = _i };
	struct crl_params p = { .number = 3, .this_update = T0, .next_update = T0 + DAY };
	struct ca_err err = { 0 };
	crl_builder *b;

	if (_i == 7 || _i == 8) {
		ck_assert((b = crl_builder_new(ctx, 0, false, &err)) != NULL);
		ck_assert_int_eq(crl_builder_add(b, &e, &err), -1);
		ck_assert_int_eq(err.code, CA_E_BAD_REQUEST);
		crl_builder_free(b);
	}
	if (_i != 7) {
		bool delta = _i == 8;
		if (delta)
			p.delta_of = 2;
		X509_CRL *crl = build(ctx, &e, 1, &p, 0, delta, NULL, NULL, NULL);
		X509_REVOKED *r = sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), 0);
		ck_assert_int_eq(reason_of(r), _i == 0 ? -1 : _i);
		ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ctx))), 1);
		X509_CRL_free(crl);
	}
}
END_TEST

/* Certificates whose notAfter is before the retention cut are left out;
 * at the cut and unknown notAfter stay. */
START_TEST(crl_leaves_out_certificates_past_retention)
{
	const time_t cut = T0 - 90 * DAY;
	const struct crl_entry e[] = {
		{ .serial_hex = "a1", .revoked_at = T0 - 200 * DAY, .not_after = cut - 1 },
		{ .serial_hex = "a2", .revoked_at = T0 - 200 * DAY, .not_after = cut },
		{ .serial_hex = "a3", .revoked_at = T0 - 200 * DAY, .not_after = 0 },
		{ .serial_hex = "a4", .revoked_at = T0 - 1, .not_after = T0 + 365 * DAY, .reason = 4 },
	};
	struct crl_params p = { .number = 9, .this_update = T0, .next_update = T0 + DAY };
	struct crl_build_stats st;
	X509_CRL *crl = build(ctx, e, 4, &p, cut, false, NULL, NULL, &st);
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);

	ck_assert_int_eq(sk_X509_REVOKED_num(rev), 3);
	ck_assert_uint_eq(st.entries, 3);
	ck_assert_uint_eq(st.expired, 1);
	serial_is(sk_X509_REVOKED_value(rev, 0), "a2");
	serial_is(sk_X509_REVOKED_value(rev, 1), "a3");
	serial_is(sk_X509_REVOKED_value(rev, 2), "a4");
	X509_CRL_free(crl);
}
END_TEST

static void uri_is(const DIST_POINT_NAME *dpn, const char *url)
{
	const GENERAL_NAME *g;

	ck_assert(dpn != NULL && dpn->type == 0 && sk_GENERAL_NAME_num(dpn->name.fullname) == 1);
	g = sk_GENERAL_NAME_value(dpn->name.fullname, 0);
	ck_assert_int_eq(g->type, GEN_URI);
	ck_assert_str_eq((const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), url);
}

START_TEST(delta_crl_has_critical_indicator_and_remove_from_crl)
{
	const struct crl_entry e[] = {
		{ .serial_hex = "b1", .revoked_at = T0 - 10, .reason = 1 },
		{ .serial_hex = "b2", .revoked_at = T0 - 5, .reason = CRL_REASON_REMOVE },
	};
	struct crl_params p = { .number = 12, .delta_of = 10, .this_update = T0, .next_update = T0 + 3600 };
	X509_CRL *crl = build(ctx, e, 2, &p, 0, true, NULL, NULL, NULL);
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	int crit = -1;

	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ctx))), 1);
	ck_assert_int_eq(int_ext(crl, NID_crl_number, NULL), 12);
	/* RFC 5280 §5.2.4: deltaCRLIndicator, critical, the base CRL's number */
	ck_assert_int_eq(int_ext(crl, NID_delta_crl, &crit), 10);
	ck_assert_int_eq(crit, 1);
	ck_assert_int_eq(reason_of(sk_X509_REVOKED_value(rev, 1)), CRL_REASON_REMOVE);
	X509_CRL_free(crl);
}
END_TEST

START_TEST(shard_crl_has_critical_idp_and_base_has_freshest)
{
	struct crl_params p = { .number = 5, .this_update = T0, .next_update = T0 + DAY,
				.idp_url = "http://ca.example/crl/crltest-3.crl",
				.freshest_url = "http://ca.example/crl/crltest-3-delta.crl" };
	X509_CRL *crl = build(ctx, three, 3, &p, 0, false, NULL, NULL, NULL);
	int crit = -1;
	ISSUING_DIST_POINT *idp = X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
	CRL_DIST_POINTS *fresh;

	ck_assert(idp != NULL);
	ck_assert_int_eq(crit, 1);
	uri_is(idp->distpoint, "http://ca.example/crl/crltest-3.crl");
	ck_assert_int_eq(idp->onlyuser, 0);
	ck_assert_ptr_null(idp->onlysomereasons);
	ISSUING_DIST_POINT_free(idp);
	crit = -1;
	fresh = X509_CRL_get_ext_d2i(crl, NID_freshest_crl, &crit, NULL);
	ck_assert(fresh != NULL && sk_DIST_POINT_num(fresh) == 1);
	ck_assert_int_eq(crit, 0);
	uri_is(sk_DIST_POINT_value(fresh, 0)->distpoint, "http://ca.example/crl/crltest-3-delta.crl");
	CRL_DIST_POINTS_free(fresh);
	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ctx))), 1);
	X509_CRL_free(crl);
}
END_TEST

/* The same CRL through OpenSSL's own objects: X509_REVOKED per entry,
 * X509_CRL_add0_revoked, X509_CRL_sign, i2d_X509_CRL. */
static unsigned char *reference_crl(ca_ctx *c, EVP_PKEY *pk, const struct crl_entry *e, size_t n,
				    const struct crl_params *p, int *len)
{
	X509 *cert = ca_issuing_cert(c);
	X509_CRL *crl = X509_CRL_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	ASN1_TIME *tu = ASN1_TIME_set(NULL, p->this_update), *nu = ASN1_TIME_set(NULL, p->next_update);
	unsigned char *der = NULL;

	ck_assert(crl && akid && num && tu && nu);
	ck_assert(X509_CRL_set_version(crl, X509_CRL_VERSION_2));
	ck_assert(X509_CRL_set_issuer_name(crl, X509_get_subject_name(cert)));
	ck_assert(X509_CRL_set1_lastUpdate(crl, tu) && X509_CRL_set1_nextUpdate(crl, nu));
	akid->keyid = ASN1_OCTET_STRING_dup(X509_get0_subject_key_id(cert));
	ck_assert(X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) == 1);
	ck_assert(ASN1_INTEGER_set_int64(num, p->number));
	ck_assert(X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1);
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		BIGNUM *bn = NULL;
		ASN1_INTEGER *s;
		ASN1_TIME *when = ASN1_TIME_set(NULL, e[i].revoked_at);
		ck_assert(BN_hex2bn(&bn, e[i].serial_hex) > 0 && (s = BN_to_ASN1_INTEGER(bn, NULL)) != NULL);
		ck_assert(X509_REVOKED_set_serialNumber(r, s) && X509_REVOKED_set_revocationDate(r, when));
		if (e[i].reason != 0) {
			ASN1_ENUMERATED *en = ASN1_ENUMERATED_new();
			ck_assert(ASN1_ENUMERATED_set(en, e[i].reason));
			ck_assert(X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, en, 0, 0) == 1);
			ASN1_ENUMERATED_free(en);
		}
		if (e[i].invalidity_date != 0) {
			ASN1_GENERALIZEDTIME *g = ASN1_GENERALIZEDTIME_set(NULL, e[i].invalidity_date);
			ck_assert(X509_REVOKED_add1_ext_i2d(r, NID_invalidity_date, g, 0, 0) == 1);
			ASN1_GENERALIZEDTIME_free(g);
		}
		ck_assert(X509_CRL_add0_revoked(crl, r));
		ASN1_TIME_free(when);
		ASN1_INTEGER_free(s);
		BN_free(bn);
	}
	ck_assert(X509_CRL_sign(crl, pk, NULL) > 0);
	ck_assert((*len = i2d_X509_CRL(crl, &der)) > 0);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	ASN1_INTEGER_free(num);
	AUTHORITY_KEYID_free(akid);
	X509_CRL_free(crl);
	return der;
}

/* Ed25519 signatures are deterministic: the whole DER must be equal. */
START_TEST(crl_bytes_equal_openssl_x509_crl_path)
{
	ca_ctx *ed = make_ca(ed_pkey, "crled");
	struct crl_entry e[64];
	char serials[64][41];
	struct crl_params p = { .number = 77, .this_update = T0, .next_update = T0 + 7 * DAY };
	unsigned char *ours, *ref;
	size_t len;
	int rlen;
	X509_CRL *crl;

	for (int i = 0; i < 64; i++) {
		/* short and long serials, top bit set or not, every reason but 7 and 8 */
		snprintf(serials[i], sizeof(serials[i]), "%s%08x", i % 3 ? "fedcba9876543210ffee" : "",
			 (unsigned)(i * 2654435761u));
		e[i] = (struct crl_entry){ .serial_hex = serials[i], .revoked_at = T0 - i * 3600 / 7,
					   .reason = (i % 11 == 7 || i % 11 == 8) ? 0 : i % 11,
					   .invalidity_date = i % 4 == 0 ? T0 - i * DAY : 0 };
	}
	crl = build(ed, e, 64, &p, 0, false, &ours, &len, NULL);
	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ed))), 1);
	ref = reference_crl(ed, ed_pkey, e, 64, &p, &rlen);
	ck_assert_uint_eq(len, (size_t)rlen);
	ck_assert(memcmp(ours, ref, len) == 0);
	OPENSSL_free(ref);
	free(ours);
	X509_CRL_free(crl);
	ca_ctx_free(ed);
}
END_TEST

/* The longest serial (20 octets, top bit set: a 0x00 pad) and one with
 * leading zero digits. */
START_TEST(crl_encodes_serials_as_positive_integers)
{
	const struct crl_entry e[] = {
		{ .serial_hex = "ffffffffffffffffffffffffffffffffffffffff", .revoked_at = T0 },
		{ .serial_hex = "0000ab", .revoked_at = T0 },
		{ .serial_hex = "0", .revoked_at = T0 },
	};
	struct crl_params p = { .number = 2, .this_update = T0, .next_update = T0 + DAY };
	X509_CRL *crl = build(ctx, e, 3, &p, 0, false, NULL, NULL, NULL);
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	const ASN1_INTEGER *s0 = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rev, 0));

	ck_assert_int_eq(ASN1_STRING_type(s0), V_ASN1_INTEGER);  /* not V_ASN1_NEG_INTEGER */
	ck_assert_int_eq(ASN1_STRING_length(s0), 20);
	serial_is(sk_X509_REVOKED_value(rev, 0), "ffffffffffffffffffffffffffffffffffffffff");
	serial_is(sk_X509_REVOKED_value(rev, 1), "ab");
	ck_assert_int_eq(ASN1_INTEGER_get(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rev, 2))), 0);
	X509_CRL_free(crl);
}
END_TEST

static const char *const bad_serials[] = {
	"", "xyz", "12 34", "-1", "fffffffffffffffffffffffffffffffffffffffff" /* 41 */,
};

START_TEST(crl_refuses_bad_serials)
{
	struct crl_entry e = { .serial_hex = bad_serials[_i], .revoked_at = T0 };
	struct ca_err err = { 0 };
	crl_builder *b = crl_builder_new(ctx, 0, false, &err);

	ck_assert(b != NULL);
	ck_assert_int_eq(crl_builder_add(b, &e, &err), -1);
	ck_assert_int_eq(err.code, CA_E_BAD_REQUEST);
	crl_builder_free(b);
}
END_TEST

START_TEST(crl_builder_finishes_once)
{
	struct crl_params p = { .number = 1, .this_update = T0, .next_update = T0 + DAY };
	struct ca_err err = { 0 };
	crl_builder *b = crl_builder_new(ctx, 0, false, &err);
	unsigned char *der = NULL;
	size_t len;

	ck_assert(crl_builder_finish(b, &p, &der, &len, &err) == 0);
	free(der);
	ck_assert(crl_builder_finish(b, &p, &der, &len, &err) == -1);
	ck_assert_ptr_null(der);
	crl_builder_free(b);
}
END_TEST

static const struct { const char *serial; unsigned n, shard; } shards[] = {
	{ "deadbeef00112233", 0, 0 },
	{ "deadbeef00112233", 1, 1 },
	{ "deadbeef00112233", 16, 1 + 0xdeadbeefu % 16 },
	{ "deadbeef00112233", 7, 1 + 0xdeadbeefu % 7 },
	{ "ffffffff", 65536, 1 + 0xffffffffu % 65536 },
	{ "ff", 10, 1 + 0xffu % 10 },
	{ "0", 3, 1 },
	{ "", 3, 1 },
	{ "DEADBEEF", 16, 1 + 0xdeadbeefu % 16 },
};

START_TEST(crl_shard_of_uses_first_eight_hex_digits)
{
	ck_assert_uint_eq(crl_shard_of(shards[_i].serial, shards[_i].n), shards[_i].shard);
}
END_TEST

START_TEST(crl_url_names_scope)
{
	struct cfg c = { .public_base_url = "http://ca.example:8080/", .public_name = "x", .port = 8443 };
	char buf[256];

	ck_assert(crl_url(&c, "prod", &(struct crl_scope){ 0, false }, buf, sizeof(buf)) == 0);
	ck_assert_str_eq(buf, "http://ca.example:8080/crl/prod.crl");
	ck_assert(crl_url(&c, "prod", &(struct crl_scope){ 0, true }, buf, sizeof(buf)) == 0);
	ck_assert_str_eq(buf, "http://ca.example:8080/crl/prod-delta.crl");
	ck_assert(crl_url(&c, "prod", &(struct crl_scope){ 12, false }, buf, sizeof(buf)) == 0);
	ck_assert_str_eq(buf, "http://ca.example:8080/crl/prod-12.crl");
	ck_assert(crl_url(&c, "prod", &(struct crl_scope){ 12, true }, buf, sizeof(buf)) == 0);
	ck_assert_str_eq(buf, "http://ca.example:8080/crl/prod-12-delta.crl");
	ck_assert(crl_url(&c, "prod", &(struct crl_scope){ 12, true }, buf, 20) == -1);
	c.public_base_url = NULL;
	c.http_port = 8080;
	ck_assert(crl_url(&c, "prod", &(struct crl_scope){ 0, false }, buf, sizeof(buf)) == 0);
	ck_assert_str_eq(buf, "http://x:8080/crl/prod.crl");
}
END_TEST

START_TEST(crl_publish_needs_a_store)
{
	struct cfg c = { .crl_next_update_s = DAY, .crl_retention_s = DAY };
	struct crl_result res;
	struct ca_err err = { 0 };

	ck_assert_int_eq(crl_publish(ctx, &c, &(struct crl_scope){ 0, false }, 0, &res, &err), -1);
	ck_assert_int_eq(err.code, CA_E_INTERNAL);
	ck_assert(!res.published);
}
END_TEST

Suite *crl_suite(void)
{
	Suite *s = suite_create("crl");
	TCase *tc = tcase_create("build");

	tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_checked_fixture(tc, ctx_setup, ctx_teardown);
	tcase_add_test(tc, crl_is_v2_signed_and_lists_entries);
	tcase_add_test(tc, crl_without_entries_has_no_revoked_list);
	tcase_add_loop_test(tc, crl_lists_reason_codes, 0, 11);
	tcase_add_test(tc, crl_leaves_out_certificates_past_retention);
	tcase_add_test(tc, delta_crl_has_critical_indicator_and_remove_from_crl);
	tcase_add_test(tc, shard_crl_has_critical_idp_and_base_has_freshest);
	tcase_add_test(tc, crl_bytes_equal_openssl_x509_crl_path);
	tcase_add_test(tc, crl_encodes_serials_as_positive_integers);
	tcase_add_loop_test(tc, crl_refuses_bad_serials, 0, (int)(sizeof(bad_serials) / sizeof(bad_serials[0])));
	tcase_add_test(tc, crl_builder_finishes_once);
	tcase_add_loop_test(tc, crl_shard_of_uses_first_eight_hex_digits, 0,
			    (int)(sizeof(shards) / sizeof(shards[0])));
	tcase_add_test(tc, crl_url_names_scope);
	tcase_add_test(tc, crl_publish_needs_a_store);
	suite_add_tcase(s, tc);
	return s;
}
