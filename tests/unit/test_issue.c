/* ca_issue with a software CA (root -> issuing CA, no store, fixed clock):
 * what the certificate holds, who may ask, which names pass, re-enrollment. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <check.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "suites.h"

#define DAY 86400LL
#define DEVICE_VALIDITY (7 * DAY + 17) /* odd seconds: the arithmetic must be exact */
#define DEVICE_BACKDATE 60

/* ---- made once by the unchecked fixture (parent process) ---- */

static time_t now_fixed;               /* the injected clock */
static EVP_PKEY *root_pkey, *issuing_pkey, *issuing384_pkey;
static X509 *root_cert, *issuing_cert, *issuing384_cert;
static EVP_PKEY *sub_p256, *sub_p256_b, *sub_p384, *sub_rsa, *sub_ed25519;
static X509 *other_ca_leaf;            /* CN=dev1 from an unrelated CA */

/* ---- made per test by the checked fixture (child process) ---- */

static ca_ctx *ctx;

static const struct ca_requester who_factory = { .kind = CA_AUTH_BASIC, .id = "factory" };
static const struct ca_requester who_stranger = { .kind = CA_AUTH_BASIC, .id = "stranger" };
static const struct ca_requester who_plant = { .kind = CA_AUTH_CLIENT_CERT, .id = "/CN=old-device",
					       .anchor = "plant" };
static const struct ca_requester who_elsewhere = { .kind = CA_AUTH_CLIENT_CERT, .id = "/CN=old-device",
						   .anchor = "elsewhere" };
static const struct ca_requester who_operator = { .kind = CA_AUTH_OPERATOR, .id = "operator" };
static const struct ca_requester who_anonymous = { .kind = CA_AUTH_NONE, .id = "anonymous" };

static time_t fixed_clock(void *arg)
{
	return *(const time_t *)arg;
}

/* A malloc'd list of n strdup'd names, as ca_ctx_add_profile wants. */
static char **names(size_t n, ...)
{
	char **l = calloc(n + 1, sizeof(*l));
	va_list ap;

	ck_assert(l != NULL);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		ck_assert((l[i] = strdup(va_arg(ap, const char *))) != NULL);
	va_end(ap);
	return l;
}

static void add_profile(ca_ctx *c, struct ca_profile p)
{
	struct ca_err err = { 0 };

	ck_assert_msg(ca_ctx_add_profile(c, &p, &err) == 0, "%s", err.detail);
}

/* The profiles every test context has. */
static void add_profiles(ca_ctx *c)
{
	struct ca_profile device = {
		.name = "device", .key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA | CA_KEY_ED25519,
		.rsa_min_bits = 2048, .rsa_max_bits = 4096,
		.validity_seconds = DEVICE_VALIDITY, .backdate_seconds = DEVICE_BACKDATE,
		.eku = CA_EKU_CLIENT_AUTH, .max_sans = 2, .allow_reenroll = true,
		.basic_users = names(1, "factory"), .n_basic_users = 1,
		.cert_anchors = names(2, "plant", "test"), .n_cert_anchors = 2,
	};
	struct ca_profile server = {
		.name = "server", .key_types = CA_KEY_EC_P256, .rsa_min_bits = 2048, .rsa_max_bits = 4096,
		.validity_seconds = DAY, .backdate_seconds = 0,
		.eku = CA_EKU_SERVER_AUTH | CA_EKU_CLIENT_AUTH, .max_sans = 4,
		.basic_users = names(1, "admin"), .n_basic_users = 1, .operator_allowed = true,
	};
	/* 30 years, under an issuing CA of one year; no EKU at all. */
	struct ca_profile longp = {
		.name = "long", .key_types = CA_KEY_EC_P256, .rsa_min_bits = 2048, .rsa_max_bits = 4096,
		.validity_seconds = 30 * 365 * DAY, .backdate_seconds = 300,
		.max_sans = 1, .operator_allowed = true,
	};
	struct ca_profile nosan = {
		.name = "nosan", .key_types = CA_KEY_EC_P256, .rsa_min_bits = 2048, .rsa_max_bits = 4096,
		.validity_seconds = DAY, .max_sans = 0, .operator_allowed = true,
	};

	add_profile(c, device);
	add_profile(c, server);
	add_profile(c, longp);
	add_profile(c, nosan);
}

/* A context for issuing_key/issuing_cert; the context takes its own references. */
static ca_ctx *new_ctx(const char *name, EVP_PKEY *key, X509 *cert, X509 *root)
{
	struct ca_err err = { 0 };
	ca_ctx *c;

	ck_assert(EVP_PKEY_up_ref(key) == 1 && X509_up_ref(cert) == 1);
	if (root != NULL)
		ck_assert(X509_up_ref(root) == 1);
	c = ca_ctx_new(name, sig_mem_key(key), cert, root, NULL, &err);
	ck_assert_msg(c != NULL, "ca_ctx_new: %s", err.detail);
	ca_ctx_set_clock(c, fixed_clock, &now_fixed);
	add_profiles(c);
	return c;
}

/* ---- requests ---- */

