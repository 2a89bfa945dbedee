/* The policy engine, one row per request: who may ask, which keys, what the
 * subject and the subjectAltNames become, credential name bindings, validity,
 * extensions, and ca_profile_prepare's refusals. Each row runs pol_authorize +
 * pol_check directly (with and without a trace), then ca_issue end to end
 * (store NULL, injected clock) and checks the certificate or the refusal. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <check.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "mintca/pol.h"
#include "suites.h"

#define DAY 86400LL
#define YEAR (365 * DAY)
#define CA_VALIDITY (30 * YEAR)       /* the issuing CA */
#define CA_SUBJECT "/CN=policy test CA" /* 27 octets of DER: the compact row needs < 40 */
#define HW_OID "1.3.6.1.5.5.7.8.4"    /* id-on-hardwareModuleName, RFC 4108 §5 */
#define HW_TYPE "1.3.6.1.4.1.55555.7" /* the hwType inside it */
#define UPN_OID "1.3.6.1.4.1.311.20.2.3"
#define CUSTOM_OID "1.3.6.1.4.1.55555.1"
#define CUSTOM_DER "\x0c\x03" "abc"   /* UTF8String "abc" */

/* ---- keys and CAs, made once by the unchecked fixture (parent process) ---- */

enum key_id {
	K_P256, K_P256_B, K_P384, K_RSA2048, K_RSA3072, K_RSA4096, K_ED25519,
	K_P521, K_K256, K_RSA1024, K_ED448, K_P256_EXPLICIT, K_COUNT
};

static const struct {
	const char *what, *alg, *curve;
	size_t bits;
} key_spec[K_COUNT] = {
	[K_P256] = { "EC P-256", "EC", "P-256", 0 },
	[K_P256_B] = { "EC P-256 (second key)", "EC", "P-256", 0 },
	[K_P384] = { "EC P-384", "EC", "P-384", 0 },
	[K_RSA2048] = { "RSA 2048", "RSA", NULL, 2048 },
	[K_RSA3072] = { "RSA 3072", "RSA", NULL, 3072 },
	[K_RSA4096] = { "RSA 4096", "RSA", NULL, 4096 },
	[K_ED25519] = { "Ed25519", "ED25519", NULL, 0 },
	[K_P521] = { "EC P-521", "EC", "P-521", 0 },
	[K_K256] = { "EC secp256k1", "EC", "secp256k1", 0 },
	[K_RSA1024] = { "RSA 1024", "RSA", NULL, 1024 },
	[K_ED448] = { "Ed448", "ED448", NULL, 0 },
	[K_P256_EXPLICIT] = { "EC P-256, explicit parameters", "EC", "P-256", 0 },
};

static time_t now_fixed;                 /* the injected clock */
static EVP_PKEY *keys[K_COUNT];
static EVP_PKEY *root_pkey, *issuing_pkey;
static X509 *root_cert, *issuing_cert;
static X509 *seed_ours, *seed_other;     /* CN=dev1, DNS:dev1.example: from our CA, from another */

/* ---- per test (checked fixture, child process) ---- */

static ca_ctx *ctx;
static time_t row_clock;

static const struct ca_requester who_factory = { .kind = CA_AUTH_BASIC, .id = "factory" };
static const struct ca_requester who_stranger = { .kind = CA_AUTH_BASIC, .id = "stranger" };
static const struct ca_requester who_plant = { .kind = CA_AUTH_CLIENT_CERT, .id = "/CN=old", .anchor = "plant" };
static const struct ca_requester who_elsewhere = { .kind = CA_AUTH_CLIENT_CERT, .id = "/CN=old",
						   .anchor = "elsewhere" };
static const struct ca_requester who_operator = { .kind = CA_AUTH_OPERATOR, .id = "operator" };
static const struct ca_requester who_anonymous = { .kind = CA_AUTH_NONE, .id = "anonymous" };

static time_t fixed_clock(void *arg)
{
	return *(const time_t *)arg;
}

/* ---- profiles: a base every row starts from, and the row's changes ---- */

static char *dup_or_null(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	ck_assert((d = strdup(s)) != NULL);
	return d;
}

/* A malloc'd list of n strdup'd strings, as ca_ctx_add_profile wants. */
static char **list(size_t n, ...)
{
	char **l = calloc(n + 1, sizeof(*l));
	va_list ap;

	ck_assert(l != NULL);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		l[i] = dup_or_null(va_arg(ap, const char *));
	va_end(ap);
	return l;
}

struct rule_spec {
	const char *type;
	enum ca_subject_rule rule;
	const char *value, *pattern;
};

static void set_subject(struct ca_profile *p, const struct rule_spec *r, size_t n)
{
	ck_assert((p->subject = calloc(n, sizeof(*p->subject))) != NULL);
	p->n_subject = n;
	for (size_t i = 0; i < n; i++) {
		ck_assert(strlen(r[i].type) < sizeof(p->subject[i].type));
		strcpy(p->subject[i].type, r[i].type);
		p->subject[i].rule = r[i].rule;
		p->subject[i].value = dup_or_null(r[i].value);
		p->subject[i].pattern = dup_or_null(r[i].pattern);
	}
}

#define SUBJECT(p, ...)                                                                       \
	set_subject(p, (const struct rule_spec[]){ __VA_ARGS__ },                              \
		    sizeof((const struct rule_spec[]){ __VA_ARGS__ }) / sizeof(struct rule_spec))
#define R(type, rule, value, pattern) { type, CA_SUBJ_##rule, value, pattern }

static void san_rule(struct ca_profile *p, enum ca_san_kind k, unsigned min, unsigned max, const char *pattern)
{
	p->san_rules = true;
	p->san[k].min = min;
	p->san[k].max = max;
	free(p->san[k].pattern);
	p->san[k].pattern = dup_or_null(pattern);
}

/* Every key type, RSA 2048-4096, one day, clientAuth, up to 4 SANs of any
 * kind but hardware_serial, no subject rules; factory (Basic), anchor plant
 * and the operator may ask, re-enrollment allowed. */
static void base_profile(struct ca_profile *p)
{
	*p = (struct ca_profile){
		.name = "p",
		.key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA | CA_KEY_ED25519,
		.rsa_min_bits = 2048, .rsa_max_bits = 4096,
		.validity_seconds = DAY, .backdate_seconds = 0,
		.eku = CA_EKU_CLIENT_AUTH, .max_sans = 4, .allow_reenroll = true,
		.basic_users = list(1, "factory"), .n_basic_users = 1,
		.cert_anchors = list(1, "plant"), .n_cert_anchors = 1,
		.operator_allowed = true,
	};
}

/* authorization */
static void p_no_operator(struct ca_profile *p) { p->operator_allowed = false; }
static void p_no_reenroll(struct ca_profile *p) { p->allow_reenroll = false; }

/* keys */
static void p_p256_only(struct ca_profile *p) { p->key_types = CA_KEY_EC_P256; }
static void p_p384_only(struct ca_profile *p) { p->key_types = CA_KEY_EC_P384; }
static void p_ed25519_only(struct ca_profile *p) { p->key_types = CA_KEY_ED25519; }
static void p_ec_only(struct ca_profile *p) { p->key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384; }
static void p_rsa_2048_4096(struct ca_profile *p)
{
	p->key_types = CA_KEY_RSA;
	p->rsa_min_bits = 2048;
	p->rsa_max_bits = 4096;
}
static void p_rsa_min_3072(struct ca_profile *p)
{
	p->key_types = CA_KEY_RSA;
	p->rsa_min_bits = 3072;
	p->rsa_max_bits = 4096;
}
static void p_rsa_max_3072(struct ca_profile *p)
{
	p->key_types = CA_KEY_RSA;
	p->rsa_min_bits = 2048;
	p->rsa_max_bits = 3072;
}

/* subject */
static void p_cn_keep(struct ca_profile *p) { SUBJECT(p, R("CN", KEEP, NULL, NULL)); }
static void p_cn_keep_pattern(struct ca_profile *p) { SUBJECT(p, R("CN", KEEP, NULL, "dev[0-9]{1,3}")); }
static void p_cn_require(struct ca_profile *p) { SUBJECT(p, R("CN", REQUIRE, NULL, NULL)); }
static void p_cn_require_pattern(struct ca_profile *p) { SUBJECT(p, R("CN", REQUIRE, NULL, "dev[0-9]+")); }
static void p_o_override(struct ca_profile *p)
{
	SUBJECT(p, R("CN", KEEP, NULL, NULL), R("O", OVERRIDE, "Acme Corp", NULL));
}
static void p_cn_override_64(struct ca_profile *p)
{
	SUBJECT(p, R("CN", OVERRIDE, "0123456789012345678901234567890123456789012345678901234567890123", NULL));
}
static void p_ou_drop(struct ca_profile *p) { SUBJECT(p, R("CN", KEEP, NULL, NULL), R("OU", DROP, NULL, NULL)); }
static void p_ou_drop_only(struct ca_profile *p) { SUBJECT(p, R("OU", DROP, NULL, NULL)); }
static void p_ou_refuse(struct ca_profile *p) { SUBJECT(p, R("CN", KEEP, NULL, NULL), R("OU", REFUSE, NULL, NULL)); }
static void p_others_keep(struct ca_profile *p)
{
	SUBJECT(p, R("CN", REQUIRE, NULL, NULL));
	p->subject_other = CA_SUBJ_KEEP;
}
static void p_others_drop(struct ca_profile *p)
{
	SUBJECT(p, R("CN", REQUIRE, NULL, NULL));
	p->subject_other = CA_SUBJ_DROP;
}
static void p_others_refuse(struct ca_profile *p)
{
	SUBJECT(p, R("CN", REQUIRE, NULL, NULL));
	p->subject_other = CA_SUBJ_REFUSE;
}
static void p_rule_order(struct ca_profile *p)
{
	SUBJECT(p, R("O", OVERRIDE, "Acme", NULL), R("OU", KEEP, NULL, NULL), R("CN", REQUIRE, NULL, NULL));
}

