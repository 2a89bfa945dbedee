/* OCSP: the delegated responder certificate, answering requests (status,
 * routing by issuer hash, nonce, refusals), the response cache and its
 * invalidation, and GET decoding. A software CA, no store: the status comes
 * from a table through an injected status function; the clock is fixed. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <check.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "mintca/ocsp.h"
#include "../../protocols/ocsp/ocsp_int.h"
#include "suites.h"

#define DAY 86400LL
#define VALIDITY 3600u
#define RESPONDER_VALIDITY (7 * DAY)

static time_t now_fixed;
static EVP_PKEY *root_key, *iss_key, *other_key, *resp_key;
static sig_key *resp_sig; /* resp_key as the responder signs with it */
static X509 *root_cert, *iss_cert, *other_cert;
static ca_ctx *ctx;
static ocsp_responder *resp;
static ocsp_cache *cache;
static X509 *resp_cert;

/* The fake store: serial -> status. */
struct row {
	const char *serial;
	const char *ca;
	bool issued, revoked;
	int reason;
};
static struct row store_rows[] = {
	{ "0a11", "test", true, false, 0 },
	{ "0b22", "test", true, true, 1 },      /* keyCompromise */
	{ "0c33", "test", false, false, 0 },    /* reserved, never issued */
	{ "0d44", "other", true, false, 0 },    /* another CA's */
	{ "0e55", "test", true, true, 0 },      /* unspecified */
};
static bool store_down;
static int store_calls;

static int fake_status(void *arg, const char *serial, struct ocsp_cert_status *r, struct ca_err *err)
{
	(void)arg;
	store_calls++;
	if (store_down) {
		ca_err_set(err, CA_E_STORE, "down");
		return -1;
	}
	for (size_t i = 0; i < sizeof(store_rows) / sizeof(store_rows[0]); i++)
		if (strcmp(store_rows[i].serial, serial) == 0) {
			memset(r, 0, sizeof(*r));
			snprintf(r->ca, sizeof(r->ca), "%s", store_rows[i].ca);
			r->issued = store_rows[i].issued;
			r->revoked = store_rows[i].revoked;
			r->revoked_at = now_fixed - 100;
			r->reason = store_rows[i].reason;
			return 0;
		}
	return 1;
}

static time_t fixed_clock(void *arg)
{
	return *(const time_t *)arg;
}

static X509 *self_signed(EVP_PKEY *k, const char *cn)
{
	struct ca_err err = { 0 };
	sig_key *sk;
	X509 *x;

	ck_assert(EVP_PKEY_up_ref(k) == 1);
	sk = sig_mem_key(k);
	x = ca_make_root(sk, cn, 365 * DAY, &err);
	ck_assert_msg(x != NULL, "%s", err.detail);
	sig_close(sk);
	return x;
}

static void setup_keys(void)
{
	struct ca_err err = { 0 };
	sig_key *rk;

	now_fixed = time(NULL);
	ck_assert((root_key = EVP_EC_gen("P-256")) != NULL);
	ck_assert((iss_key = EVP_EC_gen("P-256")) != NULL);
	ck_assert((other_key = EVP_EC_gen("P-256")) != NULL);
	ck_assert((resp_key = EVP_EC_gen("P-256")) != NULL);
	root_cert = self_signed(root_key, "/CN=test root");
	other_cert = self_signed(other_key, "/CN=other CA");
	ck_assert(EVP_PKEY_up_ref(root_key) == 1);
	rk = sig_mem_key(root_key);
	iss_cert = ca_make_intermediate(rk, root_cert, iss_key, "/CN=test issuing", 365 * DAY, &err);
	ck_assert_msg(iss_cert != NULL, "%s", err.detail);
	sig_close(rk);
}