struct san {
	int type;      /* GEN_DNS, GEN_IPADD, GEN_EMAIL */
	const char *v; /* IP: 4 or 16 raw bytes */
	int len;       /* 0: strlen(v) */
};

/* A DER request for k with subject CN=cn (NULL: empty subject; cn_len for
 * bytes such as NUL) and the given SANs. Caller frees with OPENSSL_free. */
static size_t make_csr_n(EVP_PKEY *k, const char *cn, int cn_len, const struct san *sans, int n,
			 unsigned char **der)
{
	X509_REQ *r = X509_REQ_new();
	int id = EVP_PKEY_get_base_id(k);
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	int len;

	ck_assert(r != NULL && X509_REQ_set_version(r, X509_REQ_VERSION_1) && X509_REQ_set_pubkey(r, k));
	if (cn != NULL)
		ck_assert(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", V_ASN1_UTF8STRING,
						     (const unsigned char *)cn, cn_len ? cn_len : -1, -1, 0));
	if (n > 0) {
		ck_assert((gens = GENERAL_NAMES_new()) != NULL);
		for (int i = 0; i < n; i++) {
			GENERAL_NAME *g = GENERAL_NAME_new();
			ASN1_STRING *s = sans[i].type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
			int l = sans[i].len ? sans[i].len : (int)strlen(sans[i].v);
			ck_assert(g != NULL && s != NULL && ASN1_STRING_set(s, sans[i].v, l));
			GENERAL_NAME_set0_value(g, sans[i].type, s);
			ck_assert(sk_GENERAL_NAME_push(gens, g));
		}
		ck_assert(X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1);
		ck_assert(X509_REQ_add_extensions(r, exts));
	}
	ck_assert(X509_REQ_sign(r, k, (id == EVP_PKEY_ED25519) ? NULL : EVP_sha256()) > 0);
	*der = NULL;
	ck_assert((len = i2d_X509_REQ(r, der)) > 0);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(r);
	return (size_t)len;
}

static size_t make_csr(EVP_PKEY *k, const char *cn, const struct san *sans, int n, unsigned char **der)
{
	return make_csr_n(k, cn, 0, sans, n, der);
}

static const struct san san_dev1[] = { { GEN_DNS, "dev1.example", 0 } };
static const struct san san_dev1_ip[] = { { GEN_DNS, "dev1.example", 0 }, { GEN_IPADD, "\xc0\x00\x02\x01", 4 } };

static int issue(ca_ctx *c, const char *profile, const struct ca_requester *who, const unsigned char *der,
		 size_t len, X509 *renew_of, struct ca_issue_res *res, struct ca_err *err)
{
	struct ca_issue_req req = {
		.csr_der = der, .csr_len = len, .profile = profile, .who = who,
		.protocol = "cli", .renew_of = renew_of,
	};

	memset(err, 0, sizeof(*err));
	return ca_issue(c, &req, res, err);
}

/* The certificate as a client receives it: encoded, then decoded again. */
static X509 *reparse(const X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len = i2d_X509(x, &der);
	X509 *y;

	ck_assert(len > 0);
	p = der;
	ck_assert((y = d2i_X509(NULL, &p, len)) != NULL);
	ck_assert(p == der + len);
	OPENSSL_free(der);
	return y;
}

/* Issue a CN=cn certificate or fail the test; returns it as a client
 * receives it (see reparse). Caller frees with X509_free. */
static X509 *issue_ok(ca_ctx *c, const char *profile, const struct ca_requester *who, EVP_PKEY *k,
		      const char *cn, const struct san *sans, int n)
{
	unsigned char *der;
	size_t len = make_csr(k, cn, sans, n, &der);
	struct ca_issue_res res;
	struct ca_err err;
	X509 *x;

	ck_assert_msg(issue(c, profile, who, der, len, NULL, &res, &err) == 0, "issue: %s", err.detail);
	ck_assert(res.cert != NULL);
	x = reparse(res.cert);
	ca_issue_res_free(&res);
	OPENSSL_free(der);
	return x;
}

/* Refused with `code`, and no certificate handed back. */
static void expect_refused(const char *profile, const struct ca_requester *who, const unsigned char *der,
			   size_t len, X509 *renew_of, enum ca_code code, const char *what)
{
	struct ca_issue_res res;
	struct ca_err err;
	int rc = issue(ctx, profile, who, der, len, renew_of, &res, &err);

	ck_assert_msg(rc == -1, "%s: issued", what);
	ck_assert_ptr_null(res.cert);
	ck_assert_msg(err.code == code, "%s: code %s, want %s (%s)", what, ca_code_str(err.code),
		      ca_code_str(code), err.detail);
	ck_assert_msg(err.detail[0] != '\0', "%s: no detail", what);
}

/* X509_verify_cert up to the root at the injected time, RFC 5280 strict. */
static int verify_chain(X509 *leaf, X509 *issuer, X509 *root)
{
	X509_STORE *st = X509_STORE_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	int e;

	ck_assert(st != NULL && untrusted != NULL && vc != NULL);
	ck_assert(X509_STORE_add_cert(st, root) == 1);
	if (issuer != root)
		ck_assert(sk_X509_push(untrusted, issuer) > 0);
	ck_assert(X509_STORE_CTX_init(vc, st, leaf, untrusted) == 1);
	X509_STORE_CTX_set_time(vc, 0, now_fixed);
	X509_STORE_CTX_set_flags(vc, X509_V_FLAG_X509_STRICT);
	e = X509_verify_cert(vc) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(vc);
	X509_STORE_CTX_free(vc);
	sk_X509_free(untrusted);
	X509_STORE_free(st);
	return e;
}