/* subjectAltNames */
static void p_dns_max2(struct ca_profile *p) { san_rule(p, CA_SAN_DNS, 0, 2, NULL); }
static void p_dns_min1(struct ca_profile *p)
{
	san_rule(p, CA_SAN_DNS, 1, 2, NULL);
	san_rule(p, CA_SAN_IP, 0, 1, NULL);
}
static void p_dns_pattern(struct ca_profile *p) { san_rule(p, CA_SAN_DNS, 0, 2, "[a-z0-9-]+\\.example\\.com"); }
static void p_ip_pattern(struct ca_profile *p)
{
	san_rule(p, CA_SAN_DNS, 0, 1, NULL);
	san_rule(p, CA_SAN_IP, 0, 2, "192\\.0\\.2\\.[0-9]+|2001:db8::[0-9a-f]+");
}
static void p_uri_pattern(struct ca_profile *p) { san_rule(p, CA_SAN_URI, 0, 1, "spiffe://example\\.com/.+"); }
static void p_email_pattern(struct ca_profile *p) { san_rule(p, CA_SAN_EMAIL, 0, 1, "[a-z.]+@example\\.com"); }
static void p_hw_pattern(struct ca_profile *p)
{
	san_rule(p, CA_SAN_DNS, 0, 1, NULL);
	san_rule(p, CA_SAN_HWSERIAL, 0, 1, "SN-[0-9]{6}");
}
static void p_rules_no_hw(struct ca_profile *p) { san_rule(p, CA_SAN_DNS, 0, 2, NULL); }
static void p_ip_max0(struct ca_profile *p)
{
	san_rule(p, CA_SAN_DNS, 0, 2, NULL);
	san_rule(p, CA_SAN_IP, 0, 0, NULL);
}
static void p_max_sans_0(struct ca_profile *p) { p->max_sans = 0; }

/* validity */
static void p_valid_60s(struct ca_profile *p) { p->validity_seconds = 60; }
static void p_valid_14d(struct ca_profile *p) { p->validity_seconds = 14 * DAY; }
static void p_valid_20y(struct ca_profile *p) { p->validity_seconds = 20 * YEAR; }
static void p_valid_30y(struct ca_profile *p) { p->validity_seconds = 30 * YEAR; }
static void p_backdate_3600(struct ca_profile *p) { p->backdate_seconds = 3600; }

/* extensions */
static void p_ku_ds_ka(struct ca_profile *p) { p->key_usage = 1u << 0 | 1u << 4; }
static void p_ku_ds_ke(struct ca_profile *p) { p->key_usage = 1u << 0 | 1u << 2; }
static void p_ku_ds_kcs(struct ca_profile *p) { p->key_usage = 1u << 0 | 1u << 5; }
static void p_ku_ka(struct ca_profile *p) { p->key_usage = 1u << 4; }
static void p_eku_server_by_name(struct ca_profile *p) { p->eku = ca_eku_from_name("serverAuth"); }
static void p_eku_timestamping_oid(struct ca_profile *p)
{
	p->eku = 0;
	p->eku_oids = list(1, "1.3.6.1.5.5.7.3.8");
	p->n_eku_oids = 1;
}
static void p_policies(struct ca_profile *p)
{
	p->policies = list(2, "1.3.6.1.4.1.55555.2.1", "2.23.140.1.2.1");
	p->n_policies = 2;
}
static void p_urls(struct ca_profile *p)
{
	p->crl_urls = list(1, "http://crl.example.com/ca.crl");
	p->n_crl_urls = 1;
	p->ocsp_urls = list(1, "http://ocsp.example.com/");
	p->n_ocsp_urls = 1;
	p->ca_issuers_urls = list(1, "http://pki.example.com/ca.der");
	p->n_ca_issuers_urls = 1;
}
static void p_name_constraints(struct ca_profile *p)
{
	p->nc_permitted_dns = list(1, "example.com");
	p->n_nc_permitted_dns = 1;
	p->nc_excluded_dns = list(1, "bad.example.com");
	p->n_nc_excluded_dns = 1;
}
static void set_custom(struct ca_profile *p, const char *oid, const char *der, size_t len)
{
	ck_assert((p->custom = calloc(1, sizeof(*p->custom))) != NULL);
	p->n_custom = 1;
	p->custom[0].oid = dup_or_null(oid);
	p->custom[0].critical = true;
	ck_assert((p->custom[0].der = malloc(len)) != NULL);
	memcpy(p->custom[0].der, der, len);
	p->custom[0].der_len = len;
}
static void p_custom(struct ca_profile *p) { set_custom(p, CUSTOM_OID, CUSTOM_DER, 5); }
static void p_no_bc_no_skid(struct ca_profile *p)
{
	p->no_basic_constraints = true;
	p->no_subject_key_id = true;
}
static void p_serial_9(struct ca_profile *p) { p->serial_bytes = 9; }
static void p_serial_20(struct ca_profile *p) { p->serial_bytes = 20; }
/* The smallest certificate a device profile gives. */
static void p_compact(struct ca_profile *p)
{
	p->key_types = CA_KEY_EC_P256;
	p->eku = 0;
	p->no_basic_constraints = true;
	p->no_subject_key_id = true;
	p->serial_bytes = 9;
	san_rule(p, CA_SAN_DNS, 1, 1, NULL);
	SUBJECT(p, R("CN", REQUIRE, NULL, "[0-9a-f]{16}"));
	p->subject_other = CA_SUBJ_REFUSE;
}

/* ---- requests ---- */

struct attr {
	const char *type, *v; /* a UTF8String value */
	int len;              /* 0: strlen(v) */
};
#define A(t, v) { t, v, 0 }
#define A_N(t, v, n) { t, v, n }

enum san_kind { S_END, S_DNS, S_IP, S_URI, S_EMAIL, S_HW, S_UPN };
struct san {
	enum san_kind kind;
	const char *v; /* text; IP: the text form; HW: the serial; UPN: the UTF8String */
	int len;       /* 0: strlen(v) */
};
#define DNS(v) { S_DNS, v, 0 }
#define DNS_N(v, n) { S_DNS, v, n }
#define IP(v) { S_IP, v, 0 }
#define URI(v) { S_URI, v, 0 }
#define EMAIL(v) { S_EMAIL, v, 0 }
#define HW(v) { S_HW, v, 0 }
#define UPN(v) { S_UPN, v, 0 }

#define MAX_ATTRS 5
#define MAX_SANS 7

/* otherName type-id + value */
static GENERAL_NAME *other_name(const char *oid, ASN1_TYPE *value)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);

	ck_assert(g != NULL && o != NULL);
	ck_assert(GENERAL_NAME_set0_othername(g, o, value) == 1);
	return g;
}

/* hardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING } */
static GENERAL_NAME *hw_name(const char *serial, int len)
{
	ASN1_SEQUENCE_ANY *seq = sk_ASN1_TYPE_new_null();
	ASN1_TYPE *type = ASN1_TYPE_new(), *num = ASN1_TYPE_new(), *value = ASN1_TYPE_new();
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	ASN1_STRING *der = ASN1_STRING_new();
	unsigned char *buf = NULL;
	int n;

	ck_assert(seq && type && num && value && os && der);
	ASN1_TYPE_set(type, V_ASN1_OBJECT, OBJ_txt2obj(HW_TYPE, 1));
	ck_assert(ASN1_OCTET_STRING_set(os, (const unsigned char *)serial, len));
	ASN1_TYPE_set(num, V_ASN1_OCTET_STRING, os);
	ck_assert(sk_ASN1_TYPE_push(seq, type) && sk_ASN1_TYPE_push(seq, num));
	ck_assert((n = i2d_ASN1_SEQUENCE_ANY(seq, &buf)) > 0);
	ck_assert(ASN1_STRING_set(der, buf, n));
	ASN1_TYPE_set(value, V_ASN1_SEQUENCE, der);
	OPENSSL_free(buf);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return other_name(HW_OID, value);
}

static GENERAL_NAME *upn_name(const char *upn)
{
	ASN1_TYPE *value = ASN1_TYPE_new();
	ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();

	ck_assert(value != NULL && s != NULL && ASN1_STRING_set(s, upn, -1));
	ASN1_TYPE_set(value, V_ASN1_UTF8STRING, s);
	return other_name(UPN_OID, value);
}

static GENERAL_NAME *san_name(const struct san *s)
{
	int len = s->len ? s->len : (int)strlen(s->v);
	GENERAL_NAME *g;
	ASN1_STRING *str;
	unsigned char ip[16];

	switch (s->kind) {
	case S_HW: return hw_name(s->v, len);
	case S_UPN: return upn_name(s->v);
	case S_IP:
		ck_assert((str = ASN1_OCTET_STRING_new()) != NULL);
		if (inet_pton(AF_INET, s->v, ip) == 1)
			ck_assert(ASN1_OCTET_STRING_set(str, ip, 4));
		else
			ck_assert_msg(inet_pton(AF_INET6, s->v, ip) == 1 && ASN1_OCTET_STRING_set(str, ip, 16),
				      "bad IP text %s", s->v);
		break;
	default:
		ck_assert((str = ASN1_IA5STRING_new()) != NULL && ASN1_STRING_set(str, s->v, len));
		break;
	}
	ck_assert((g = GENERAL_NAME_new()) != NULL);
	GENERAL_NAME_set0_value(g, s->kind == S_DNS ? GEN_DNS : s->kind == S_IP ? GEN_IPADD :
				   s->kind == S_URI ? GEN_URI : GEN_EMAIL, str);
	return g;
}

/* A signed DER PKCS#10 for k with the subject and SANs given. Caller frees
 * with OPENSSL_free. */
static size_t make_csr(EVP_PKEY *k, const struct attr *subj, const struct san *sans, unsigned char **der)
{
	X509_REQ *r = X509_REQ_new();
	int id = EVP_PKEY_get_base_id(k);
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *gens = NULL;
	int len;

	ck_assert(r != NULL && X509_REQ_set_version(r, X509_REQ_VERSION_1) && X509_REQ_set_pubkey(r, k));
	for (int i = 0; i < MAX_ATTRS && subj[i].type != NULL; i++)
		ck_assert(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), subj[i].type, V_ASN1_UTF8STRING,
						     (const unsigned char *)subj[i].v,
						     subj[i].len ? subj[i].len : -1, -1, 0));
	if (sans[0].kind != S_END) {
		ck_assert((gens = GENERAL_NAMES_new()) != NULL);
		for (int i = 0; i < MAX_SANS && sans[i].kind != S_END; i++)
			ck_assert(sk_GENERAL_NAME_push(gens, san_name(&sans[i])));
		ck_assert(X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1);
		ck_assert(X509_REQ_add_extensions(r, exts));
	}
	ck_assert(X509_REQ_sign(r, k, (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256()) > 0);
	*der = NULL;
	ck_assert((len = i2d_X509_REQ(r, der)) > 0);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(r);
	return (size_t)len;
}