static void setup(void)
{
	struct ca_err err = { 0 };
	struct ca_profile p;
	struct ca_issue_res res = { 0 };
	const unsigned char *d;

	ck_assert(EVP_PKEY_up_ref(iss_key) == 1 && X509_up_ref(iss_cert) == 1 && X509_up_ref(root_cert) == 1);
	ctx = ca_ctx_new("test", sig_mem_key(iss_key), iss_cert, root_cert, NULL, &err);
	ck_assert_msg(ctx != NULL, "%s", err.detail);
	ca_ctx_set_clock(ctx, fixed_clock, &now_fixed);
	ck_assert_msg(ocsp_responder_profile(&p, RESPONDER_VALIDITY, &err) == 0, "%s", err.detail);
	ck_assert_msg(ca_ctx_add_profile(ctx, &p, &err) == 0, "%s", err.detail);
	ck_assert(EVP_PKEY_up_ref(resp_key) == 1 && (resp_sig = sig_mem_key(resp_key)) != NULL);
	ck_assert_msg(ocsp_issue_responder(ctx, resp_sig, &res, &err) == 0, "%s", err.detail);
	d = res.der;
	ck_assert((resp_cert = d2i_X509(NULL, &d, (long)res.der_len)) != NULL);
	ca_issue_res_free(&res);
	ck_assert((cache = ocsp_cache_new(1024)) != NULL);
	ocsp_cache_set_live(cache, true);
	ck_assert((resp = ocsp_responder_new(NULL, cache, VALIDITY, &err)) != NULL);
	ocsp_responder_set_status_fn(resp, fake_status, NULL);
	ocsp_responder_set_clock(resp, fixed_clock, &now_fixed);
	ck_assert(ocsp_responder_add_ca(resp, ctx, &err) == 0);
	ck_assert(ocsp_responder_set_signer(resp, 0, resp_cert, resp_sig, &err) == 0);
	store_down = false;
	store_calls = 0;
}

static void teardown(void)
{
	ocsp_responder_free(resp);
	sig_close(resp_sig);
	resp_sig = NULL;
	ocsp_cache_free(cache);
	X509_free(resp_cert);
	ca_ctx_free(ctx);
}

/* A DER request for serial (hex) under issuer, hash md, with a nonce or not.
 * Caller frees with OPENSSL_free. */
static size_t make_req(X509 *issuer, const char *serial_hex, const EVP_MD *md, bool nonce, int count,
		       unsigned char **der)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;
	int len;

	ck_assert(req != NULL && BN_hex2bn(&bn, serial_hex) > 0);
	ck_assert((ai = BN_to_ASN1_INTEGER(bn, NULL)) != NULL);
	for (int i = 0; i < count; i++) {
		OCSP_CERTID *id = OCSP_cert_id_new(md, X509_get_subject_name(issuer),
						   X509_get0_pubkey_bitstr(issuer), ai);
		ck_assert(id != NULL && OCSP_request_add0_id(req, id) != NULL);
	}
	if (nonce)
		ck_assert(OCSP_request_add1_nonce(req, NULL, -1) == 1);
	*der = NULL;
	ck_assert((len = i2d_OCSP_REQUEST(req, der)) > 0);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	OCSP_REQUEST_free(req);
	return (size_t)len;
}

/* Answer a request for serial and return the decoded response. */
static OCSP_RESPONSE *ask(const char *serial, const EVP_MD *md, bool nonce, struct ocsp_answer *a)
{
	unsigned char *der = NULL;
	size_t len = make_req(iss_cert, serial, md, nonce, 1, &der);
	const unsigned char *p;
	OCSP_RESPONSE *r;

	ocsp_respond(resp, der, len, a);
	OPENSSL_free(der);
	ck_assert(a->der != NULL);
	p = a->der;
	ck_assert((r = d2i_OCSP_RESPONSE(NULL, &p, (long)a->len)) != NULL);
	return r;
}