static time_t to_time(const ASN1_TIME *t)
{
	struct tm tm;

	ck_assert(ASN1_TIME_to_tm(t, &tm) == 1);
	return timegm(&tm);
}

/* ---- fixtures ---- */

static EVP_PKEY *gen(const char *alg, const char *curve)
{
	EVP_PKEY *k = curve ? EVP_PKEY_Q_keygen(NULL, NULL, alg, curve) : EVP_PKEY_Q_keygen(NULL, NULL, alg);

	ck_assert_msg(k != NULL, "cannot generate %s key", alg);
	return k;
}

static void setup_ca(void)
{
	struct ca_err err = { 0 };
	sig_key *root_sig;
	ca_ctx *other;
	EVP_PKEY *other_key;
	X509 *other_root;

	if (root_cert != NULL)
		return;
	now_fixed = time(NULL) + 300;
	root_pkey = gen("EC", "P-256");
	issuing_pkey = gen("EC", "P-256");
	issuing384_pkey = gen("EC", "P-384");
	ck_assert(EVP_PKEY_up_ref(root_pkey) == 1);
	root_sig = sig_mem_key(root_pkey);
	root_cert = ca_make_root(root_sig, "/CN=test root", 10 * 365 * DAY, &err);
	ck_assert_msg(root_cert != NULL, "root: %s", err.detail);
	issuing_cert = ca_make_intermediate(root_sig, root_cert, issuing_pkey, "/CN=test issuing/O=mintca tests",
					    365 * DAY, &err);
	ck_assert_msg(issuing_cert != NULL, "issuing: %s", err.detail);
	issuing384_cert = ca_make_intermediate(root_sig, root_cert, issuing384_pkey, "/CN=test issuing p384",
					       365 * DAY, &err);
	ck_assert_msg(issuing384_cert != NULL, "issuing p384: %s", err.detail);
	sig_close(root_sig);

	sub_p256 = gen("EC", "P-256");
	sub_p256_b = gen("EC", "P-256");
	sub_p384 = gen("EC", "P-384");
	sub_ed25519 = gen("ED25519", NULL);
	sub_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ck_assert(sub_rsa != NULL);

	/* An unrelated CA that has issued CN=dev1 / dev1.example too. */
	other_key = gen("EC", "P-256");
	ck_assert(EVP_PKEY_up_ref(other_key) == 1);
	root_sig = sig_mem_key(other_key);
	other_root = ca_make_root(root_sig, "/CN=other root", 365 * DAY, &err);
	ck_assert_msg(other_root != NULL, "other root: %s", err.detail);
	sig_close(root_sig);
	other = new_ctx("other", other_key, other_root, NULL);
	other_ca_leaf = issue_ok(other, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	ca_ctx_free(other);
	EVP_PKEY_free(other_key);
	X509_free(other_root);
}

/* Registered on the last test case only: the keys serve every case. */
static void teardown_ca(void)
{
	EVP_PKEY **keys[] = { &root_pkey, &issuing_pkey, &issuing384_pkey, &sub_p256, &sub_p256_b,
			      &sub_p384, &sub_rsa, &sub_ed25519 };
	X509 **certs[] = { &root_cert, &issuing_cert, &issuing384_cert, &other_ca_leaf };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		EVP_PKEY_free(*keys[i]);
		*keys[i] = NULL;
	}
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		X509_free(*certs[i]);
		*certs[i] = NULL;
	}
}

static void setup_ctx(void)
{
	ctx = new_ctx("test", issuing_pkey, issuing_cert, root_cert);
}

static void teardown_ctx(void)
{
	ca_ctx_free(ctx);
	ctx = NULL;
}

/* ---- the certificate ---- */

START_TEST(issue_signs_certificate_that_verifies_up_to_root)
{
	unsigned char *der;
	size_t len = make_csr(sub_p256, "dev1", san_dev1, 1, &der);
	struct ca_issue_res res;
	struct ca_err err;
	X509 *x;
	BIGNUM *bn;
	char *hex;
	int e;

	ck_assert_msg(issue(ctx, "device", &who_factory, der, len, NULL, &res, &err) == 0, "%s", err.detail);
	x = reparse(res.cert);
	ck_assert_int_eq(X509_get_version(x), X509_VERSION_3);
	ck_assert_int_eq(X509_verify(x, issuing_pkey), 1);
	ck_assert_int_eq(X509_verify(x, root_pkey), 0);
	e = verify_chain(x, issuing_cert, root_cert);
	ck_assert_msg(e == X509_V_OK, "chain: %s", X509_verify_cert_error_string(e));
	ck_assert_int_eq(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuing_cert)), 0);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), sub_p256), 1);
	ck_assert_int_eq(X509_check_ca(x), 0);
	ck_assert_int_eq(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
	/* serial_hex is the certificate's serial */
	ck_assert((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) != NULL);
	ck_assert((hex = BN_bn2hex(bn)) != NULL);
	ck_assert_msg(strcasecmp(hex, res.serial_hex) == 0, "serial %s, serial_hex %s", hex, res.serial_hex);
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	ca_issue_res_free(&res);
	ck_assert_ptr_null(res.cert);
	OPENSSL_free(der);
}
END_TEST