/* ---- certificate checks ---- */

static time_t to_time(const ASN1_TIME *t)
{
	struct tm tm;

	ck_assert(ASN1_TIME_to_tm(t, &tm) == 1);
	return timegm(&tm);
}

static void expect_times(X509 *x, long long nb, long long na)
{
	ck_assert_msg(to_time(X509_get0_notBefore(x)) == now_fixed + nb, "notBefore is now%+lld, want now%+lld",
		      (long long)(to_time(X509_get0_notBefore(x)) - now_fixed), nb);
	ck_assert_msg(to_time(X509_get0_notAfter(x)) == now_fixed + na, "notAfter is now%+lld, want now%+lld",
		      (long long)(to_time(X509_get0_notAfter(x)) - now_fixed), na);
}

static void c_valid_60s(X509 *x) { expect_times(x, 0, 60); }
static void c_valid_14d(X509 *x) { expect_times(x, 0, 14 * DAY); }
static void c_valid_20y(X509 *x)
{
	expect_times(x, 0, 20 * YEAR);
	ck_assert(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuing_cert)) < 0);
}
static void c_valid_clamped(X509 *x)
{
	ck_assert(to_time(X509_get0_notBefore(x)) == now_fixed);
	ck_assert(now_fixed + 30 * YEAR > to_time(X509_get0_notAfter(issuing_cert)));
	ck_assert_int_eq(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuing_cert)), 0);
}
static void c_backdate_0(X509 *x) { expect_times(x, 0, DAY); }
static void c_backdate_3600(X509 *x) { expect_times(x, -3600, DAY); }

static void expect_ku(X509 *x, uint32_t ku)
{
	int crit = -1;
	ASN1_BIT_STRING *b = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);

	ck_assert_msg(b != NULL && crit == 1, "keyUsage missing or not critical");
	ASN1_BIT_STRING_free(b);
	ck_assert_msg(X509_get_key_usage(x) == ku, "keyUsage 0x%x, want 0x%x", X509_get_key_usage(x), ku);
}
static void c_ku_ds(X509 *x) { expect_ku(x, KU_DIGITAL_SIGNATURE); }
static void c_ku_ds_ke(X509 *x) { expect_ku(x, KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT); }
static void c_ku_ds_ka(X509 *x) { expect_ku(x, KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT); }

/* The EKU extension holds exactly these dotted OIDs, in order. */
static void expect_eku(X509 *x, size_t n, ...)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	char buf[80];
	va_list ap;

	ck_assert_msg(eku != NULL, "no extendedKeyUsage");
	ck_assert_int_eq(sk_ASN1_OBJECT_num(eku), (int)n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		OBJ_obj2txt(buf, sizeof(buf), sk_ASN1_OBJECT_value(eku, (int)i), 1);
		ck_assert_str_eq(buf, va_arg(ap, const char *));
	}
	va_end(ap);
	EXTENDED_KEY_USAGE_free(eku);
}
static void c_eku_client(X509 *x) { expect_eku(x, 1, "1.3.6.1.5.5.7.3.2"); }
static void c_eku_server(X509 *x)
{
	expect_eku(x, 1, "1.3.6.1.5.5.7.3.1");
	ck_assert_int_eq(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
}
static void c_eku_timestamping(X509 *x)
{
	expect_eku(x, 1, "1.3.6.1.5.5.7.3.8");
	ck_assert_int_eq(X509_get_extended_key_usage(x), XKU_TIMESTAMP);
}

static void c_policies(X509 *x)
{
	CERTIFICATEPOLICIES *cp = X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
	char buf[80];

	ck_assert_msg(cp != NULL, "no certificatePolicies");
	ck_assert_int_eq(sk_POLICYINFO_num(cp), 2);
	OBJ_obj2txt(buf, sizeof(buf), sk_POLICYINFO_value(cp, 0)->policyid, 1);
	ck_assert_str_eq(buf, "1.3.6.1.4.1.55555.2.1");
	OBJ_obj2txt(buf, sizeof(buf), sk_POLICYINFO_value(cp, 1)->policyid, 1);
	ck_assert_str_eq(buf, "2.23.140.1.2.1");
	CERTIFICATEPOLICIES_free(cp);
}

static void expect_uri(const GENERAL_NAME *g, const char *url)
{
	ck_assert_int_eq(g->type, GEN_URI);
	ck_assert_int_eq(ASN1_STRING_length(g->d.uniformResourceIdentifier), (int)strlen(url));
	ck_assert(memcmp(ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), url, strlen(url)) == 0);
}

static void c_urls(X509 *x)
{
	CRL_DIST_POINTS *cdp = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
	DIST_POINT *dp;
	ACCESS_DESCRIPTION *ad;

	ck_assert_msg(cdp != NULL && sk_DIST_POINT_num(cdp) == 1, "cRLDistributionPoints");
	dp = sk_DIST_POINT_value(cdp, 0);
	ck_assert(dp->distpoint != NULL && dp->distpoint->type == 0);
	ck_assert_int_eq(sk_GENERAL_NAME_num(dp->distpoint->name.fullname), 1);
	expect_uri(sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0), "http://crl.example.com/ca.crl");
	ck_assert_msg(aia != NULL && sk_ACCESS_DESCRIPTION_num(aia) == 2, "authorityInfoAccess");
	ad = sk_ACCESS_DESCRIPTION_value(aia, 0);
	ck_assert_int_eq(OBJ_obj2nid(ad->method), NID_ad_OCSP);
	expect_uri(ad->location, "http://ocsp.example.com/");
	ad = sk_ACCESS_DESCRIPTION_value(aia, 1);
	ck_assert_int_eq(OBJ_obj2nid(ad->method), NID_ad_ca_issuers);
	expect_uri(ad->location, "http://pki.example.com/ca.der");
	CRL_DIST_POINTS_free(cdp);
	AUTHORITY_INFO_ACCESS_free(aia);
}

static void c_name_constraints(X509 *x)
{
	int crit = -1;
	NAME_CONSTRAINTS *nc = X509_get_ext_d2i(x, NID_name_constraints, &crit, NULL);
	GENERAL_NAME *g;

	ck_assert_msg(nc != NULL, "no nameConstraints");
	ck_assert_int_eq(crit, 1);
	ck_assert_int_eq(sk_GENERAL_SUBTREE_num(nc->permittedSubtrees), 1);
	g = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 0)->base;
	ck_assert(g->type == GEN_DNS && strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), "example.com") == 0);
	ck_assert_int_eq(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 1);
	g = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 0)->base;
	ck_assert(g->type == GEN_DNS &&
		  strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), "bad.example.com") == 0);
	NAME_CONSTRAINTS_free(nc);
}

static void c_custom(X509 *x)
{
	ASN1_OBJECT *o = OBJ_txt2obj(CUSTOM_OID, 1);
	int i = X509_get_ext_by_OBJ(x, o, -1);
	X509_EXTENSION *e;
	const ASN1_OCTET_STRING *v;

	ck_assert_msg(i >= 0, "no extension %s", CUSTOM_OID);
	ck_assert_int_eq(X509_get_ext_by_OBJ(x, o, i), -1);
	e = X509_get_ext(x, i);
	ck_assert_int_eq(X509_EXTENSION_get_critical(e), 1);
	v = X509_EXTENSION_get_data(e);
	ck_assert_int_eq(ASN1_STRING_length(v), 5);
	ck_assert(memcmp(ASN1_STRING_get0_data(v), CUSTOM_DER, 5) == 0);
	ASN1_OBJECT_free(o);
}

static void c_has_bc_and_skid(X509 *x)
{
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);

	ck_assert_msg(bc != NULL && crit == 1 && !bc->ca, "basicConstraints CA:FALSE, critical");
	BASIC_CONSTRAINTS_free(bc);
	ck_assert_ptr_nonnull(X509_get0_subject_key_id(x));
	ck_assert_ptr_nonnull(X509_get0_authority_key_id(x));
}

static void c_no_bc_no_skid(X509 *x)
{
	ck_assert_int_eq(X509_get_ext_by_NID(x, NID_basic_constraints, -1), -1);
	ck_assert_int_eq(X509_get_ext_by_NID(x, NID_subject_key_identifier, -1), -1);
	ck_assert_int_ge(X509_get_ext_by_NID(x, NID_authority_key_identifier, -1), 0);
}

static void expect_serial_octets(X509 *x, int n)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);
	unsigned char *der = NULL;
	int len = i2d_ASN1_INTEGER(s, &der);

	/* 02 n <n octets>, the first with its top bit clear (positive) */
	ck_assert_int_eq(ASN1_STRING_type(s), V_ASN1_INTEGER);
	ck_assert_int_eq(len, n + 2);
	ck_assert_int_eq(der[1], n);
	ck_assert_int_eq(der[2] & 0x80, 0);
	ck_assert_int_ne(der[2], 0);
	OPENSSL_free(der);
}
static void c_serial_9(X509 *x) { expect_serial_octets(x, 9); }
static void c_serial_20(X509 *x) { expect_serial_octets(x, 20); }
static void c_serial_default_16(X509 *x) { expect_serial_octets(x, 16); }

static void c_compact(X509 *x)
{
	int len = i2d_X509(x, NULL), issuer_len = i2d_X509_NAME(X509_get_subject_name(issuing_cert), NULL);

	printf("policy: compact profile certificate: %d octets of DER (issuer name %d octets)\n", len, issuer_len);
	ck_assert_int_lt(issuer_len, 40);
	ck_assert_msg(len <= 420, "compact certificate is %d octets, want at most 420", len);
	c_no_bc_no_skid(x);
	c_serial_9(x);
	ck_assert_int_eq(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
}

/* RFC 5280 §4.1.2.6: an empty subject needs a critical subjectAltName. */
static void c_san_critical(X509 *x)
{
	int crit = -1;
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);

	ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	ck_assert_msg(g != NULL && crit == 1, "subjectAltName missing or not critical");
	GENERAL_NAMES_free(g);
}

static void c_hw_serial(X509 *x)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	GENERAL_NAME *n;
	char buf[40];

	ck_assert(g != NULL && sk_GENERAL_NAME_num(g) == 1);
	n = sk_GENERAL_NAME_value(g, 0);
	ck_assert_int_eq(n->type, GEN_OTHERNAME);
	OBJ_obj2txt(buf, sizeof(buf), n->d.otherName->type_id, 1);
	ck_assert_str_eq(buf, HW_OID);
	GENERAL_NAMES_free(g);
}