/* The single status of r, after checking its signature up to the root. */
static int single_status(OCSP_RESPONSE *r, int *reason)
{
	OCSP_BASICRESP *bs = OCSP_response_get1_basic(r);
	X509_STORE *st = X509_STORE_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	OCSP_SINGLERESP *s;
	ASN1_GENERALIZEDTIME *rev, *tu, *nu;
	int status;

	ck_assert(bs != NULL && st != NULL && chain != NULL);
	ck_assert(X509_STORE_add_cert(st, root_cert) == 1);
	ck_assert(sk_X509_push(chain, iss_cert) > 0);
	/* RFC 6960 §4.2.2.2: a delegated responder with id-kp-OCSPSigning */
	ck_assert_int_eq(OCSP_basic_verify(bs, chain, st, 0), 1);
	ck_assert_int_eq(OCSP_resp_count(bs), 1);
	ck_assert((s = OCSP_resp_get0(bs, 0)) != NULL);
	status = OCSP_single_get0_status(s, reason, &rev, &tu, &nu);
	ck_assert(tu != NULL && nu != NULL);
	sk_X509_free(chain);
	X509_STORE_free(st);
	OCSP_BASICRESP_free(bs);
	return status;
}

START_TEST(responder_cert_has_ocsp_signing_eku_nocheck_and_short_life)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(resp_cert, NID_ext_key_usage, NULL, NULL);
	int i = X509_get_ext_by_NID(resp_cert, NID_id_pkix_OCSP_noCheck, -1);
	ASN1_OCTET_STRING *v = i >= 0 ? X509_EXTENSION_get_data(X509_get_ext(resp_cert, i)) : NULL;
	int day, sec;

	ck_assert(eku != NULL && sk_ASN1_OBJECT_num(eku) == 1);
	ck_assert_int_eq(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_OCSP_sign);
	ck_assert(v != NULL && ASN1_STRING_length(v) == 2);
	ck_assert(memcmp(ASN1_STRING_get0_data(v), "\x05\x00", 2) == 0);
	ck_assert(X509_get_key_usage(resp_cert) == KU_DIGITAL_SIGNATURE);
	ck_assert(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(resp_cert), X509_get0_notAfter(resp_cert)));
	ck_assert_int_eq(day * 86400LL + sec, RESPONDER_VALIDITY + 60);
	ck_assert_int_eq(X509_check_issued(iss_cert, resp_cert), X509_V_OK);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
}
END_TEST

static const struct status_row {
	const char *serial;
	int status;
	int reason;
} status_rows[] = {
	{ "0a11", V_OCSP_CERTSTATUS_GOOD, -1 },
	{ "0b22", V_OCSP_CERTSTATUS_REVOKED, OCSP_REVOKED_STATUS_KEYCOMPROMISE },
	{ "0c33", V_OCSP_CERTSTATUS_UNKNOWN, -1 },   /* reserved only: never good */
	{ "0d44", V_OCSP_CERTSTATUS_UNKNOWN, -1 },   /* another CA's serial */
	{ "0e55", V_OCSP_CERTSTATUS_REVOKED, -1 },   /* unspecified: no reason */
	{ "1234", V_OCSP_CERTSTATUS_UNKNOWN, -1 },   /* not in the store */
	{ "01", V_OCSP_CERTSTATUS_UNKNOWN, -1 },
	{ "7fffffffffffffffffffffffffffffffffffffff", V_OCSP_CERTSTATUS_UNKNOWN, -1 }, /* 20 octets */
};