/* ca_issue hands back the DER it committed: it is the certificate's own
 * encoding, and decoding it gives the CSR's key and a valid chain. */
START_TEST(issue_returns_der_equal_to_certificate_with_usable_key)
{
	unsigned char *der, *enc = NULL;
	const unsigned char *p;
	size_t len = make_csr(sub_p256, "dev1", san_dev1, 1, &der);
	struct ca_issue_res res;
	struct ca_err err;
	X509 *x;
	int e, elen;

	ck_assert_msg(issue(ctx, "device", &who_factory, der, len, NULL, &res, &err) == 0, "%s", err.detail);
	ck_assert(res.der != NULL && res.der_len > 0);
	elen = i2d_X509(res.cert, &enc);
	ck_assert_int_eq((size_t)elen, res.der_len);
	ck_assert_int_eq(memcmp(enc, res.der, res.der_len), 0);
	p = res.der;
	ck_assert((x = d2i_X509(NULL, &p, (long)res.der_len)) != NULL);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), sub_p256), 1);
	e = verify_chain(x, issuing_cert, root_cert);
	ck_assert_msg(e == X509_V_OK, "chain: %s", X509_verify_cert_error_string(e));
	X509_free(x);
	OPENSSL_free(enc);
	ca_issue_res_free(&res);
	ck_assert_ptr_null(res.der);
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_copies_subject_and_sans_from_csr)
{
	unsigned char *der;
	size_t len = make_csr(sub_p256, "dev1", san_dev1_ip, 2, &der);
	const unsigned char *p = der;
	X509_REQ *csr = d2i_X509_REQ(NULL, &p, (long)len);
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
	GENERAL_NAMES *want = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	GENERAL_NAMES *got;
	unsigned char *a = NULL, *b = NULL;
	int la, lb, crit = -1;
	struct ca_issue_res res;
	struct ca_err err;

	ck_assert_msg(issue(ctx, "device", &who_factory, der, len, NULL, &res, &err) == 0, "%s", err.detail);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(res.cert), X509_REQ_get_subject_name(csr)), 0);
	got = X509_get_ext_d2i(res.cert, NID_subject_alt_name, &crit, NULL);
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(crit, 0); /* the subject is not empty */
	la = i2d_GENERAL_NAMES(want, &a);
	lb = i2d_GENERAL_NAMES(got, &b);
	ck_assert(la > 0 && la == lb && memcmp(a, b, (size_t)la) == 0);
	OPENSSL_free(a);
	OPENSSL_free(b);
	GENERAL_NAMES_free(want);
	GENERAL_NAMES_free(got);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(csr);
	ca_issue_res_free(&res);
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_validity_is_profile_validity_plus_backdate)
{
	X509 *x = issue_ok(ctx, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	int days, secs;

	ck_assert_int_eq(to_time(X509_get0_notBefore(x)), now_fixed - DEVICE_BACKDATE);
	ck_assert_int_eq(to_time(X509_get0_notAfter(x)), now_fixed + DEVICE_VALIDITY);
	ck_assert(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)));
	ck_assert_int_eq((long long)days * DAY + secs, DEVICE_VALIDITY + DEVICE_BACKDATE);
	X509_free(x);
}
END_TEST

START_TEST(issue_clamps_validity_to_issuing_ca_not_after)
{
	X509 *x = issue_ok(ctx, "long", &who_operator, sub_p256, "dev1", san_dev1, 1);
	int e;

	ck_assert_int_eq(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuing_cert)), 0);
	ck_assert_int_eq(to_time(X509_get0_notBefore(x)), now_fixed - 300);
	e = verify_chain(x, issuing_cert, root_cert);
	ck_assert_msg(e == X509_V_OK, "chain: %s", X509_verify_cert_error_string(e));
	X509_free(x);
}
END_TEST

/* Seconds after the issuing CA's notAfter. The device profile backdates
 * notBefore by 60 s: that must not let an expired CA issue. */
static const long expired_rows[] = { 1, 59, 61, 3600, 400 * DAY };

START_TEST(issue_refuses_when_issuing_ca_has_expired)
{
	unsigned char *der;
	size_t len = make_csr(sub_p256, "dev1", san_dev1, 1, &der);
	struct ca_issue_res res;
	struct ca_err err;
	time_t late = to_time(X509_get0_notAfter(issuing_cert)) + expired_rows[_i];
	int rc;

	ca_ctx_set_clock(ctx, fixed_clock, &late);
	rc = issue(ctx, "device", &who_factory, der, len, NULL, &res, &err);
	ck_assert_msg(rc == -1, "CA expired %ld s ago: issued a certificate valid until %ld s before now",
		      expired_rows[_i], (long)(late - to_time(X509_get0_notAfter(res.cert))));
	ck_assert_ptr_null(res.cert);
	ck_assert_int_ne(err.code, CA_OK);
	OPENSSL_free(der);
}
END_TEST