/* ---- the rows ---- */

enum renew { RENEW_NONE, RENEW_OURS, RENEW_OTHER_CA };

struct cred_spec {
	const char *key, *cn_pattern, *san_pattern;
};

static const struct row {
	const char *what;
	void (*profile)(struct ca_profile *p); /* changes to base_profile, or NULL */
	const struct ca_requester *who;        /* NULL: factory */
	enum key_id key;                       /* default P-256 */
	struct attr subj[MAX_ATTRS];           /* the CSR's subject, in order */
	struct san sans[MAX_SANS];             /* the CSR's subjectAltNames */
	enum renew renew;                      /* re-enrollment of a CN=dev1, DNS:dev1.example certificate */
	long long at;                          /* the clock: now + at (the renewed one is valid now .. now+1d) */
	struct cred_spec cred;                 /* a credential to add, if key != NULL */
	enum ca_code want;                     /* CA_OK: issued */
	const char *why;                       /* refused: a substring of the reason */
	bool by_lint;                          /* refused by ca_issue's lint after the policy allowed */
	const char *subject;                   /* allowed: the issued subject, X509_NAME_oneline form */
	void (*check)(X509 *x);                /* allowed: more checks on the certificate */
} rows[] = {
	/* -- authorization -- */
	{ "anonymous is refused", .who = &who_anonymous, .subj = { A("CN", "dev1") },
	  .want = CA_E_UNAUTHENTICATED, .why = "requires authentication" },
	{ "Basic user listed in the profile is allowed", .subj = { A("CN", "dev1") }, .subject = "/CN=dev1" },
	{ "Basic user not listed is refused", .who = &who_stranger, .subj = { A("CN", "dev1") },
	  .want = CA_E_FORBIDDEN, .why = "user 'stranger' may not use profile 'p'" },
	{ "client certificate from a listed anchor is allowed", .who = &who_plant, .subj = { A("CN", "dev1") },
	  .subject = "/CN=dev1" },
	{ "client certificate from an unlisted anchor is refused", .who = &who_elsewhere,
	  .subj = { A("CN", "dev1") }, .want = CA_E_FORBIDDEN, .why = "client certificates from 'elsewhere'" },
	{ "operator is allowed when the profile allows operators", .who = &who_operator,
	  .subj = { A("CN", "dev1") }, .subject = "/CN=dev1" },
	{ "operator is refused when the profile does not allow operators", p_no_operator, &who_operator,
	  .subj = { A("CN", "dev1") }, .want = CA_E_FORBIDDEN, .why = "operators may not use profile 'p'" },
	{ "re-enrollment of our valid certificate is allowed", .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .key = K_P256_B, .subject = "/CN=dev1" },
	{ "re-enrollment under a profile without it is refused", p_no_reenroll, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .key = K_P256_B, .want = CA_E_FORBIDDEN,
	  .why = "does not allow re-enrollment" },
	{ "re-enrollment of a certificate from another CA is refused", .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OTHER_CA, .key = K_P256_B, .want = CA_E_FORBIDDEN,
	  .why = "was not issued by CA 'test'" },
	{ "re-enrollment one second before the old certificate's notAfter is allowed", .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .at = DAY - 1, .key = K_P256_B,
	  .subject = "/CN=dev1" },
	{ "re-enrollment at the old certificate's notAfter is allowed (RFC 5280 4.1.2.5: inclusive)",
	  .subj = { A("CN", "dev1") }, .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .at = DAY,
	  .key = K_P256_B, .subject = "/CN=dev1" },
	{ "re-enrollment one second after the old certificate expired is refused", .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .at = DAY + 1, .key = K_P256_B,
	  .want = CA_E_FORBIDDEN, .why = "is not valid now" },
	{ "re-enrollment at the old certificate's notBefore is allowed", .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .at = 0, .key = K_P256_B, .subject = "/CN=dev1" },
	{ "re-enrollment one second before the old certificate's notBefore is refused",
	  .subj = { A("CN", "dev1") }, .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .at = -1,
	  .key = K_P256_B, .want = CA_E_FORBIDDEN, .why = "is not valid now" },
	{ "re-enrollment by anonymous is refused", .who = &who_anonymous, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .key = K_P256_B, .want = CA_E_UNAUTHENTICATED,
	  .why = "requires authentication" },

	/* -- key types and sizes -- */
	{ "EC P-256 on an ec-p256 profile is allowed", p_p256_only, .subj = { A("CN", "dev1") }, .key = K_P256,
	  .check = c_ku_ds },
	{ "EC P-384 on an ec-p256 profile is refused", p_p256_only, .subj = { A("CN", "dev1") }, .key = K_P384,
	  .want = CA_E_KEY_REFUSED, .why = "curve secp384r1" },
	{ "EC P-384 on an ec-p384 profile is allowed", p_p384_only, .subj = { A("CN", "dev1") }, .key = K_P384,
	  .check = c_ku_ds },
	{ "EC P-256 on an ec-p384 profile is refused", p_p384_only, .subj = { A("CN", "dev1") }, .key = K_P256,
	  .want = CA_E_KEY_REFUSED, .why = "curve prime256v1" },
	{ "RSA 2048 at rsa_min 2048 is allowed", p_rsa_2048_4096, .subj = { A("CN", "dev1") }, .key = K_RSA2048,
	  .check = c_ku_ds_ke },
	{ "RSA 4096 at rsa_max 4096 is allowed", p_rsa_2048_4096, .subj = { A("CN", "dev1") }, .key = K_RSA4096,
	  .check = c_ku_ds_ke },
	{ "RSA 3072 at rsa_min 3072 is allowed", p_rsa_min_3072, .subj = { A("CN", "dev1") }, .key = K_RSA3072,
	  .check = c_ku_ds_ke },
	{ "RSA 2048 under rsa_min 3072 is refused", p_rsa_min_3072, .subj = { A("CN", "dev1") },
	  .key = K_RSA2048, .want = CA_E_KEY_REFUSED, .why = "RSA-2048 keys (size out of bounds)" },
	{ "RSA 3072 at rsa_max 3072 is allowed", p_rsa_max_3072, .subj = { A("CN", "dev1") }, .key = K_RSA3072,
	  .check = c_ku_ds_ke },
	{ "RSA 4096 over rsa_max 3072 is refused", p_rsa_max_3072, .subj = { A("CN", "dev1") },
	  .key = K_RSA4096, .want = CA_E_KEY_REFUSED, .why = "RSA-4096 keys (size out of bounds)" },
	{ "RSA on a profile without rsa is refused", p_ec_only, .subj = { A("CN", "dev1") }, .key = K_RSA2048,
	  .want = CA_E_KEY_REFUSED, .why = "does not allow RSA-2048 keys" },
	{ "Ed25519 on an ed25519 profile is allowed", p_ed25519_only, .subj = { A("CN", "dev1") },
	  .key = K_ED25519, .check = c_ku_ds },
	{ "Ed25519 on a profile without ed25519 is refused", p_ec_only, .subj = { A("CN", "dev1") },
	  .key = K_ED25519, .want = CA_E_KEY_REFUSED, .why = "does not allow Ed25519 keys" },
	{ "EC P-521 is refused by a profile allowing every type", .subj = { A("CN", "dev1") }, .key = K_P521,
	  .want = CA_E_KEY_REFUSED, .why = "curve secp521r1" },
	{ "EC secp256k1 is refused by a profile allowing every type", .subj = { A("CN", "dev1") }, .key = K_K256,
	  .want = CA_E_KEY_REFUSED, .why = "curve secp256k1" },
	{ "RSA 1024 is refused by a profile allowing every type", .subj = { A("CN", "dev1") }, .key = K_RSA1024,
	  .want = CA_E_KEY_REFUSED, .why = "RSA-1024" },
	{ "Ed448 is refused by a profile allowing every type", .subj = { A("CN", "dev1") }, .key = K_ED448,
	  .want = CA_E_KEY_REFUSED, .why = "this key type (ED448)" },
	{ "EC P-256 with explicit parameters is refused", .subj = { A("CN", "dev1") }, .key = K_P256_EXPLICIT,
	  .want = CA_E_KEY_REFUSED, .why = "no explicit parameters" },

	/* -- subject rules -- */
	{ "keep without pattern copies the attribute and the others", p_cn_keep,
	  .subj = { A("CN", "anything at all"), A("O", "Acme") }, .subject = "/CN=anything at all/O=Acme" },
	{ "keep with pattern allows a value at the pattern's edge", p_cn_keep_pattern,
	  .subj = { A("CN", "dev999") }, .subject = "/CN=dev999" },
	{ "keep with pattern refuses a value one past the edge", p_cn_keep_pattern,
	  .subj = { A("CN", "dev1000") }, .want = CA_E_NAME_REFUSED,
	  .why = "subject CN 'dev1000' does not match the profile's pattern" },
	{ "keep with pattern matches the whole value, not a part", p_cn_keep_pattern,
	  .subj = { A("CN", "xdev1") }, .want = CA_E_NAME_REFUSED, .why = "does not match the profile's pattern" },
	{ "keep allows the attribute to be absent", p_cn_keep_pattern, .subj = { A("O", "Acme") },
	  .subject = "/O=Acme" },
	{ "require refuses a missing attribute", p_cn_require, .subj = { A("O", "Acme") },
	  .sans = { DNS("dev1.example") }, .want = CA_E_NAME_REFUSED, .why = "requires subject attribute CN" },
	{ "require allows a present attribute", p_cn_require, .subj = { A("CN", "dev1") }, .subject = "/CN=dev1" },
	{ "require with pattern refuses a mismatch", p_cn_require_pattern, .subj = { A("CN", "printer") },
	  .want = CA_E_NAME_REFUSED, .why = "subject CN 'printer' does not match" },
	{ "override replaces the CSR's value", p_o_override, .subj = { A("CN", "dev1"), A("O", "Evil Corp") },
	  .subject = "/CN=dev1/O=Acme Corp" },
	{ "override adds the attribute when the CSR has none", p_o_override, .subj = { A("CN", "dev1") },
	  .subject = "/CN=dev1/O=Acme Corp" },
	{ "override of CN with 64 characters (ub-common-name) is issued", p_cn_override_64,
	  .subj = { A("CN", "dev1") },
	  .subject = "/CN=0123456789012345678901234567890123456789012345678901234567890123" },
	{ "drop removes the attribute", p_ou_drop, .subj = { A("CN", "dev1"), A("OU", "lab"), A("O", "Acme") },
	  .subject = "/CN=dev1/O=Acme" },
	{ "refuse refuses a request carrying the attribute", p_ou_refuse,
	  .subj = { A("CN", "dev1"), A("OU", "lab") }, .want = CA_E_NAME_REFUSED,
	  .why = "refuses subject attribute OU" },
	{ "refuse allows a request without the attribute", p_ou_refuse, .subj = { A("CN", "dev1") },
	  .subject = "/CN=dev1" },
	{ "others keep: unlisted attributes are copied", p_others_keep,
	  .subj = { A("CN", "dev1"), A("O", "Acme"), A("L", "Paris") }, .subject = "/CN=dev1/O=Acme/L=Paris" },
	{ "others drop: unlisted attributes are left out", p_others_drop,
	  .subj = { A("CN", "dev1"), A("O", "Acme"), A("L", "Paris") }, .subject = "/CN=dev1" },
	{ "others refuse: an unlisted attribute refuses the request", p_others_refuse,
	  .subj = { A("CN", "dev1"), A("L", "Paris") }, .want = CA_E_NAME_REFUSED,
	  .why = "does not allow subject attribute L" },
	{ "require with pattern: every value of the attribute must match", p_cn_require_pattern,
	  .subj = { A("CN", "dev1"), A("CN", "printer") }, .want = CA_E_NAME_REFUSED,
	  .why = "subject CN 'printer' does not match" },
	{ "others drop leaving no subject and no SAN is refused", p_others_drop, .subj = { A("O", "Acme") },
	  .want = CA_E_NAME_REFUSED, .why = "requires subject attribute CN" },
	{ "drop of every attribute without a SAN is refused", p_ou_drop_only, .subj = { A("OU", "lab") },
	  .want = CA_E_NAME_REFUSED, .why = "neither subject nor subjectAltName" },
	{ "drop of every attribute with a SAN gives an empty subject", p_ou_drop_only, .subj = { A("OU", "lab") },
	  .sans = { DNS("dev1.example") }, .subject = "", .check = c_san_critical },
	{ "final subject follows the profile's rule order, not the CSR's", p_rule_order,
	  .subj = { A("CN", "dev1"), A("OU", "lab"), A("L", "Paris") }, .subject = "/O=Acme/OU=lab/CN=dev1/L=Paris" },
	{ "NUL byte in a subject value is refused", .subj = { A_N("CN", "dev1\0evil", 9) },
	  .want = CA_E_NAME_REFUSED, .why = "NUL byte" },
	{ "NUL byte in an attribute the profile drops is refused too", p_others_drop,
	  .subj = { A("CN", "dev1"), A_N("O", "Ac\0me", 5) }, .want = CA_E_NAME_REFUSED, .why = "NUL byte" },
	{ "CN of 64 characters (RFC 5280 ub-common-name) is kept", p_cn_keep,
	  .subj = { A("CN", "0123456789012345678901234567890123456789012345678901234567890123") },
	  .subject = "/CN=0123456789012345678901234567890123456789012345678901234567890123" },
	{ "CN of 65 characters (over RFC 5280 ub-common-name) is refused", p_cn_keep,
	  .subj = { A("CN", "01234567890123456789012345678901234567890123456789012345678901234") },
	  .want = CA_E_NAME_REFUSED, .why = "CN" },

	/* -- subjectAltName rules -- */
	{ "dns at its max of 2 is allowed", p_dns_max2, .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example"), DNS("b.example") } },
	{ "dns one over its max of 2 is refused", p_dns_max2, .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example"), DNS("b.example"), DNS("c.example") }, .want = CA_E_NAME_REFUSED,
	  .why = "allows 2 dns subjectAltName(s): DNS:c.example refused" },
	{ "dns min 1 refuses a request without one", p_dns_min1, .subj = { A("CN", "dev1") },
	  .sans = { IP("192.0.2.1") }, .want = CA_E_NAME_REFUSED, .why = "requires at least 1 dns" },
	{ "dns min 1 allows a request with one", p_dns_min1, .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example"), IP("192.0.2.1") } },
	{ "dns pattern match is allowed", p_dns_pattern, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev-1.example.com") } },
	{ "dns pattern mismatch is refused", p_dns_pattern, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example.org") }, .want = CA_E_NAME_REFUSED,
	  .why = "DNS:dev1.example.org does not match the profile's dns pattern" },
	{ "dns pattern is anchored: a matching suffix is not enough", p_dns_pattern, .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.b.example.com") }, .want = CA_E_NAME_REFUSED, .why = "does not match the profile's dns" },
	{ "ip v4 pattern match is allowed", p_ip_pattern, .subj = { A("CN", "dev1") },
	  .sans = { IP("192.0.2.17") } },
	{ "ip v4 pattern mismatch is refused", p_ip_pattern, .subj = { A("CN", "dev1") },
	  .sans = { IP("198.51.100.1") }, .want = CA_E_NAME_REFUSED,
	  .why = "IP:198.51.100.1 does not match the profile's ip pattern" },
	{ "ip v6 pattern matches the compressed text form", p_ip_pattern, .subj = { A("CN", "dev1") },
	  .sans = { IP("2001:db8:0:0:0:0:0:1f") } },
	{ "ip v6 pattern mismatch is refused", p_ip_pattern, .subj = { A("CN", "dev1") },
	  .sans = { IP("2001:db9::1") }, .want = CA_E_NAME_REFUSED, .why = "IP:2001:db9::1 does not match" },
	{ "uri pattern match is allowed", p_uri_pattern, .subj = { A("CN", "dev1") },
	  .sans = { URI("spiffe://example.com/dev1") } },
	{ "uri pattern mismatch is refused", p_uri_pattern, .subj = { A("CN", "dev1") },
	  .sans = { URI("spiffe://example.org/dev1") }, .want = CA_E_NAME_REFUSED,
	  .why = "URI:spiffe://example.org/dev1 does not match the profile's uri pattern" },
	{ "email pattern match is allowed", p_email_pattern, .subj = { A("CN", "dev1") },
	  .sans = { EMAIL("ops.team@example.com") } },
	{ "email pattern mismatch is refused", p_email_pattern, .subj = { A("CN", "dev1") },
	  .sans = { EMAIL("ops@example.net") }, .want = CA_E_NAME_REFUSED,
	  .why = "email:ops@example.net does not match the profile's email pattern" },
	{ "hardware serial matching the hardware_serial pattern is allowed", p_hw_pattern,
	  .subj = { A("CN", "dev1") }, .sans = { HW("SN-123456") }, .check = c_hw_serial },
	{ "hardware serial not matching the pattern is refused", p_hw_pattern, .subj = { A("CN", "dev1") },
	  .sans = { HW("SN-1234567") }, .want = CA_E_NAME_REFUSED,
	  .why = "HWSERIAL:SN-1234567 does not match the profile's hardware_serial pattern" },
	{ "hardware serial under SAN rules without a hardware_serial rule is refused", p_rules_no_hw,
	  .subj = { A("CN", "dev1") }, .sans = { HW("SN-123456") }, .want = CA_E_NAME_REFUSED,
	  .why = "allows 0 hardware_serial" },
	{ "hardware serial without SAN rules is refused", .subj = { A("CN", "dev1") },
	  .sans = { HW("SN-123456") }, .want = CA_E_NAME_REFUSED, .why = "no rule for hardware serial numbers" },
	{ "a kind with max 0 is refused", p_ip_max0, .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example"), IP("192.0.2.1") }, .want = CA_E_NAME_REFUSED, .why = "allows 0 ip" },
	{ "no SAN rules: max_sans 4 SANs of mixed kinds are allowed", .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example"), IP("192.0.2.1"), URI("https://a.example/"), EMAIL("a@a.example") } },
	{ "no SAN rules: one over max_sans 4 is refused", .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example"), IP("192.0.2.1"), URI("https://a.example/"), EMAIL("a@a.example"),
		    DNS("b.example") },
	  .want = CA_E_NAME_REFUSED, .why = "allows at most 4 subjectAltNames, request has 5" },
	{ "no SAN rules: max_sans 0 refuses a single SAN", p_max_sans_0, .subj = { A("CN", "dev1") },
	  .sans = { DNS("a.example") }, .want = CA_E_NAME_REFUSED, .why = "allows at most 0 subjectAltNames" },
	{ "otherName of another type (UPN) is refused", .subj = { A("CN", "dev1") },
	  .sans = { UPN("dev1@example.com") }, .want = CA_E_NAME_REFUSED, .why = "a type this server does not issue" },
	{ "dNSName with a space is refused", .subj = { A("CN", "dev1") }, .sans = { DNS("dev1 .example") },
	  .want = CA_E_NAME_REFUSED, .why = "characters RFC 5280 does not allow" },
	{ "dNSName with a NUL byte is refused", .subj = { A("CN", "dev1") },
	  .sans = { DNS_N("dev1\0.example", 13) }, .want = CA_E_NAME_REFUSED,
	  .why = "characters RFC 5280 does not allow" },
	{ "dNSName of 255 characters is allowed",
	  .subj = { A("CN", "dev1") },
	  .sans = { DNS("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
			"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc."
			"ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd") } },
	{ "dNSName of 256 characters is refused",
	  .subj = { A("CN", "dev1") },
	  .sans = { DNS("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
			"ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc."
			"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd") },
	  .want = CA_E_NAME_REFUSED, .why = "too long" },

	/* -- credential name bindings -- */
	{ "credential CN pattern: matching CN is allowed", .cred = { "basic:factory", "dev[0-9]+", NULL },
	  .subj = { A("CN", "dev42") }, .subject = "/CN=dev42" },
	{ "credential CN pattern: other CN is refused", .cred = { "basic:factory", "dev[0-9]+", NULL },
	  .subj = { A("CN", "printer") }, .want = CA_E_NAME_REFUSED,
	  .why = "credential basic:factory may not ask for CN 'printer'" },
	{ "credential CN pattern: a request without CN is checked as an empty CN",
	  .cred = { "basic:factory", "dev[0-9]+", NULL }, .subj = { A("O", "Acme") },
	  .sans = { DNS("dev1.example") }, .want = CA_E_NAME_REFUSED, .why = "may not ask for CN ''" },
	{ "credential SAN pattern: matching SAN is allowed",
	  .cred = { "basic:factory", NULL, "DNS:[a-z0-9]+\\.devices\\.example" }, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.devices.example") } },
	{ "credential SAN pattern: other SAN is refused",
	  .cred = { "basic:factory", NULL, "DNS:[a-z0-9]+\\.devices\\.example" }, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.devices.example"), DNS("www.example") }, .want = CA_E_NAME_REFUSED,
	  .why = "credential basic:factory may not ask for DNS:www.example" },
	{ "credential SAN pattern sees the kind: an IP is not a DNS name",
	  .cred = { "basic:factory", NULL, "DNS:.*" }, .subj = { A("CN", "dev1") }, .sans = { IP("192.0.2.1") },
	  .want = CA_E_NAME_REFUSED, .why = "may not ask for IP:192.0.2.1" },
	{ "credential CN pattern: a second CN that does not match is refused",
	  .cred = { "basic:factory", "dev[0-9]+", NULL }, .subj = { A("CN", "dev1"), A("CN", "printer") },
	  .want = CA_E_NAME_REFUSED, .why = "may not ask for CN 'printer'" },
	{ "credential CN pattern applies to the CN after the profile's rules", p_cn_override_64,
	  .cred = { "basic:factory", "dev[0-9]+", NULL }, .subj = { A("CN", "dev1") }, .want = CA_E_NAME_REFUSED,
	  .why = "may not ask for CN '0123456789" },
	{ "credential without patterns allows any name", .cred = { "basic:factory", NULL, NULL },
	  .subj = { A("CN", "anything") }, .sans = { DNS("whatever.test"), IP("2001:db8::1") },
	  .subject = "/CN=anything" },
	{ "another requester's credential does not bind this one", .cred = { "basic:other", "nothing", "nothing" },
	  .subj = { A("CN", "dev1") }, .sans = { DNS("dev1.example") }, .subject = "/CN=dev1" },

	/* -- validity -- */
	{ "validity of 60 seconds is exact", p_valid_60s, .subj = { A("CN", "dev1") }, .check = c_valid_60s },
	{ "validity of 14 days is exact", p_valid_14d, .subj = { A("CN", "dev1") }, .check = c_valid_14d },
	{ "validity of 20 years under a 30-year CA is exact", p_valid_20y, .subj = { A("CN", "dev1") },
	  .check = c_valid_20y },
	{ "validity of 30 years is clamped to the CA's notAfter", p_valid_30y, .subj = { A("CN", "dev1") },
	  .check = c_valid_clamped },
	{ "backdate 0 gives notBefore = now", .subj = { A("CN", "dev1") }, .check = c_backdate_0 },
	{ "backdate 3600 gives notBefore = now - 3600", p_backdate_3600, .subj = { A("CN", "dev1") },
	  .check = c_backdate_3600 },

	/* -- extensions -- */
	{ "key_usage digitalSignature+keyAgreement on EC is set as configured", p_ku_ds_ka,
	  .subj = { A("CN", "dev1") }, .check = c_ku_ds_ka },
	{ "key_usage keyEncipherment on an EC key is refused by lint", p_ku_ds_ke, .subj = { A("CN", "dev1") },
	  .want = CA_E_KEY_REFUSED, .why = "keyEncipherment is not possible", .by_lint = true },
	{ "key_usage keyEncipherment on an RSA key is set", p_ku_ds_ke, .subj = { A("CN", "dev1") },
	  .key = K_RSA2048, .check = c_ku_ds_ke },
	{ "key_usage keyAgreement on an Ed25519 key is refused by lint", p_ku_ka, .subj = { A("CN", "dev1") },
	  .key = K_ED25519, .want = CA_E_KEY_REFUSED, .why = "keyAgreement is not possible", .by_lint = true },
	{ "key_usage keyCertSign in an end-entity profile is refused by lint", p_ku_ds_kcs,
	  .subj = { A("CN", "dev1") }, .want = CA_E_CONFIG, .why = "keyCertSign/cRLSign in an end-entity",
	  .by_lint = true },
	{ "EKU clientAuth by default", .subj = { A("CN", "dev1") }, .check = c_eku_client },
	{ "EKU by name (serverAuth)", p_eku_server_by_name, .subj = { A("CN", "dev1") }, .check = c_eku_server },
	{ "EKU by dotted OID (timeStamping)", p_eku_timestamping_oid, .subj = { A("CN", "dev1") },
	  .check = c_eku_timestamping },
	{ "certificate_policies OIDs are present", p_policies, .subj = { A("CN", "dev1") }, .check = c_policies },
	{ "crl, ocsp and ca_issuers URLs are in CDP and AIA exactly", p_urls, .subj = { A("CN", "dev1") },
	  .check = c_urls },
	{ "name_constraints are present and critical", p_name_constraints, .subj = { A("CN", "dev1") },
	  .check = c_name_constraints },
	{ "custom extension is present byte for byte, critical", p_custom, .subj = { A("CN", "dev1") },
	  .check = c_custom },
	{ "basicConstraints and subjectKeyIdentifier by default", .subj = { A("CN", "dev1") },
	  .check = c_has_bc_and_skid },
	{ "no_basic_constraints and no_subject_key_id leave them out", p_no_bc_no_skid,
	  .subj = { A("CN", "dev1") }, .check = c_no_bc_no_skid },
	{ "serial_bytes 0 gives a 16-octet positive serial", .subj = { A("CN", "dev1") },
	  .check = c_serial_default_16 },
	{ "serial_bytes 9 gives a 9-octet positive serial", p_serial_9, .subj = { A("CN", "dev1") },
	  .check = c_serial_9 },
	{ "serial_bytes 20 gives a 20-octet positive serial", p_serial_20, .subj = { A("CN", "dev1") },
	  .check = c_serial_20 },
	{ "compact profile: P-256, CN of 16 hex, 32-character DNS name fits in 420 octets", p_compact,
	  .subj = { A("CN", "0123456789abcdef") }, .sans = { DNS("0123456789abcdef0123.example.com") },
	  .subject = "/CN=0123456789abcdef", .check = c_compact },
};

/* ---- running a row ---- */

static void add_profile(ca_ctx *c, const char *name, void (*change)(struct ca_profile *))
{
	struct ca_profile p;
	struct ca_err err = { 0 };

	base_profile(&p);
	snprintf(p.name, sizeof(p.name), "%s", name);
	if (change != NULL)
		change(&p);
	ck_assert_msg(ca_ctx_add_profile(c, &p, &err) == 0, "profile %s: %s", name, err.detail);
}

static void add_credential(ca_ctx *c, const struct cred_spec *s)
{
	struct ca_credential cr = { 0 };
	struct ca_err err = { 0 };

	snprintf(cr.key, sizeof(cr.key), "%s", s->key);
	cr.cn_pattern = dup_or_null(s->cn_pattern);
	cr.san_pattern = dup_or_null(s->san_pattern);
	ck_assert_msg(ca_ctx_add_credential(c, &cr, &err) == 0, "credential %s: %s", s->key, err.detail);
}

/* pol_authorize then pol_check, as ca_issue runs them. */
static int decide(const struct ca_profile *p, const struct ca_requester *who, X509_REQ *csr, X509 *renew_of,
		  struct pol_decision *d, struct pol_trace *t, struct ca_err *err)
{
	memset(err, 0, sizeof(*err));
	memset(d, 0, sizeof(*d));
	if (pol_authorize(ctx, p, who, renew_of, t, err) != 0)
		return -1;
	return pol_check(ctx, p, who, csr, renew_of, d, t, err);
}

/* The row's context: its profile "p", its credential, its clock. */
static const struct ca_profile *row_setup(const struct row *r, X509 **renew_of)
{
	const struct ca_profile *p;

	add_profile(ctx, "p", r->profile);
	if (r->cred.key != NULL)
		add_credential(ctx, &r->cred);
	ck_assert((p = ca_profile_find(ctx, "p")) != NULL);
	row_clock = now_fixed + r->at;
	ca_ctx_set_clock(ctx, fixed_clock, &row_clock);
	*renew_of = r->renew == RENEW_OURS ? seed_ours : r->renew == RENEW_OTHER_CA ? seed_other : NULL;
	return p;
}

static const char *last_line(const char *text, char *buf, size_t len)
{
	size_t n = strlen(text);
	const char *start;

	while (n > 0 && text[n - 1] == '\n')
		n--;
	for (start = text + n; start > text && start[-1] != '\n'; start--)
		;
	snprintf(buf, len, "%.*s", (int)(text + n - start), start);
	return buf;
}

/* The trace has the line "DENY  <reason>". */
static bool trace_has_deny(const struct pol_trace *t, const char *reason)
{
	char want[300], *text;
	bool found;

	if (t->text == NULL)
		return false;
	snprintf(want, sizeof(want), "\nDENY  %s\n", reason);
	ck_assert(asprintf(&text, "\n%s", t->text) > 0);
	found = strstr(text, want) != NULL;
	free(text);
	return found;
}

/* The certificate's SANs are the decision's, byte for byte. */
static void expect_same_sans(X509 *x, const GENERAL_NAMES *want)
{
	GENERAL_NAMES *got = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	unsigned char *a = NULL, *b = NULL;
	int la = want && sk_GENERAL_NAME_num(want) > 0 ? i2d_GENERAL_NAMES(want, &a) : 0;
	int lb = got ? i2d_GENERAL_NAMES(got, &b) : 0;

	ck_assert_msg(la == lb && (la == 0 || memcmp(a, b, (size_t)la) == 0), "SANs differ from the decision");
	OPENSSL_free(a);
	OPENSSL_free(b);
	GENERAL_NAMES_free(got);
}

START_TEST(policy_decides_each_request_as_the_row_says)
{
	const struct row *r = &rows[_i];
	const struct ca_requester *who = r->who ? r->who : &who_factory;
	struct pol_decision d = { 0 }, d2 = { 0 };
	struct pol_trace t = { 0 };
	struct ca_err err, err2;
	struct ca_issue_res res = { 0 };
	struct ca_issue_req req;
	X509 *renew_of, *x;
	X509_REQ *csr;
	unsigned char *der;
	size_t len;
	int rc, rc2;
	bool policy_denies = r->want != CA_OK && !r->by_lint;
	const struct ca_profile *p = row_setup(r, &renew_of);

	len = make_csr(keys[r->key], r->subj, r->sans, &der);
	memset(&err, 0, sizeof(err));
	csr = ca_csr_decode(der, len, &err);
	ck_assert_msg(csr != NULL, "%s: CSR does not decode: %s", r->what, err.detail);

	/* The policy, without and with a trace: the same decision. */
	rc = decide(p, who, csr, renew_of, &d, NULL, &err);
	rc2 = decide(p, who, csr, renew_of, &d2, &t, &err2);
	ck_assert_msg(rc == rc2 && err.code == err2.code && strcmp(err.detail, err2.detail) == 0,
		      "%s: a trace changes the decision: '%s' / '%s'", r->what, err.detail, err2.detail);
	if (policy_denies) {
		ck_assert_msg(rc == -1, "%s: the policy allowed it", r->what);
		ck_assert_msg(err.code == r->want, "%s: code '%s', want '%s' (%s)", r->what, ca_code_str(err.code),
			      ca_code_str(r->want), err.detail);
		ck_assert_msg(strstr(err.detail, r->why) != NULL, "%s: reason '%s' lacks '%s'", r->what, err.detail,
			      r->why);
		ck_assert_msg(trace_has_deny(&t, err.detail), "%s: trace lacks 'DENY  %s':\n%s", r->what, err.detail,
			      t.text ? t.text : "(empty)");
		ck_assert_ptr_null(d.subject);
		ck_assert_ptr_null(d.sans);
	} else {
		ck_assert_msg(rc == 0, "%s: the policy refused it: %s (%s)", r->what, err.detail,
			      ca_code_str(err.code));
		ck_assert_ptr_nonnull(d.subject);
	}

	/* End to end: ca_issue agrees, and the certificate says what was decided. */
	req = (struct ca_issue_req){ .csr_der = der, .csr_len = len, .profile = "p", .who = who,
				     .protocol = "cli", .renew_of = renew_of };
	memset(&err, 0, sizeof(err));
	rc = ca_issue(ctx, &req, &res, &err);
	if (r->want != CA_OK) {
		ck_assert_msg(rc == -1, "%s: ca_issue issued it", r->what);
		ck_assert_ptr_null(res.cert);
		ck_assert_msg(err.code == r->want, "%s: ca_issue code '%s', want '%s' (%s)", r->what,
			      ca_code_str(err.code), ca_code_str(r->want), err.detail);
		ck_assert_msg(strstr(err.detail, r->why) != NULL, "%s: ca_issue reason '%s' lacks '%s'", r->what,
			      err.detail, r->why);
	} else {
		const unsigned char *q;
		char *one;

		ck_assert_msg(rc == 0, "%s: ca_issue refused it: %s", r->what, err.detail);
		q = res.der;
		ck_assert((x = d2i_X509(NULL, &q, (long)res.der_len)) != NULL);
		ck_assert(q == res.der + res.der_len);
		ck_assert_int_eq(X509_verify(x, issuing_pkey), 1);
		ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(x), d.subject), 0);
		expect_same_sans(x, d.sans);
		if (r->subject != NULL) {
			one = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);
			ck_assert_msg(one != NULL && strcmp(one, r->subject) == 0, "%s: subject '%s', want '%s'",
				      r->what, one ? one : "(none)", r->subject);
			OPENSSL_free(one);
		}
		if (r->check != NULL)
			r->check(x);
		X509_free(x);
	}
	ca_issue_res_free(&res);
	pol_decision_free(&d);
	pol_decision_free(&d2);
	pol_trace_free(&t);
	X509_REQ_free(csr);
	OPENSSL_free(der);
}
END_TEST

/* ---- the trace ---- */

static const struct row trace_rows[] = {
	{ "allowed request", .subj = { A("CN", "dev1") }, .sans = { DNS("dev1.example") } },
	{ "allowed request with subject rules and a credential", p_o_override,
	  .cred = { "basic:factory", "dev[0-9]+", "DNS:.*" }, .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") } },
	{ "allowed re-enrollment", .subj = { A("CN", "dev1") }, .sans = { DNS("dev1.example") },
	  .renew = RENEW_OURS, .key = K_P256_B },
	{ "denied: anonymous", .who = &who_anonymous, .subj = { A("CN", "dev1") }, .want = CA_E_UNAUTHENTICATED },
	{ "denied: user not listed", .who = &who_stranger, .subj = { A("CN", "dev1") }, .want = CA_E_FORBIDDEN },
	{ "denied: key type", p_p256_only, .subj = { A("CN", "dev1") }, .key = K_P384, .want = CA_E_KEY_REFUSED },
	{ "denied: subject", p_ou_refuse, .subj = { A("CN", "dev1"), A("OU", "x") }, .want = CA_E_NAME_REFUSED },
	{ "denied: SAN", p_dns_pattern, .subj = { A("CN", "dev1") }, .sans = { DNS("x.test") },
	  .want = CA_E_NAME_REFUSED },
	{ "denied: credential", .cred = { "basic:factory", "dev[0-9]+", NULL }, .subj = { A("CN", "printer") },
	  .want = CA_E_NAME_REFUSED },
	{ "denied: re-enrollment of an expired certificate", .subj = { A("CN", "dev1") },
	  .sans = { DNS("dev1.example") }, .renew = RENEW_OURS, .at = DAY + 1, .key = K_P256_B,
	  .want = CA_E_FORBIDDEN },
};

START_TEST(policy_trace_ends_with_allow_or_holds_the_deny_reason)
{
	const struct row *r = &trace_rows[_i];
	const struct ca_requester *who = r->who ? r->who : &who_factory;
	struct pol_decision d = { 0 }, d0 = { 0 };
	struct pol_trace t = { 0 };
	struct ca_err err, err0;
	X509 *renew_of;
	X509_REQ *csr;
	unsigned char *der;
	size_t len;
	int rc, rc0;
	char line[600];
	const struct ca_profile *p = row_setup(r, &renew_of);

	len = make_csr(keys[r->key], r->subj, r->sans, &der);
	memset(&err, 0, sizeof(err));
	ck_assert((csr = ca_csr_decode(der, len, &err)) != NULL);
	rc = decide(p, who, csr, renew_of, &d, &t, &err);
	rc0 = decide(p, who, csr, renew_of, &d0, NULL, &err0);
	ck_assert_msg(rc == rc0 && err.code == err0.code && strcmp(err.detail, err0.detail) == 0,
		      "%s: trace NULL decides otherwise", r->what);
	ck_assert_msg(t.text != NULL && t.len == strlen(t.text), "%s: no trace", r->what);
	if (r->want == CA_OK) {
		ck_assert_msg(rc == 0, "%s: denied: %s", r->what, err.detail);
		ck_assert_int_eq(X509_NAME_cmp(d.subject, d0.subject), 0);
		ck_assert_msg(strncmp(last_line(t.text, line, sizeof(line)), "ALLOW", 5) == 0,
			      "%s: trace does not end with ALLOW:\n%s", r->what, t.text);
		ck_assert_msg(strstr(t.text, "DENY") == NULL, "%s: DENY in an allowed trace:\n%s", r->what, t.text);
	} else {
		ck_assert_msg(rc == -1 && err.code == r->want, "%s: %s", r->what, err.detail);
		ck_assert_msg(trace_has_deny(&t, err.detail), "%s: no 'DENY  %s' line:\n%s", r->what, err.detail,
			      t.text);
		ck_assert_msg(strstr(t.text, "ALLOW") == NULL, "%s: ALLOW in a denied trace:\n%s", r->what, t.text);
	}
	pol_decision_free(&d);
	pol_decision_free(&d0);
	pol_trace_free(&t);
	X509_REQ_free(csr);
	OPENSSL_free(der);
}
END_TEST

/* ---- ca_profile_prepare ---- */

static void p_bad_subject_regex(struct ca_profile *p) { SUBJECT(p, R("CN", KEEP, NULL, "dev(")); }
static void p_bad_san_regex(struct ca_profile *p) { san_rule(p, CA_SAN_DNS, 0, 1, "[a-"); }
static void p_bad_eku_oid(struct ca_profile *p)
{
	p->eku_oids = list(1, "timeStamping");
	p->n_eku_oids = 1;
}
static void p_bad_policy_oid(struct ca_profile *p)
{
	p->policies = list(1, "1.3.6.1.x");
	p->n_policies = 1;
}
static void p_bad_custom_oid(struct ca_profile *p) { set_custom(p, "not-an-oid", CUSTOM_DER, 5); }
static void p_custom_trailing(struct ca_profile *p) { set_custom(p, CUSTOM_OID, CUSTOM_DER "\x00", 6); }
static void p_custom_truncated(struct ca_profile *p) { set_custom(p, CUSTOM_OID, CUSTOM_DER, 4); }
static void p_custom_san(struct ca_profile *p) { set_custom(p, "2.5.29.17", "\x30\x00", 2); }
static void p_custom_ku(struct ca_profile *p) { set_custom(p, "2.5.29.15", "\x03\x02\x07\x80", 4); }
static void p_custom_twice(struct ca_profile *p)
{
	set_custom(p, CUSTOM_OID, CUSTOM_DER, 5);
	ck_assert((p->custom = realloc(p->custom, 2 * sizeof(*p->custom))) != NULL);
	p->custom[1] = (struct ca_custom_ext){ .oid = dup_or_null(CUSTOM_OID), .critical = false };
	ck_assert((p->custom[1].der = malloc(5)) != NULL);
	memcpy(p->custom[1].der, CUSTOM_DER, 5);
	p->custom[1].der_len = 5;
	p->n_custom = 2;
}
static void p_serial_8(struct ca_profile *p) { p->serial_bytes = 8; }
static void p_serial_21(struct ca_profile *p) { p->serial_bytes = 21; }
static void p_san_min_over_max(struct ca_profile *p) { san_rule(p, CA_SAN_DNS, 2, 1, NULL); }
static void p_san_min_eq_max(struct ca_profile *p) { san_rule(p, CA_SAN_DNS, 2, 2, NULL); }
static void p_override_null(struct ca_profile *p) { SUBJECT(p, R("O", OVERRIDE, NULL, NULL)); }
static void p_override_empty(struct ca_profile *p) { SUBJECT(p, R("O", OVERRIDE, "", NULL)); }
static void p_unknown_attr(struct ca_profile *p) { SUBJECT(p, R("XYZZY", KEEP, NULL, NULL)); }
static void p_cn_override_65(struct ca_profile *p)
{
	SUBJECT(p, R("CN", OVERRIDE, "01234567890123456789012345678901234567890123456789012345678901234", NULL));
}

static const struct prep_row {
	const char *what;
	void (*profile)(struct ca_profile *p);
	enum ca_code want;
	const char *why;
} prep_rows[] = {
	{ "base profile is accepted", NULL, CA_OK, NULL },
	{ "bad subject regex is refused", p_bad_subject_regex, CA_E_CONFIG, "bad pattern 'dev('" },
	{ "bad SAN regex is refused", p_bad_san_regex, CA_E_CONFIG, "bad pattern '[a-'" },
	{ "EKU that is not a dotted OID is refused", p_bad_eku_oid, CA_E_CONFIG, "'timeStamping' is not a dotted OID" },
	{ "policy that is not a dotted OID is refused", p_bad_policy_oid, CA_E_CONFIG, "'1.3.6.1.x' is not a dotted OID" },
	{ "custom extension with a bad OID is refused", p_bad_custom_oid, CA_E_CONFIG, "is not a dotted OID" },
	{ "custom extension well-formed is accepted", p_custom, CA_OK, NULL },
	{ "custom extension with trailing bytes after the DER is refused", p_custom_trailing, CA_E_CONFIG,
	  "trailing bytes" },
	{ "custom extension with truncated DER is refused", p_custom_truncated, CA_E_CONFIG, "not DER" },
	{ "custom extension for subjectAltName (2.5.29.17) is refused", p_custom_san, CA_E_CONFIG,
	  "built by the profile's own keys" },
	{ "custom extension for keyUsage (2.5.29.15) is refused", p_custom_ku, CA_E_CONFIG,
	  "built by the profile's own keys" },
	{ "two custom extensions with the same OID are refused (RFC 5280 4.2: at most once)", p_custom_twice,
	  CA_E_CONFIG, CUSTOM_OID },
	{ "serial_bytes 8 is refused", p_serial_8, CA_E_CONFIG, "serial_bytes must be 9-20" },
	{ "serial_bytes 9 is accepted", p_serial_9, CA_OK, NULL },
	{ "serial_bytes 20 is accepted", p_serial_20, CA_OK, NULL },
	{ "serial_bytes 21 is refused", p_serial_21, CA_E_CONFIG, "serial_bytes must be 9-20" },
	{ "san min larger than max is refused", p_san_min_over_max, CA_E_CONFIG, "min is larger than max" },
	{ "san min equal to max is accepted", p_san_min_eq_max, CA_OK, NULL },
	{ "override without a value is refused", p_override_null, CA_E_CONFIG, "override needs a value" },
	{ "override with an empty value is refused", p_override_empty, CA_E_CONFIG, "override needs a value" },
	{ "unknown subject attribute type is refused", p_unknown_attr, CA_E_CONFIG, "unknown attribute type" },
	{ "override of CN with 64 characters is accepted", p_cn_override_64, CA_OK, NULL },
	{ "override of CN with 65 characters (over ub-common-name) is refused", p_cn_override_65, CA_E_CONFIG,
	  "subject CN" },
};

START_TEST(profile_prepare_accepts_or_refuses_as_the_row_says)
{
	const struct prep_row *r = &prep_rows[_i];
	struct ca_profile p;
	struct ca_err err = { 0 };
	int rc;

	base_profile(&p);
	if (r->profile != NULL)
		r->profile(&p);
	rc = ca_ctx_add_profile(ctx, &p, &err);
	if (r->want == CA_OK) {
		ck_assert_msg(rc == 0, "%s: refused: %s", r->what, err.detail);
		ck_assert_ptr_nonnull(ca_profile_find(ctx, "p"));
		ck_assert_ptr_nonnull(ca_profile_find(ctx, "p")->built);
	} else {
		ck_assert_msg(rc == -1, "%s: accepted", r->what);
		ck_assert_msg(err.code == r->want, "%s: code '%s' (%s)", r->what, ca_code_str(err.code), err.detail);
		ck_assert_msg(strstr(err.detail, r->why) != NULL, "%s: reason '%s' lacks '%s'", r->what, err.detail,
			      r->why);
		ck_assert_ptr_null(ca_profile_find(ctx, "p"));
		ck_assert_ptr_null(p.built);
		ca_profile_free_lists(&p); /* still ours when refused */
	}
}
END_TEST

START_TEST(credential_prepare_refuses_bad_pattern)
{
	struct ca_credential c = { .key = "basic:factory" };
	struct ca_err err = { 0 };

	c.cn_pattern = dup_or_null("dev[");
	ck_assert_int_eq(ca_ctx_add_credential(ctx, &c, &err), -1);
	ck_assert_int_eq(err.code, CA_E_CONFIG);
	ck_assert_msg(strstr(err.detail, "credential 'basic:factory' cn: bad pattern") != NULL, "%s", err.detail);
	ck_assert_ptr_null(ca_credential_find(ctx, "basic:factory"));
	ca_credential_free(&c);
}
END_TEST

/* ---- fixtures ---- */

static EVP_PKEY *gen_key(enum key_id k)
{
	EVP_PKEY *pk;

	if (key_spec[k].curve != NULL)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, key_spec[k].alg, key_spec[k].curve);
	else if (key_spec[k].bits != 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, key_spec[k].alg, key_spec[k].bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, key_spec[k].alg);
	ck_assert_msg(pk != NULL, "cannot generate %s key", key_spec[k].what);
	if (k == K_P256_EXPLICIT)
		ck_assert(EVP_PKEY_set_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_ENCODING,
							 OSSL_PKEY_EC_ENCODING_EXPLICIT) == 1);
	return pk;
}

/* A context for key/cert (the context takes its own references) with the
 * "seed" profile that issues the certificates the rows renew. */
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
	add_profile(c, "seed", NULL);
	return c;
}

/* CN=dev1, DNS:dev1.example, valid from now to now + 1 day. */
static X509 *seed_cert(ca_ctx *c)
{
	static const struct attr subj[MAX_ATTRS] = { A("CN", "dev1") };
	static const struct san sans[MAX_SANS] = { DNS("dev1.example") };
	struct ca_issue_res res;
	struct ca_err err = { 0 };
	unsigned char *der;
	size_t len = make_csr(keys[K_P256], subj, sans, &der);
	struct ca_issue_req req = { .csr_der = der, .csr_len = len, .profile = "seed", .who = &who_factory,
				    .protocol = "cli" };
	const unsigned char *q;
	X509 *x;

	ck_assert_msg(ca_issue(c, &req, &res, &err) == 0, "seed: %s", err.detail);
	q = res.der;
	ck_assert((x = d2i_X509(NULL, &q, (long)res.der_len)) != NULL);
	ca_issue_res_free(&res);
	OPENSSL_free(der);
	return x;
}

static void setup_ca(void)
{
	struct ca_err err = { 0 };
	sig_key *root_sig;
	EVP_PKEY *other_key;
	X509 *other_root;
	ca_ctx *c;

	if (root_cert != NULL)
		return;
	now_fixed = time(NULL) + 300;
	for (int k = 0; k < K_COUNT; k++)
		keys[k] = gen_key((enum key_id)k);
	root_pkey = gen_key(K_P256);
	issuing_pkey = gen_key(K_P256);
	ck_assert(EVP_PKEY_up_ref(root_pkey) == 1);
	root_sig = sig_mem_key(root_pkey);
	root_cert = ca_make_root(root_sig, "/CN=policy test root", 40 * YEAR, &err);
	ck_assert_msg(root_cert != NULL, "root: %s", err.detail);
	issuing_cert = ca_make_intermediate(root_sig, root_cert, issuing_pkey, CA_SUBJECT, CA_VALIDITY, &err);
	ck_assert_msg(issuing_cert != NULL, "issuing: %s", err.detail);
	sig_close(root_sig);
	c = new_ctx("test", issuing_pkey, issuing_cert, root_cert);
	seed_ours = seed_cert(c);
	ca_ctx_free(c);

	/* An unrelated CA that issued the same names. */
	other_key = gen_key(K_P256);
	ck_assert(EVP_PKEY_up_ref(other_key) == 1);
	root_sig = sig_mem_key(other_key);
	other_root = ca_make_root(root_sig, "/CN=other root", 40 * YEAR, &err);
	ck_assert_msg(other_root != NULL, "other root: %s", err.detail);
	sig_close(root_sig);
	c = new_ctx("other", other_key, other_root, NULL);
	seed_other = seed_cert(c);
	ca_ctx_free(c);
	EVP_PKEY_free(other_key);
	X509_free(other_root);
}

/* Registered on the last test case only: the keys serve every case. */
static void teardown_ca(void)
{
	for (int k = 0; k < K_COUNT; k++) {
		EVP_PKEY_free(keys[k]);
		keys[k] = NULL;
	}
	EVP_PKEY_free(root_pkey);
	EVP_PKEY_free(issuing_pkey);
	X509_free(root_cert);
	X509_free(issuing_cert);
	X509_free(seed_ours);
	X509_free(seed_other);
	root_pkey = issuing_pkey = NULL;
	root_cert = issuing_cert = seed_ours = seed_other = NULL;
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

Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *rules = tcase_create("rules");
	TCase *trace = tcase_create("trace");
	TCase *prep = tcase_create("prepare");

	tcase_add_unchecked_fixture(rules, setup_ca, NULL);
	tcase_add_checked_fixture(rules, setup_ctx, teardown_ctx);
	tcase_set_timeout(rules, 60);
	tcase_add_loop_test(rules, policy_decides_each_request_as_the_row_says, 0,
			    (int)(sizeof(rows) / sizeof(rows[0])));
	suite_add_tcase(s, rules);

	tcase_add_unchecked_fixture(trace, setup_ca, NULL);
	tcase_add_checked_fixture(trace, setup_ctx, teardown_ctx);
	tcase_set_timeout(trace, 60);
	tcase_add_loop_test(trace, policy_trace_ends_with_allow_or_holds_the_deny_reason, 0,
			    (int)(sizeof(trace_rows) / sizeof(trace_rows[0])));
	suite_add_tcase(s, trace);

	tcase_add_unchecked_fixture(prep, setup_ca, teardown_ca);
	tcase_add_checked_fixture(prep, setup_ctx, teardown_ctx);
	tcase_set_timeout(prep, 60);
	tcase_add_loop_test(prep, profile_prepare_accepts_or_refuses_as_the_row_says, 0,
			    (int)(sizeof(prep_rows) / sizeof(prep_rows[0])));
	tcase_add_test(prep, credential_prepare_refuses_bad_pattern);
	suite_add_tcase(s, prep);
	return s;
}