START_TEST(respond_gives_status_from_store_signed_by_delegated_responder)
{
	const struct status_row *row = &status_rows[_i];
	struct ocsp_answer a;
	int reason = -2;
	OCSP_RESPONSE *r = ask(row->serial, EVP_sha1(), false, &a);

	ck_assert_int_eq(OCSP_response_status(r), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	ck_assert_int_eq(single_status(r, &reason), row->status);
	if (row->status == V_OCSP_CERTSTATUS_REVOKED)
		ck_assert_int_eq(reason, row->reason);
	ck_assert(a.cacheable);
	ck_assert_int_eq(a.this_update, now_fixed);
	ck_assert_int_eq(a.next_update, now_fixed + (row->status == V_OCSP_CERTSTATUS_UNKNOWN
						       ? OCSP_UNKNOWN_TTL_S : (time_t)VALIDITY));
	ck_assert(strlen(a.etag) == 42);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
}
END_TEST

START_TEST(respond_matches_issuer_by_sha256_certid)
{
	struct ocsp_answer a;
	OCSP_RESPONSE *r = ask("0a11", EVP_sha256(), false, &a);

	ck_assert_int_eq(OCSP_response_status(r), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	ck_assert_int_eq(single_status(r, NULL), V_OCSP_CERTSTATUS_GOOD);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
}
END_TEST

START_TEST(respond_refuses_issuer_not_served_as_unauthorized)
{
	struct ocsp_answer a;
	unsigned char *der = NULL;
	size_t len = make_req(other_cert, "0a11", EVP_sha1(), false, 1, &der);

	ocsp_respond(resp, der, len, &a);
	ck_assert_int_eq(a.response_status, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
	ck_assert_int_eq(store_calls, 0);
	OPENSSL_free(der);
	ocsp_answer_free(&a);
}
END_TEST

/* Malformed input: empty, one byte, garbage, trailing bytes, over the cap,
 * too many CertIDs, cut short, a CertID that does not encode again. */
START_TEST(respond_refuses_malformed_requests)
{
	struct ocsp_answer a;
	unsigned char *good = NULL, *buf = calloc(OCSP_REQ_MAX + 64, 1);
	size_t glen = make_req(iss_cert, "0a11", EVP_sha1(), false, 1, &good), len = 0;
	const unsigned char *p;
	OCSP_RESPONSE *r;

	ck_assert(buf != NULL);
	switch (_i) {
	case 0: len = 0; break;
	case 1: len = 1; buf[0] = 0x30; break;
	case 2: memcpy(buf, "not DER at all", 14); len = 14; break;
	case 3: memcpy(buf, good, glen); buf[glen] = 0; len = glen + 1; break;
	case 4: memcpy(buf, good, glen); len = OCSP_REQ_MAX + 1; break;
	case 5: OPENSSL_free(good); good = NULL;
		glen = make_req(iss_cert, "0a11", EVP_sha1(), false, OCSP_MAX_CERTIDS + 1, &good);
		memcpy(buf, good, glen); len = glen; break;
	case 6: memcpy(buf, good, glen - 1); len = glen - 1; break;
	case 7: /* hashAlgorithm parameters [0] constructed, empty: decodes, never re-encodes */
		memcpy(buf, good, glen);
		len = glen;
		for (size_t k = 0; k + 9 <= len; k++)
			if (memcmp(buf + k, "\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00", 9) == 0)
				buf[k + 7] = 0x20;
		break;
	}
	ocsp_respond(resp, buf, len, &a);
	ck_assert_int_eq(a.response_status, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	p = a.der;
	ck_assert((r = d2i_OCSP_RESPONSE(NULL, &p, (long)a.len)) != NULL);
	ck_assert_int_eq(OCSP_response_status(r), OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	if (_i != 7) /* found malformed only when it is encoded for the answer */
		ck_assert_int_eq(store_calls, 0);
	OCSP_RESPONSE_free(r);
	OPENSSL_free(good);
	free(buf);
	ocsp_answer_free(&a);
}
END_TEST

START_TEST(respond_echoes_nonce_and_signs_fresh)
{
	unsigned char *der = NULL;
	size_t len = make_req(iss_cert, "0a11", EVP_sha1(), true, 1, &der);
	const unsigned char *p;
	OCSP_REQUEST *req;
	OCSP_RESPONSE *r;
	OCSP_BASICRESP *bs;
	struct ocsp_answer a;

	p = der;
	ck_assert((req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) != NULL);
	for (int k = 0; k < 2; k++) {
		ocsp_respond(resp, der, len, &a);
		ck_assert(!a.from_cache && !a.cacheable);
		p = a.der;
		ck_assert((r = d2i_OCSP_RESPONSE(NULL, &p, (long)a.len)) != NULL);
		ck_assert((bs = OCSP_response_get1_basic(r)) != NULL);
		ck_assert_int_eq(OCSP_check_nonce(req, bs), 1);
		OCSP_BASICRESP_free(bs);
		OCSP_RESPONSE_free(r);
		ocsp_answer_free(&a);
	}
	ck_assert_int_eq(store_calls, 2);
	OCSP_REQUEST_free(req);
	OPENSSL_free(der);
}
END_TEST

START_TEST(respond_serves_repeat_from_cache_without_store)
{
	struct ocsp_answer a, b;
	OCSP_RESPONSE *r1 = ask("0a11", EVP_sha1(), false, &a), *r2;

	ck_assert(!a.from_cache);
	store_down = true; /* a hit never asks the store */
	r2 = ask("0a11", EVP_sha1(), false, &b);
	ck_assert(b.from_cache);
	ck_assert(a.len == b.len && memcmp(a.der, b.der, a.len) == 0);
	ck_assert_str_eq(a.etag, b.etag);
	ck_assert_int_eq(store_calls, 1);
	OCSP_RESPONSE_free(r1);
	OCSP_RESPONSE_free(r2);
	ocsp_answer_free(&a);
	ocsp_answer_free(&b);
}
END_TEST

/* The HTTP threads answer from the cache only and hand the rest on. */
START_TEST(respond_cached_answers_hits_and_refusals_never_the_store)
{
	unsigned char *der = NULL, junk[3] = { 0x30, 0x01, 0x00 };
	size_t len = make_req(iss_cert, "0a11", EVP_sha1(), false, 1, &der);
	struct ocsp_answer a, b;

	ck_assert(!ocsp_respond_cached(resp, der, len, &a)); /* cold: needs the store */
	ck_assert_ptr_null(a.der);
	ck_assert_int_eq(store_calls, 0);
	ocsp_respond(resp, der, len, &a);
	ck_assert(ocsp_respond_cached(resp, der, len, &b)); /* now a hit */
	ck_assert(b.from_cache && b.len == a.len && memcmp(a.der, b.der, a.len) == 0);
	ck_assert_int_eq(store_calls, 1);
	ocsp_answer_free(&a);
	ocsp_answer_free(&b);
	ck_assert(ocsp_respond_cached(resp, junk, sizeof(junk), &a)); /* refused at once */
	ck_assert_int_eq(a.response_status, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	ocsp_answer_free(&a);
	OPENSSL_free(der);
	der = NULL;
	len = make_req(iss_cert, "0a11", EVP_sha1(), true, 1, &der); /* a nonce is signed fresh */
	ck_assert(!ocsp_respond_cached(resp, der, len, &a));
	ck_assert_int_eq(store_calls, 1);
	OPENSSL_free(der);
}
END_TEST

START_TEST(respond_gives_trylater_when_store_down_on_miss)
{
	struct ocsp_answer a;
	OCSP_RESPONSE *r;

	store_down = true;
	r = ask("0a11", EVP_sha1(), false, &a);
	ck_assert_int_eq(OCSP_response_status(r), OCSP_RESPONSE_STATUS_TRYLATER);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
}
END_TEST

START_TEST(invalidate_makes_revocation_visible_at_once)
{
	struct ocsp_answer a;
	OCSP_RESPONSE *r;

	r = ask("0a11", EVP_sha1(), false, &a);
	ck_assert_int_eq(single_status(r, NULL), V_OCSP_CERTSTATUS_GOOD);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	store_rows[0].revoked = true; /* the revoking transaction commits... */
	r = ask("0a11", EVP_sha1(), false, &a);
	ck_assert(a.from_cache);      /* ...not seen before the notification */
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	ocsp_cache_invalidate(cache, "0a11");
	r = ask("0a11", EVP_sha1(), false, &a);
	ck_assert(!a.from_cache);
	ck_assert_int_eq(single_status(r, NULL), V_OCSP_CERTSTATUS_REVOKED);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	store_rows[0].revoked = false;
}
END_TEST

/* A response signed from a status read before an invalidation is never kept. */
START_TEST(cache_drops_put_older_than_invalidation)
{
	struct ocsp_answer a = { 0 }, b = { 0 };
	unsigned long gen;
	static const unsigned char key[] = "certid";

	a.der = (unsigned char *)"resp";
	a.len = 4;
	a.this_update = now_fixed;
	a.next_update = now_fixed + 60;
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed, &b, &gen) == OCSP_CACHE_MISS);
	ocsp_cache_invalidate(cache, "0a11");
	ocsp_cache_put(cache, "0a11", key, 6, &a, now_fixed + 30, gen);
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed, &b, &gen) == OCSP_CACHE_MISS);
	ocsp_cache_put(cache, "0a11", key, 6, &a, now_fixed + 30, gen);
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed, &b, &gen) == OCSP_CACHE_HIT);
	ocsp_answer_free(&b);
	/* past the refresh time: one caller re-signs, the others get the copy */
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed + 31, &b, &gen) == OCSP_CACHE_REFRESH);
	ocsp_answer_free(&b);
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed + 31, &b, &gen) == OCSP_CACHE_HIT);
	ocsp_answer_free(&b);
	/* past nextUpdate: gone */
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed + 60, &b, &gen) == OCSP_CACHE_MISS);
	/* not live (revocations cannot be heard): nothing is kept */
	ocsp_cache_flush(cache);
	ocsp_cache_set_live(cache, false);
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed, &b, &gen) == OCSP_CACHE_MISS);
	ocsp_cache_put(cache, "0a11", key, 6, &a, now_fixed + 30, gen);
	ck_assert(ocsp_cache_get(cache, "0a11", key, 6, now_fixed, &b, &gen) == OCSP_CACHE_MISS);
}
END_TEST