static const struct usage_row {
	const char *what;
	const char *profile;
	const struct ca_requester *who;
	EVP_PKEY **key;
	uint32_t ku;       /* X509_get_key_usage */
	bool has_eku;
	uint32_t xku;      /* X509_get_extended_key_usage */
} usage_rows[] = {
	{ "EC P-256, client profile", "device", &who_factory, &sub_p256, KU_DIGITAL_SIGNATURE, true, XKU_SSL_CLIENT },
	{ "EC P-384, client profile", "device", &who_factory, &sub_p384, KU_DIGITAL_SIGNATURE, true, XKU_SSL_CLIENT },
	{ "RSA 2048, client profile", "device", &who_factory, &sub_rsa,
	  KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, true, XKU_SSL_CLIENT },
	{ "Ed25519, client profile", "device", &who_factory, &sub_ed25519, KU_DIGITAL_SIGNATURE, true, XKU_SSL_CLIENT },
	{ "EC P-256, server+client profile", "server", &who_operator, &sub_p256, KU_DIGITAL_SIGNATURE, true,
	  XKU_SSL_SERVER | XKU_SSL_CLIENT },
	{ "EC P-256, profile without EKU", "long", &who_operator, &sub_p256, KU_DIGITAL_SIGNATURE, false, 0 },
};

START_TEST(issue_sets_key_usage_and_eku_per_profile_and_key_type)
{
	const struct usage_row *row = &usage_rows[_i];
	X509 *x = issue_ok(ctx, row->profile, row->who, *row->key, "dev1", san_dev1, 1);
	int crit = -1, e;
	void *ext;

	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), *row->key), 1);
	ck_assert_int_eq(X509_verify(x, issuing_pkey), 1);
	e = verify_chain(x, issuing_cert, root_cert);
	ck_assert_msg(e == X509_V_OK, "%s: chain: %s", row->what, X509_verify_cert_error_string(e));
	ck_assert_msg(X509_get_key_usage(x) == row->ku, "%s: key usage 0x%x", row->what, X509_get_key_usage(x));
	ext = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	ck_assert_msg(ext != NULL && crit == 1, "%s: key usage not critical", row->what);
	ASN1_BIT_STRING_free(ext);
	ext = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	ck_assert_msg(ext != NULL && crit == 1 && !((BASIC_CONSTRAINTS *)ext)->ca, "%s: basicConstraints", row->what);
	BASIC_CONSTRAINTS_free(ext);
	ck_assert_msg(((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) != 0) == row->has_eku, "%s: EKU presence",
		      row->what);
	if (row->has_eku)
		ck_assert_msg(X509_get_extended_key_usage(x) == row->xku, "%s: EKU 0x%x", row->what,
			      X509_get_extended_key_usage(x));
	X509_free(x);
}
END_TEST

