/* Profiles and credentials: names of key types, usages and EKUs; preparing a
 * profile once at load (compiled patterns, the extensions that are the same
 * in every certificate); freeing what they own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509v3.h>
#include "ca_int.h"

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static void free_re(regex_t *re)
{
	if (re != NULL) {
		regfree(re);
		free(re);
	}
}

static void built_free(struct ca_profile_built *b, size_t n_subject)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < n_subject; i++)
		free_re(b->subject_re[i]);
	free(b->subject_re);
	free(b->subject_nid);
	for (int k = 0; k < CA_SAN_KINDS; k++)
		free_re(b->san_re[k]);
	free_re(b->cn_re);
	sk_X509_EXTENSION_pop_free(b->fixed, X509_EXTENSION_free);
	ASN1_OBJECT_free(b->hw_oid);
	free(b);
}

void ca_profile_free_lists(struct ca_profile *p)
{
	if (p == NULL)
		return;
	built_free(p->built, p->n_subject);
	free_list(p->basic_users, p->n_basic_users);
	free_list(p->cert_anchors, p->n_cert_anchors);
	for (size_t i = 0; i < p->n_subject; i++) {
		free(p->subject[i].value);
		free(p->subject[i].pattern);
	}
	free(p->subject);
	for (int k = 0; k < CA_SAN_KINDS; k++)
		free(p->san[k].pattern);
	free_list(p->eku_oids, p->n_eku_oids);
	free_list(p->policies, p->n_policies);
	free_list(p->crl_urls, p->n_crl_urls);
	free(p->crl_shard_url);
	p->crl_shard_url = NULL;
	free_list(p->ocsp_urls, p->n_ocsp_urls);
	free_list(p->ca_issuers_urls, p->n_ca_issuers_urls);
	free_list(p->nc_permitted_dns, p->n_nc_permitted_dns);
	free_list(p->nc_excluded_dns, p->n_nc_excluded_dns);
	for (size_t i = 0; i < p->n_custom; i++) {
		free(p->custom[i].oid);
		free(p->custom[i].der);
	}
	free(p->custom);
	memset(p, 0, sizeof(*p));
}

static const struct { const char *name; unsigned bit; } key_names[] = {
	{ "ec-p256", CA_KEY_EC_P256 },
	{ "ec-p384", CA_KEY_EC_P384 },
	{ "rsa", CA_KEY_RSA },
	{ "ed25519", CA_KEY_ED25519 },
};

static const struct { const char *name; unsigned bit; } eku_names[] = {
	{ "clientAuth", CA_EKU_CLIENT_AUTH },
	{ "serverAuth", CA_EKU_SERVER_AUTH },
};

/* RFC 5280 §4.2.1.3, in bit order. */
static const char *const ku_names[] = {
	"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
};

unsigned ca_key_type_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
		if (strcmp(name, key_names[i].name) == 0)
			return key_names[i].bit;
	return 0;
}

unsigned ca_eku_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(eku_names) / sizeof(eku_names[0]); i++)
		if (strcmp(name, eku_names[i].name) == 0)
			return eku_names[i].bit;
	return 0;
}

int ca_key_usage_bit(const char *name)
{
	if (strcmp(name, "contentCommitment") == 0)
		return 1;
	for (int i = 0; i < (int)(sizeof(ku_names) / sizeof(ku_names[0])); i++)
		if (strcmp(name, ku_names[i]) == 0)
			return i;
	return -1;
}