START_TEST(cache_flush_star_and_sweep_drop_everything)
{
	struct ocsp_answer a;
	struct ocsp_cache_stats st;
	OCSP_RESPONSE *r = ask("0a11", EVP_sha1(), false, &a);

	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	r = ask("0b22", EVP_sha1(), false, &a);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	ocsp_cache_stats(cache, &st);
	ck_assert_int_eq(st.entries, 2);
	ocsp_cache_invalidate(cache, "*");
	ocsp_cache_stats(cache, &st);
	ck_assert_int_eq(st.entries, 0);
	r = ask("0a11", EVP_sha1(), false, &a);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	ocsp_cache_sweep(cache, now_fixed + VALIDITY);
	ocsp_cache_stats(cache, &st);
	ck_assert_int_eq(st.entries, 0);
}
END_TEST

START_TEST(respond_without_responder_cert_gives_trylater)
{
	struct ca_err err = { 0 };
	ocsp_responder *bare = ocsp_responder_new(NULL, NULL, VALIDITY, &err);
	unsigned char *der = NULL;
	size_t len = make_req(iss_cert, "0a11", EVP_sha1(), false, 1, &der);
	struct ocsp_answer a;

	ck_assert(bare != NULL);
	ocsp_responder_set_status_fn(bare, fake_status, NULL);
	ck_assert(ocsp_responder_add_ca(bare, ctx, &err) == 0);
	ocsp_respond(bare, der, len, &a);
	ck_assert_int_eq(a.response_status, OCSP_RESPONSE_STATUS_TRYLATER);
	ocsp_answer_free(&a);
	ocsp_responder_free(bare);
	OPENSSL_free(der);
}
END_TEST