START_TEST(issue_sets_subject_key_id_and_authority_key_id_of_ca)
{
	X509 *x = issue_ok(ctx, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	ck_assert_ptr_nonnull(skid);
	ck_assert_ptr_nonnull(akid);
	/* RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
	ck_assert(X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) == 1);
	ck_assert_int_eq(ASN1_STRING_length(skid), (int)mdlen);
	ck_assert(memcmp(ASN1_STRING_get0_data(skid), md, mdlen) == 0);
	ck_assert_ptr_nonnull(X509_get0_subject_key_id(issuing_cert));
	ck_assert_int_eq(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(issuing_cert)), 0);
	ck_assert_int_ne(ASN1_OCTET_STRING_cmp(skid, akid), 0);
	X509_free(x);
}
END_TEST

START_TEST(issue_signs_with_digest_matching_ca_curve)
{
	ca_ctx *c384 = new_ctx("test384", issuing384_pkey, issuing384_cert, root_cert);
	X509 *x256 = issue_ok(ctx, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	X509 *x384 = issue_ok(c384, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	int e;

	ck_assert_str_eq(OBJ_nid2sn(X509_get_signature_nid(x256)), OBJ_nid2sn(NID_ecdsa_with_SHA256));
	ck_assert_str_eq(OBJ_nid2sn(X509_get_signature_nid(x384)), OBJ_nid2sn(NID_ecdsa_with_SHA384));
	ck_assert_int_eq(X509_verify(x384, issuing384_pkey), 1);
	e = verify_chain(x384, issuing384_cert, root_cert);
	ck_assert_msg(e == X509_V_OK, "chain: %s", X509_verify_cert_error_string(e));
	X509_free(x256);
	X509_free(x384);
	ca_ctx_free(c384);
}
END_TEST

struct fixed_rand {
	unsigned char byte;
};

static int fixed_rand_fn(unsigned char *buf, size_t len, void *arg)
{
	memset(buf, ((struct fixed_rand *)arg)->byte, len);
	return 0;
}

static int failing_rand_fn(unsigned char *buf, size_t len, void *arg)
{
	(void)buf;
	(void)len;
	(void)arg;
	return -1;
}

START_TEST(issue_takes_serial_from_injected_rand)
{
	struct fixed_rand f = { 0x00 };
	X509 *x;
	BIGNUM *bn;
	char *hex;

	ca_ctx_set_rand(ctx, fixed_rand_fn, &f);
	x = issue_ok(ctx, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	ck_assert((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) != NULL);
	ck_assert((hex = BN_bn2hex(bn)) != NULL);
	ck_assert_str_eq(hex, "01000000000000000000000000000000");
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
}
END_TEST

START_TEST(issue_fails_when_rand_fails)
{
	unsigned char *der;
	size_t len = make_csr(sub_p256, "dev1", san_dev1, 1, &der);

	ca_ctx_set_rand(ctx, failing_rand_fn, NULL);
	expect_refused("device", &who_factory, der, len, NULL, CA_E_INTERNAL, "failing rand");
	OPENSSL_free(der);
}
END_TEST

/* ---- who may ask ---- */

static const struct auth_row {
	const char *what;
	const char *profile;
	const struct ca_requester *who;
	enum ca_code want; /* CA_OK: issued */
} auth_rows[] = {
	{ "basic user listed in the profile", "device", &who_factory, CA_OK },
	{ "basic user not in the profile", "device", &who_stranger, CA_E_FORBIDDEN },
	{ "basic user of another profile", "device", &(const struct ca_requester){ CA_AUTH_BASIC, "admin", "" },
	  CA_E_FORBIDDEN },
	{ "client certificate from a listed anchor", "device", &who_plant, CA_OK },
	{ "client certificate from an unlisted anchor", "device", &who_elsewhere, CA_E_FORBIDDEN },
	{ "client certificate whose id is a listed user", "device",
	  &(const struct ca_requester){ CA_AUTH_CLIENT_CERT, "factory", "elsewhere" }, CA_E_FORBIDDEN },
	{ "client certificate whose id is a listed anchor", "device",
	  &(const struct ca_requester){ CA_AUTH_CLIENT_CERT, "plant", "elsewhere" }, CA_E_FORBIDDEN },
	{ "basic user named like a listed anchor", "device",
	  &(const struct ca_requester){ CA_AUTH_BASIC, "plant", "" }, CA_E_FORBIDDEN },
	{ "operator, profile allows operators", "server", &who_operator, CA_OK },
	{ "operator, profile does not allow operators", "device", &who_operator, CA_E_FORBIDDEN },
	{ "anonymous", "device", &who_anonymous, CA_E_UNAUTHENTICATED },
	{ "anonymous, profile allows operators", "server", &who_anonymous, CA_E_UNAUTHENTICATED },
	{ "no requester at all", "device", NULL, CA_E_UNAUTHENTICATED },
	{ "unknown profile", "printer", &who_factory, CA_E_UNKNOWN_PROFILE },
	{ "unknown profile, anonymous", "printer", &who_anonymous, CA_E_UNKNOWN_PROFILE },
	{ "no profile name", NULL, &who_operator, CA_E_UNKNOWN_PROFILE },
	{ "empty profile name", "", &who_operator, CA_E_UNKNOWN_PROFILE },
};

START_TEST(issue_authorizes_requester_per_profile)
{
	const struct auth_row *row = &auth_rows[_i];
	unsigned char *der;
	size_t len = make_csr(sub_p256, "dev1", san_dev1, 1, &der);
	struct ca_issue_res res;
	struct ca_err err;
	int rc = issue(ctx, row->profile, row->who, der, len, NULL, &res, &err);

	if (row->want == CA_OK) {
		ck_assert_msg(rc == 0, "%s: refused: %s", row->what, err.detail);
		ck_assert_ptr_nonnull(res.cert);
	} else {
		ck_assert_msg(rc == -1, "%s: issued", row->what);
		ck_assert_ptr_null(res.cert);
		ck_assert_msg(err.code == row->want, "%s: code %s, want %s (%s)", row->what,
			      ca_code_str(err.code), ca_code_str(row->want), err.detail);
	}
	ca_issue_res_free(&res);
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_checks_requester_before_parsing_csr)
{
	static const unsigned char garbage[] = "not a request";

	expect_refused("device", &who_anonymous, garbage, sizeof(garbage), NULL, CA_E_UNAUTHENTICATED,
		       "anonymous with garbage");
	expect_refused("device", &who_stranger, garbage, sizeof(garbage), NULL, CA_E_FORBIDDEN,
		       "stranger with garbage");
	expect_refused("device", &who_factory, garbage, sizeof(garbage), NULL, CA_E_BAD_CSR,
		       "allowed user with garbage");
}
END_TEST

/* ---- the request itself ---- */

START_TEST(issue_refuses_csr_with_bad_signature)
{
	unsigned char *der;
	size_t len = make_csr(sub_p256, "dev1", san_dev1, 1, &der);

	der[len - 1] ^= 0x01; /* last byte of the signature */
	expect_refused("device", &who_factory, der, len, NULL, CA_E_BAD_SIGNATURE, "flipped signature");
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_refuses_key_the_profile_does_not_allow)
{
	unsigned char *der;
	size_t len = make_csr(sub_p384, "dev1", san_dev1, 1, &der);

	expect_refused("server", &who_operator, der, len, NULL, CA_E_KEY_REFUSED, "P-384 on a P-256 profile");
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_takes_up_to_max_sans)
{
	static const struct san three[] = {
		{ GEN_DNS, "a.example", 0 }, { GEN_DNS, "b.example", 0 }, { GEN_DNS, "c.example", 0 },
	};
	unsigned char *der;
	size_t len;
	X509 *x;

	/* device allows 2 */
	x = issue_ok(ctx, "device", &who_factory, sub_p256, "dev1", three, 2);
	X509_free(x);
	len = make_csr(sub_p256, "dev1", three, 3, &der);
	expect_refused("device", &who_factory, der, len, NULL, CA_E_NAME_REFUSED, "3 SANs, max 2");
	OPENSSL_free(der);
	/* nosan allows none */
	x = issue_ok(ctx, "nosan", &who_operator, sub_p256, "dev1", NULL, 0);
	X509_free(x);
	len = make_csr(sub_p256, "dev1", three, 1, &der);
	expect_refused("nosan", &who_operator, der, len, NULL, CA_E_NAME_REFUSED, "1 SAN, max 0");
	OPENSSL_free(der);
}
END_TEST

static const struct {
	const char *what;
	struct san san;
} bad_san_rows[] = {
	{ "dNSName with a NUL byte", { GEN_DNS, "dev1\0.example", 13 } },
	{ "dNSName with a space", { GEN_DNS, "dev1 .example", 0 } },
	{ "dNSName with a newline", { GEN_DNS, "dev1\n.example", 0 } },
	{ "dNSName with a slash", { GEN_DNS, "dev1/x.example", 0 } },
	{ "dNSName with a non-ASCII byte", { GEN_DNS, "d\xc3\xa9v1.example", 0 } },
	{ "empty dNSName", { GEN_DNS, "", 0 } },
	{ "rfc822Name with a NUL byte", { GEN_EMAIL, "dev1@exa\0mple", 13 } },
	{ "iPAddress of 5 octets", { GEN_IPADD, "\xc0\x00\x02\x01\x01", 5 } },
};

START_TEST(issue_refuses_san_with_forbidden_bytes)
{
	unsigned char *der;
	size_t len = make_csr_n(sub_p256, "dev1", 0, &bad_san_rows[_i].san, 1, &der);
	expect_refused("device", &who_factory, der, len, NULL, CA_E_NAME_REFUSED, bad_san_rows[_i].what);
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_refuses_empty_subject_without_san)
{
	unsigned char *der;
	size_t len = make_csr(sub_p256, NULL, NULL, 0, &der);

	expect_refused("device", &who_factory, der, len, NULL, CA_E_NAME_REFUSED, "no subject, no SAN");
	OPENSSL_free(der);
}
END_TEST

START_TEST(issue_gives_empty_subject_a_critical_san)
{
	X509 *x = issue_ok(ctx, "device", &who_factory, sub_p256, NULL, san_dev1, 1);
	int crit = -1, e;
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);

	ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(crit, 1);
	e = verify_chain(x, issuing_cert, root_cert);
	ck_assert_msg(e == X509_V_OK, "chain: %s", X509_verify_cert_error_string(e));
	GENERAL_NAMES_free(g);
	X509_free(x);
}
END_TEST

START_TEST(issue_refuses_subject_with_nul_byte)
{
	unsigned char *der;
	size_t len = make_csr_n(sub_p256, "dev1\0evil", 9, san_dev1, 1, &der);

	expect_refused("device", &who_factory, der, len, NULL, CA_E_NAME_REFUSED, "NUL in CN");
	OPENSSL_free(der);
}
END_TEST

/* ---- re-enrollment ---- */

enum renew_of { R_OURS, R_OTHER_CA, R_FORGED };

static const struct renew_row {
	const char *what;
	const char *profile;
	const struct ca_requester *who;
	const char *cn;
	const struct san *sans;
	int n_sans;
	enum renew_of of;
	enum ca_code want;
} renew_rows[] = {
	{ "same subject and SAN", "device", &who_factory, "dev1", san_dev1, 1, R_OURS, CA_OK },
	{ "same names, by client certificate", "device",
	  &(const struct ca_requester){ CA_AUTH_CLIENT_CERT, "/CN=dev1", "test" }, "dev1", san_dev1, 1, R_OURS, CA_OK },
	{ "different subject", "device", &who_factory, "dev2", san_dev1, 1, R_OURS, CA_E_NAME_REFUSED },
	{ "different SAN", "device", &who_factory, "dev1", (const struct san[]){ { GEN_DNS, "dev2.example", 0 } }, 1,
	  R_OURS, CA_E_NAME_REFUSED },
	{ "SAN dropped", "device", &who_factory, "dev1", NULL, 0, R_OURS, CA_E_NAME_REFUSED },
	{ "SAN added", "device", &who_factory, "dev1", san_dev1_ip, 2, R_OURS, CA_E_NAME_REFUSED },
	{ "certificate from another CA", "device", &who_factory, "dev1", san_dev1, 1, R_OTHER_CA, CA_E_FORBIDDEN },
	{ "our issuer name and key id, another signature", "device", &who_factory, "dev1", san_dev1, 1, R_FORGED,
	  CA_E_FORBIDDEN },
	{ "profile without re-enrollment", "server", &who_operator, "dev1", san_dev1, 1, R_OURS, CA_E_FORBIDDEN },
	{ "anonymous", "device", &who_anonymous, "dev1", san_dev1, 1, R_OURS, CA_E_UNAUTHENTICATED },
};

START_TEST(issue_reenrolls_only_with_same_names_and_own_certificate)
{
	const struct renew_row *row = &renew_rows[_i];
	X509 *ours = issue_ok(ctx, "device", &who_factory, sub_p256, "dev1", san_dev1, 1);
	X509 *forged = X509_dup(ours), *old;
	unsigned char *der;
	size_t len = make_csr(sub_p256_b, row->cn, row->sans, row->n_sans, &der);
	struct ca_issue_res res;
	struct ca_err err;
	int rc;

	/* Same TBS (issuer name, AKID), signed by a key that is not the CA's. */
	ck_assert(forged != NULL && X509_sign(forged, sub_p384, EVP_sha384()) > 0);
	old = row->of == R_OURS ? ours : row->of == R_OTHER_CA ? other_ca_leaf : forged;
	rc = issue(ctx, row->profile, row->who, der, len, old, &res, &err);
	if (row->want == CA_OK) {
		X509 *x;
		ck_assert_msg(rc == 0, "%s: refused: %s", row->what, err.detail);
		x = reparse(res.cert);
		ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(ours)), 0);
		ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), sub_p256_b), 1);
		ck_assert_int_ne(ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber(ours)), 0);
		ck_assert_int_eq(verify_chain(x, issuing_cert, root_cert), X509_V_OK);
		X509_free(x);
	} else {
		ck_assert_msg(rc == -1, "%s: issued", row->what);
		ck_assert_ptr_null(res.cert);
		ck_assert_msg(err.code == row->want, "%s: code %s, want %s (%s)", row->what,
			      ca_code_str(err.code), ca_code_str(row->want), err.detail);
	}
	ca_issue_res_free(&res);
	OPENSSL_free(der);
	X509_free(forged);
	X509_free(ours);
}
END_TEST