/* Compile a whole-value POSIX extended regex; *out NULL when pattern is NULL. */
static int compile(const char *what, const char *pattern, regex_t **out, struct ca_err *err)
{
	char anchored[1100], msg[128];
	int rc;

	*out = NULL;
	if (pattern == NULL)
		return 0;
	if (snprintf(anchored, sizeof(anchored), "^(%s)$", pattern) >= (int)sizeof(anchored)) {
		ca_err_set(err, CA_E_CONFIG, "%s: pattern longer than 1 KiB", what);
		return -1;
	}
	if ((*out = calloc(1, sizeof(regex_t))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	if ((rc = regcomp(*out, anchored, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, *out, msg, sizeof(msg));
		free(*out);
		*out = NULL;
		ca_err_set(err, CA_E_CONFIG, "%s: bad pattern '%s': %s", what, pattern, msg);
		return -1;
	}
	return 0;
}

static ASN1_OBJECT *oid(const char *what, const char *dotted, struct ca_err *err)
{
	ASN1_OBJECT *o = OBJ_txt2obj(dotted, 1);

	if (o == NULL)
		ca_err_ssl(err, CA_E_CONFIG, "%s: '%s' is not a dotted OID", what, dotted);
	return o;
}

static int push_ext(struct ca_profile_built *b, int nid, int crit, void *value, struct ca_err *err)
{
	X509_EXTENSION *e = X509V3_EXT_i2d(nid, crit, value);

	if (e == NULL || !sk_X509_EXTENSION_push(b->fixed, e)) {
		X509_EXTENSION_free(e);
		ca_err_ssl(err, CA_E_CONFIG, "cannot build extension %s", OBJ_nid2sn(nid));
		return -1;
	}
	return 0;
}

static GENERAL_NAME *uri_name(const char *url)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (g == NULL || s == NULL || !ASN1_STRING_set(s, url, -1)) {
		GENERAL_NAME_free(g);
		ASN1_IA5STRING_free(s);
		return NULL;
	}
	GENERAL_NAME_set0_value(g, GEN_URI, s);
	return g;
}

static int build_eku(const struct ca_profile *p, struct ca_profile_built *b, struct ca_err *err)
{
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	int rc = -1;

	if (eku == NULL)
		goto out;
	if ((p->eku & CA_EKU_SERVER_AUTH) && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)))
		goto out;
	if ((p->eku & CA_EKU_CLIENT_AUTH) && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		goto out;
	for (size_t i = 0; i < p->n_eku_oids; i++) {
		ASN1_OBJECT *o = oid("extended_key_usage", p->eku_oids[i], err);
		if (o == NULL || !sk_ASN1_OBJECT_push(eku, o)) {
			ASN1_OBJECT_free(o);
			goto out;
		}
	}
	rc = sk_ASN1_OBJECT_num(eku) == 0 ? 0 : push_ext(b, NID_ext_key_usage, 0, eku, err);
out:
	if (rc != 0)
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	return rc;
}

static int build_policies(const struct ca_profile *p, struct ca_profile_built *b, struct ca_err *err)
{
	CERTIFICATEPOLICIES *cp = sk_POLICYINFO_new_null();
	int rc = -1;

	if (cp == NULL)
		goto out;
	for (size_t i = 0; i < p->n_policies; i++) {
		POLICYINFO *pi = POLICYINFO_new();
		if (pi == NULL || (pi->policyid = oid("certificate_policies", p->policies[i], err)) == NULL ||
		    !sk_POLICYINFO_push(cp, pi)) {
			POLICYINFO_free(pi);
			goto out;
		}
	}
	rc = p->n_policies == 0 ? 0 : push_ext(b, NID_certificate_policies, 0, cp, err);
out:
	sk_POLICYINFO_pop_free(cp, POLICYINFO_free);
	return rc;
}

X509_EXTENSION *ca_cdp_ext(const char *const *urls, size_t n)
{
	CRL_DIST_POINTS *cdp = sk_DIST_POINT_new_null();
	X509_EXTENSION *e = NULL;

	if (cdp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		DIST_POINT *dp = DIST_POINT_new();
		GENERAL_NAME *g = uri_name(urls[i]);
		if (dp == NULL || g == NULL || (dp->distpoint = DIST_POINT_NAME_new()) == NULL ||
		    (dp->distpoint->name.fullname = GENERAL_NAMES_new()) == NULL ||
		    !sk_GENERAL_NAME_push(dp->distpoint->name.fullname, g)) {
			DIST_POINT_free(dp);
			GENERAL_NAME_free(g);
			goto out;
		}
		dp->distpoint->type = 0; /* fullName */
		if (!sk_DIST_POINT_push(cdp, dp)) {
			DIST_POINT_free(dp);
			goto out;
		}
	}
	e = X509V3_EXT_i2d(NID_crl_distribution_points, 0, cdp);
out:
	sk_DIST_POINT_pop_free(cdp, DIST_POINT_free);
	return e;
}

static int build_urls(const struct ca_profile *p, struct ca_profile_built *b, struct ca_err *err)
{
	AUTHORITY_INFO_ACCESS *aia = sk_ACCESS_DESCRIPTION_new_null();
	X509_EXTENSION *cdp = NULL;
	int rc = -1;

	if (aia == NULL)
		goto oom;
	for (int pass = 0; pass < 2; pass++) {
		char **urls = pass ? p->ca_issuers_urls : p->ocsp_urls;
		size_t n = pass ? p->n_ca_issuers_urls : p->n_ocsp_urls;
		for (size_t i = 0; i < n; i++) {
			ACCESS_DESCRIPTION *ad = ACCESS_DESCRIPTION_new();
			if (ad != NULL)
				GENERAL_NAME_free(ad->location); /* _new() made an empty one */
			if (ad == NULL || (ad->location = uri_name(urls[i])) == NULL ||
			    !sk_ACCESS_DESCRIPTION_push(aia, ad)) {
				ACCESS_DESCRIPTION_free(ad);
				goto oom;
			}
			ASN1_OBJECT_free(ad->method);
			ad->method = OBJ_nid2obj(pass ? NID_ad_ca_issuers : NID_ad_OCSP);
		}
	}
	if (p->n_crl_urls > 0) {
		if ((cdp = ca_cdp_ext((const char *const *)p->crl_urls, p->n_crl_urls)) == NULL ||
		    !sk_X509_EXTENSION_push(b->fixed, cdp)) {
			X509_EXTENSION_free(cdp);
			ca_err_ssl(err, CA_E_CONFIG, "cannot build extension crlDistributionPoints");
			goto out;
		}
	}
	if (sk_ACCESS_DESCRIPTION_num(aia) > 0 && push_ext(b, NID_info_access, 0, aia, err) != 0)
		goto out;
	rc = 0;
	goto out;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory");
out:
	sk_ACCESS_DESCRIPTION_pop_free(aia, ACCESS_DESCRIPTION_free);
	return rc;
}

static int build_name_constraints(const struct ca_profile *p, struct ca_profile_built *b,
				  struct ca_err *err)
{
	NAME_CONSTRAINTS *nc;
	int rc = -1;

	if (p->n_nc_permitted_dns == 0 && p->n_nc_excluded_dns == 0)
		return 0;
	if ((nc = NAME_CONSTRAINTS_new()) == NULL)
		goto oom;
	for (int pass = 0; pass < 2; pass++) {
		char **names = pass ? p->nc_excluded_dns : p->nc_permitted_dns;
		size_t n = pass ? p->n_nc_excluded_dns : p->n_nc_permitted_dns;
		STACK_OF(GENERAL_SUBTREE) **sk = pass ? &nc->excludedSubtrees : &nc->permittedSubtrees;
		if (n > 0 && (*sk = sk_GENERAL_SUBTREE_new_null()) == NULL)
			goto oom;
		for (size_t i = 0; i < n; i++) {
			GENERAL_SUBTREE *st = GENERAL_SUBTREE_new();
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();
			if (st == NULL || s == NULL || !ASN1_STRING_set(s, names[i], -1) ||
			    !sk_GENERAL_SUBTREE_push(*sk, st)) {
				GENERAL_SUBTREE_free(st);
				ASN1_IA5STRING_free(s);
				goto oom;
			}
			GENERAL_NAME_set0_value(st->base, GEN_DNS, s);
		}
	}
	/* RFC 5280 §4.2.1.10: conforming CAs mark it critical. */
	rc = push_ext(b, NID_name_constraints, 1, nc, err);
	goto out;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory");
out:
	NAME_CONSTRAINTS_free(nc);
	return rc;
}

static int build_custom(const struct ca_profile *p, struct ca_profile_built *b, struct ca_err *err)
{
	for (size_t i = 0; i < p->n_custom; i++) {
		const struct ca_custom_ext *c = &p->custom[i];
		for (size_t j = 0; j < i; j++) {
			ASN1_OBJECT *x = OBJ_txt2obj(c->oid, 1), *y = OBJ_txt2obj(p->custom[j].oid, 1);
			int same = x != NULL && y != NULL && OBJ_cmp(x, y) == 0;
			ASN1_OBJECT_free(x);
			ASN1_OBJECT_free(y);
			if (same) {
				ca_err_set(err, CA_E_CONFIG, "custom_extensions %s: given twice (RFC 5280 §4.2: at most once)", c->oid);
				return -1;
			}
		}
		ASN1_OBJECT *o = oid("custom_extensions", c->oid, err);
		ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
		const unsigned char *d = c->der;
		ASN1_TYPE *check = NULL;
		X509_EXTENSION *e = NULL;

		/* The value must be exactly one DER element. */
		if (o != NULL && (check = d2i_ASN1_TYPE(NULL, &d, (long)c->der_len)) == NULL)
			ca_err_ssl(err, CA_E_CONFIG, "custom_extensions %s: value is not DER", c->oid);
		else if (check != NULL && d != c->der + c->der_len)
			ca_err_set(err, CA_E_CONFIG, "custom_extensions %s: trailing bytes after the DER value", c->oid);
		/* No profile key builds id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): it comes this way. */
		else if (o != NULL && OBJ_obj2nid(o) != NID_undef && OBJ_obj2nid(o) != NID_id_pkix_OCSP_noCheck &&
			 X509V3_EXT_get_nid(OBJ_obj2nid(o)) != NULL)
			ca_err_set(err, CA_E_CONFIG, "custom_extensions %s: %s is built by the profile's own keys",
				   c->oid, OBJ_nid2sn(OBJ_obj2nid(o)));
		else if (o != NULL && v != NULL && ASN1_OCTET_STRING_set(v, c->der, (int)c->der_len) &&
			 (e = X509_EXTENSION_create_by_OBJ(NULL, o, c->critical, v)) != NULL &&
			 sk_X509_EXTENSION_push(b->fixed, e))
			e = NULL;
		X509_EXTENSION_free(e);
		ASN1_TYPE_free(check);
		ASN1_OCTET_STRING_free(v);
		ASN1_OBJECT_free(o);
		if (err != NULL && err->code != CA_OK)
			return -1;
	}
	return 0;
}

int ca_profile_prepare(struct ca_profile *p, struct ca_err *err)
{
	struct ca_profile_built *b = calloc(1, sizeof(*b));
	char what[160];
	struct ca_err local = { 0 };

	if (err == NULL)
		err = &local;
	if (b == NULL || (b->fixed = sk_X509_EXTENSION_new_null()) == NULL ||
	    (b->subject_re = calloc(p->n_subject + 1, sizeof(regex_t *))) == NULL ||
	    (b->subject_nid = calloc(p->n_subject + 1, sizeof(int))) == NULL ||
	    (b->hw_oid = OBJ_txt2obj("1.3.6.1.5.5.7.8.4", 1)) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto fail;
	}
	built_free(p->built, p->n_subject);
	p->built = NULL;
	if (p->serial_bytes != 0 && (p->serial_bytes < 9 || p->serial_bytes > 20)) {
		ca_err_set(err, CA_E_CONFIG, "profile '%s': serial_bytes must be 9-20 (64+ random bits, RFC 5280 §4.1.2.2)", p->name);
		goto fail;
	}
	for (size_t i = 0; i < p->n_subject; i++) {
		const struct ca_subject_attr *a = &p->subject[i];
		snprintf(what, sizeof(what), "profile '%s' subject %s", p->name, a->type);
		if ((b->subject_nid[i] = OBJ_txt2nid(a->type)) == NID_undef) {
			ca_err_set(err, CA_E_CONFIG, "%s: unknown attribute type", what);
			goto fail;
		}
		if (a->rule == CA_SUBJ_OVERRIDE && (a->value == NULL || a->value[0] == '\0')) {
			ca_err_set(err, CA_E_CONFIG, "%s: override needs a value", what);
			goto fail;
		}
		if (a->rule == CA_SUBJ_OVERRIDE) {
			/* The value must fit the attribute (RFC 5280 Appendix A bounds). */
			X509_NAME_ENTRY *e = X509_NAME_ENTRY_create_by_NID(NULL, b->subject_nid[i], MBSTRING_UTF8,
									   (const unsigned char *)a->value, -1);
			if (e == NULL) {
				ca_err_ssl(err, CA_E_CONFIG, "%s: value '%s' does not fit the attribute", what, a->value);
				goto fail;
			}
			X509_NAME_ENTRY_free(e);
		}
		if (compile(what, a->pattern, &b->subject_re[i], err) != 0)
			goto fail;
	}
	for (int k = 0; k < CA_SAN_KINDS; k++) {
		snprintf(what, sizeof(what), "profile '%s' sans", p->name);
		if (p->san[k].min > p->san[k].max) {
			ca_err_set(err, CA_E_CONFIG, "%s: min is larger than max", what);
			goto fail;
		}
		if (compile(what, p->san[k].pattern, &b->san_re[k], err) != 0)
			goto fail;
	}
	/* Fixed extensions, in the order they will appear. */
	if (build_eku(p, b, err) != 0 || build_policies(p, b, err) != 0 || build_urls(p, b, err) != 0 ||
	    build_name_constraints(p, b, err) != 0 || build_custom(p, b, err) != 0)
		goto fail;
	p->built = b;
	return 0;
fail:
	if (err->code == CA_OK)
		ca_err_set(err, CA_E_CONFIG, "profile '%s' cannot be prepared", p->name);
	built_free(b, p->n_subject);
	return -1;
}

int ca_credential_prepare(struct ca_credential *c, struct ca_err *err)
{
	struct ca_profile_built *b = calloc(1, sizeof(*b));
	char what[160];

	if (b == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	snprintf(what, sizeof(what), "credential '%s' cn", c->key);
	if (compile(what, c->cn_pattern, &b->cn_re, err) != 0)
		goto fail;
	snprintf(what, sizeof(what), "credential '%s' sans", c->key);
	if (compile(what, c->san_pattern, &b->san_re[0], err) != 0)
		goto fail;
	built_free(c->built, 0);
	c->built = b;
	return 0;
fail:
	built_free(b, 0);
	return -1;
}

void ca_credential_free(struct ca_credential *c)
{
	if (c == NULL)
		return;
	built_free(c->built, 0);
	free(c->cn_pattern);
	free(c->san_pattern);
	memset(c, 0, sizeof(*c));
}

void ca_requester_key(const struct ca_requester *who, char *buf, size_t len)
{
	switch (who->kind) {
	case CA_AUTH_BASIC: snprintf(buf, len, "basic:%s", who->id); break;
	case CA_AUTH_CLIENT_CERT: snprintf(buf, len, "cert:%s", who->anchor); break;
	case CA_AUTH_OPERATOR: snprintf(buf, len, "operator"); break;
	default: snprintf(buf, len, "anonymous"); break;
	}
}

int ca_requester_parse(const char *key, struct ca_requester *who)
{
	memset(who, 0, sizeof(*who));
	if (strncmp(key, "basic:", 6) == 0 && key[6] != '\0' && strlen(key + 6) < sizeof(who->id)) {
		who->kind = CA_AUTH_BASIC;
		snprintf(who->id, sizeof(who->id), "%s", key + 6);
	} else if (strncmp(key, "cert:", 5) == 0 && key[5] != '\0' && strlen(key + 5) < sizeof(who->anchor)) {
		who->kind = CA_AUTH_CLIENT_CERT;
		snprintf(who->anchor, sizeof(who->anchor), "%s", key + 5);
		snprintf(who->id, sizeof(who->id), "a certificate from %s", key + 5);
	} else if (strcmp(key, "operator") == 0) {
		who->kind = CA_AUTH_OPERATOR;
		snprintf(who->id, sizeof(who->id), "operator");
	} else {
		return -1;
	}
	return 0;
}