START_TEST(respond_answers_several_certids_of_one_issuer)
{
	unsigned char *der = NULL;
	size_t len = make_req(iss_cert, "0b22", EVP_sha1(), false, 3, &der);
	const unsigned char *p;
	struct ocsp_answer a;
	OCSP_RESPONSE *r;
	OCSP_BASICRESP *bs;

	ocsp_respond(resp, der, len, &a);
	ck_assert_int_eq(a.response_status, OCSP_RESPONSE_STATUS_SUCCESSFUL);
	ck_assert(!a.cacheable);
	p = a.der;
	ck_assert((r = d2i_OCSP_RESPONSE(NULL, &p, (long)a.len)) != NULL);
	ck_assert((bs = OCSP_response_get1_basic(r)) != NULL);
	ck_assert_int_eq(OCSP_resp_count(bs), 3);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	OPENSSL_free(der);
}
END_TEST

static const struct get_row {
	const char *path;
	int ok;
	size_t len;
} get_rows[] = {
	{ "MAEC", 1, 3 },
	{ "MAE", 1, 2 },          /* padding left out */
	{ "MA==", 1, 1 },
	{ "-_8=", 1, 2 },         /* URL-safe alphabet */
	{ "", 0, 0 },
	{ "M", 0, 0 },
	{ "!!!!", 0, 0 },
	{ "MA==MA==", 0, 0 },     /* data after the padding */
};