Suite *issue_suite(void)
{
	Suite *s = suite_create("issue");
	TCase *cert = tcase_create("certificate");
	TCase *policy = tcase_create("policy");

	tcase_add_unchecked_fixture(cert, setup_ca, NULL);
	tcase_add_checked_fixture(cert, setup_ctx, teardown_ctx);
	tcase_set_timeout(cert, 30);
	tcase_add_test(cert, issue_signs_certificate_that_verifies_up_to_root);
	tcase_add_test(cert, issue_returns_der_equal_to_certificate_with_usable_key);
	tcase_add_test(cert, issue_copies_subject_and_sans_from_csr);
	tcase_add_test(cert, issue_validity_is_profile_validity_plus_backdate);
	tcase_add_test(cert, issue_clamps_validity_to_issuing_ca_not_after);
	tcase_add_loop_test(cert, issue_refuses_when_issuing_ca_has_expired, 0,
			    (int)(sizeof(expired_rows) / sizeof(expired_rows[0])));
	tcase_add_loop_test(cert, issue_sets_key_usage_and_eku_per_profile_and_key_type, 0,
			    (int)(sizeof(usage_rows) / sizeof(usage_rows[0])));
	tcase_add_test(cert, issue_sets_subject_key_id_and_authority_key_id_of_ca);
	tcase_add_test(cert, issue_signs_with_digest_matching_ca_curve);
	tcase_add_test(cert, issue_takes_serial_from_injected_rand);
	tcase_add_test(cert, issue_fails_when_rand_fails);
	suite_add_tcase(s, cert);

	tcase_add_unchecked_fixture(policy, setup_ca, teardown_ca);
	tcase_add_checked_fixture(policy, setup_ctx, teardown_ctx);
	tcase_set_timeout(policy, 30);
	tcase_add_loop_test(policy, issue_authorizes_requester_per_profile, 0,
			    (int)(sizeof(auth_rows) / sizeof(auth_rows[0])));
	tcase_add_test(policy, issue_checks_requester_before_parsing_csr);
	tcase_add_test(policy, issue_refuses_csr_with_bad_signature);
	tcase_add_test(policy, issue_refuses_key_the_profile_does_not_allow);
	tcase_add_test(policy, issue_takes_up_to_max_sans);
	tcase_add_loop_test(policy, issue_refuses_san_with_forbidden_bytes, 0,
			    (int)(sizeof(bad_san_rows) / sizeof(bad_san_rows[0])));
	tcase_add_test(policy, issue_refuses_empty_subject_without_san);
	tcase_add_test(policy, issue_gives_empty_subject_a_critical_san);
	tcase_add_test(policy, issue_refuses_subject_with_nul_byte);
	tcase_add_loop_test(policy, issue_reenrolls_only_with_same_names_and_own_certificate, 0,
			    (int)(sizeof(renew_rows) / sizeof(renew_rows[0])));
	suite_add_tcase(s, policy);
	return s;
}