START_TEST(decode_get_takes_base64_and_refuses_the_rest)
{
	unsigned char out[16];
	size_t len = 99;
	int rc = ocsp_decode_get(get_rows[_i].path, out, sizeof(out), &len);

	ck_assert_int_eq(rc == 0, get_rows[_i].ok);
	if (get_rows[_i].ok)
		ck_assert_uint_eq(len, get_rows[_i].len);
}
END_TEST

START_TEST(decode_get_refuses_more_than_cap)
{
	char path[64];
	unsigned char out[6];
	size_t len;

	memset(path, 'A', 8);
	path[8] = '\0';
	ck_assert_int_eq(ocsp_decode_get(path, out, sizeof(out), &len), 0);
	memset(path, 'A', 12);
	path[12] = '\0';
	ck_assert_int_eq(ocsp_decode_get(path, out, sizeof(out), &len), -1);
}
END_TEST

Suite *ocsp_suite(void)
{
	Suite *s = suite_create("ocsp");
	TCase *t = tcase_create("responder");
	TCase *g = tcase_create("get");

	tcase_add_unchecked_fixture(t, setup_keys, NULL);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, responder_cert_has_ocsp_signing_eku_nocheck_and_short_life);
	tcase_add_loop_test(t, respond_gives_status_from_store_signed_by_delegated_responder, 0,
			    (int)(sizeof(status_rows) / sizeof(status_rows[0])));
	tcase_add_test(t, respond_matches_issuer_by_sha256_certid);
	tcase_add_test(t, respond_refuses_issuer_not_served_as_unauthorized);
	tcase_add_loop_test(t, respond_refuses_malformed_requests, 0, 8);
	tcase_add_test(t, respond_echoes_nonce_and_signs_fresh);
	tcase_add_test(t, respond_serves_repeat_from_cache_without_store);
	tcase_add_test(t, respond_cached_answers_hits_and_refusals_never_the_store);
	tcase_add_test(t, respond_gives_trylater_when_store_down_on_miss);
	tcase_add_test(t, invalidate_makes_revocation_visible_at_once);
	tcase_add_test(t, cache_drops_put_older_than_invalidation);
	tcase_add_test(t, cache_flush_star_and_sweep_drop_everything);
	tcase_add_test(t, respond_without_responder_cert_gives_trylater);
	tcase_add_test(t, respond_answers_several_certids_of_one_issuer);
	suite_add_tcase(s, t);
	tcase_add_loop_test(g, decode_get_takes_base64_and_refuses_the_rest, 0,
			    (int)(sizeof(get_rows) / sizeof(get_rows[0])));
	tcase_add_test(g, decode_get_refuses_more_than_cap);
	suite_add_tcase(s, g);
	return s;
}
