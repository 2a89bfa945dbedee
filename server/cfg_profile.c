/* Config: one profile ("profiles"[i]) and the name bindings and rate limits of
 * a credential ("users"[i], "client_cert_anchors"[i]). Extensions and patterns
 * are checked by ca_profile_prepare() here, at load, not at first use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include "cfg_int.h"

static const char *const profile_keys[] = {
	"name", "key_types", "rsa_min_bits", "rsa_max_bits", "validity", "validity_days",
	"validity_seconds", "backdate_seconds", "extended_key_usage", "key_usage", "max_sans", "auth",
	"subject", "sans", "basic_constraints", "subject_key_id", "serial_bytes",
	"certificate_policies", "crl_urls", "ocsp_urls", "ca_issuers_urls", "name_constraints",
	"custom_extensions", "rate_limit", "ca", "revocation_urls", NULL,
};
static const char *const auth_keys[] = { "basic_users", "client_cert_anchors", "reenroll", "operator", NULL };
static const char *const san_kind_keys[CA_SAN_KINDS + 1] = { "dns", "ip", "uri", "email", "hardware_serial", NULL };

#define MAX_VALIDITY (30LL * 366 * 86400)

long long cfg_parse_duration(const char *s)
{
	char *end;
	long long n = strtoll(s, &end, 10);

	if (end == s || n <= 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 's': return n;
	case 'm': return n * 60;
	case 'h': return n * 3600;
	case 'd': return n * 86400;
	case 'y': return n * 365 * 86400;
	default: return -1;
	}
}

static int load_validity(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	json_t *v = json_object_get(o, "validity");
	long long days, secs, d = -1;
	char sub[160];
	int given;

	if (cfg_get_int(l, o, path, "validity_days", 0, 30 * 366, 0, &days) != 0 ||
	    cfg_get_int(l, o, path, "validity_seconds", 0, MAX_VALIDITY, 0, &secs) != 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s.validity", path);
	if (v != NULL && (!json_is_string(v) || (d = cfg_parse_duration(json_string_value(v))) < 0))
		return cfg_fail(l, sub, "validity", "must be a duration such as \"90m\", \"14d\", \"20y\"");
	given = (days > 0) + (secs > 0) + (v != NULL);
	if (given != 1)
		return cfg_fail(l, path, days > 0 ? "validity_days" : v ? "validity" : "validity_seconds",
				"give exactly one of validity, validity_days, validity_seconds");
	p->validity_seconds = v ? d : days ? days * 86400 : secs;
	if (p->validity_seconds < 60 || p->validity_seconds > MAX_VALIDITY)
		return cfg_fail(l, sub, "validity", "must be between one minute and 30 years");
	return 0;
}

static int load_eku(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	json_t *v = json_object_get(o, "extended_key_usage"), *e;
	char sub[160], dotted[128];
	size_t i;

	snprintf(sub, sizeof(sub), "%s.extended_key_usage", path);
	if (v != NULL && !json_is_array(v))
		return cfg_fail(l, sub, "extended_key_usage", "must be an array of usage names or dotted OIDs");
	if ((p->eku_oids = calloc(json_array_size(v) + 1, sizeof(char *))) == NULL)
		return cfg_fail(l, sub, NULL, "out of memory");
	json_array_foreach(v, i, e) {
		const char *name = json_string_value(e);
		unsigned bit = name ? ca_eku_from_name(name) : 0;
		ASN1_OBJECT *obj;
		if (bit != 0) {
			p->eku |= bit;
			continue;
		}
		/* codeSigning, emailProtection, timeStamping, OCSPSigning or a dotted OID */
		if (name == NULL || (obj = OBJ_txt2obj(name, 0)) == NULL)
			return cfg_fail(l, sub, "extended_key_usage", "element %zu: not a usage name or dotted OID", i);
		OBJ_obj2txt(dotted, sizeof(dotted), obj, 1);
		ASN1_OBJECT_free(obj);
		if ((p->eku_oids[p->n_eku_oids++] = strdup(dotted)) == NULL)
			return cfg_fail(l, sub, NULL, "out of memory");
	}
	v = json_object_get(o, "key_usage");
	snprintf(sub, sizeof(sub), "%s.key_usage", path);
	if (v != NULL && (!json_is_array(v) || json_array_size(v) == 0))
		return cfg_fail(l, sub, "key_usage", "must be a non-empty array of RFC 5280 key usage names");
	json_array_foreach(v, i, e) {
		int bit = json_is_string(e) ? ca_key_usage_bit(json_string_value(e)) : -1;
		if (bit < 0)
			return cfg_fail(l, sub, "key_usage", "element %zu: not an RFC 5280 key usage (digitalSignature, keyEncipherment, ...)", i);
		p->key_usage |= 1u << bit;
	}
	return 0;
}

static int load_subject(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	static const char *const keys[] = { "rules", "others", NULL };
	static const char *const rule_keys[] = { "type", "rule", "value", "pattern", NULL };
	static const char *const rules[] = { "keep", "require", "override", "drop", "refuse" };
	json_t *s = json_object_get(o, "subject"), *r, *e;
	const char *others;
	char sub[160];
	size_t i;

	snprintf(sub, sizeof(sub), "%s.subject", path);
	p->subject_other = CA_SUBJ_KEEP;
	if (s == NULL)
		return 0;
	if (!json_is_object(s))
		return cfg_fail(l, sub, "subject", "must be an object with \"rules\" and \"others\"");
	if (cfg_check_keys(l, s, sub, NULL, keys) != 0)
		return -1;
	others = json_string_value(json_object_get(s, "others"));
	p->subject_other = CA_SUBJ_DROP;
	if (others != NULL && strcmp(others, "keep") == 0)
		p->subject_other = CA_SUBJ_KEEP;
	else if (others != NULL && strcmp(others, "refuse") == 0)
		p->subject_other = CA_SUBJ_REFUSE;
	else if (json_object_get(s, "others") != NULL && (others == NULL || strcmp(others, "drop") != 0))
		return cfg_fail(l, sub, "others", "\"others\" must be \"keep\", \"drop\" or \"refuse\"");
	r = json_object_get(s, "rules");
	if (r != NULL && !json_is_array(r))
		return cfg_fail(l, sub, "rules", "\"rules\" must be an array");
	if ((p->subject = calloc(json_array_size(r) + 1, sizeof(*p->subject))) == NULL)
		return cfg_fail(l, sub, NULL, "out of memory");
	json_array_foreach(r, i, e) {
		struct ca_subject_attr *a = &p->subject[i];
		const char *type = json_string_value(json_object_get(e, "type"));
		const char *rule = json_string_value(json_object_get(e, "rule"));
		const char *value = json_string_value(json_object_get(e, "value"));
		const char *pattern = json_string_value(json_object_get(e, "pattern"));
		char rp[192];
		size_t k;
		snprintf(rp, sizeof(rp), "%s.rules[%zu]", sub, i);
		p->n_subject++;
		if (!json_is_object(e) || cfg_check_keys(l, e, rp, NULL, rule_keys) != 0)
			return json_is_object(e) ? -1 : cfg_fail(l, rp, NULL, "must be an object");
		if (type == NULL || strlen(type) >= sizeof(a->type) || OBJ_txt2nid(type) == NID_undef)
			return cfg_fail(l, rp, "type", "\"type\" must be an attribute name such as CN, O, OU, serialNumber");
		snprintf(a->type, sizeof(a->type), "%s", type);
		for (k = 0; rule && k < sizeof(rules) / sizeof(rules[0]) && strcmp(rule, rules[k]) != 0; k++)
			;
		if (rule == NULL || k == sizeof(rules) / sizeof(rules[0]))
			return cfg_fail(l, rp, "rule", "\"rule\" must be keep, require, override, drop or refuse");
		a->rule = (enum ca_subject_rule)k;
		if ((a->rule == CA_SUBJ_OVERRIDE) != (value != NULL))
			return cfg_fail(l, rp, "value", "\"value\" is given with, and only with, rule override");
		if ((value && (a->value = strdup(value)) == NULL) || (pattern && (a->pattern = strdup(pattern)) == NULL))
			return cfg_fail(l, rp, NULL, "out of memory");
	}
	return 0;
}

static int load_sans(struct loader *l, json_t *o, const char *path, struct ca_profile *p, bool max_given)
{
	static const char *const keys[] = { "min", "max", "pattern", NULL };
	json_t *s = json_object_get(o, "sans");
	char sub[160], kp[192];
	long long n;
	unsigned total = 0;

	snprintf(sub, sizeof(sub), "%s.sans", path);
	if (s == NULL)
		return 0;
	if (!json_is_object(s) || cfg_check_keys(l, s, sub, NULL, san_kind_keys) != 0)
		return json_is_object(s) ? -1 : cfg_fail(l, sub, "sans", "must be an object of dns, ip, uri, email, hardware_serial");
	p->san_rules = true;
	for (int k = 0; k < CA_SAN_KINDS; k++) {
		json_t *r = json_object_get(s, san_kind_keys[k]);
		const char *pattern;
		snprintf(kp, sizeof(kp), "%s.%s", sub, san_kind_keys[k]);
		if (r == NULL)
			continue;
		if (!json_is_object(r) || cfg_check_keys(l, r, kp, NULL, keys) != 0)
			return json_is_object(r) ? -1 : cfg_fail(l, kp, NULL, "must be an object with min, max, pattern");
		if (cfg_get_int(l, r, kp, "max", 0, 100, 1, &n) != 0)
			return -1;
		p->san[k].max = (unsigned)n;
		if (cfg_get_int(l, r, kp, "min", 0, 100, 0, &n) != 0)
			return -1;
		p->san[k].min = (unsigned)n;
		total += p->san[k].max;
		pattern = json_string_value(json_object_get(r, "pattern"));
		if (json_object_get(r, "pattern") != NULL && pattern == NULL)
			return cfg_fail(l, kp, "pattern", "\"pattern\" must be a string (POSIX extended regex)");
		if (pattern && (p->san[k].pattern = strdup(pattern)) == NULL)
			return cfg_fail(l, kp, NULL, "out of memory");
	}
	if (!max_given)
		p->max_sans = total;
	return 0;
}

static int load_urls(struct loader *l, json_t *o, const char *path, const char *key, char ***out, size_t *n)
{
	char sub[160];

	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (cfg_load_names(l, json_object_get(o, key), sub, key, out, n) != 0)
		return -1;
	for (size_t i = 0; i < *n; i++)
		if (strncmp((*out)[i], "http://", 7) != 0 && strncmp((*out)[i], "https://", 8) != 0 &&
		    strncmp((*out)[i], "ldap://", 7) != 0)
			return cfg_fail(l, sub, key, "element %zu: must be an http://, https:// or ldap:// URL", i);
	return 0;
}

/* A malloc'd one-element URL list: base + a + b + c. */
static int one_url(char ***out, size_t *n, const char *base, const char *a, const char *b, const char *c)
{
	size_t len = strlen(base) + strlen(a) + strlen(b) + strlen(c) + 1;

	if ((*out = calloc(2, sizeof(char *))) == NULL || ((*out)[0] = malloc(len)) == NULL)
		return -1;
	snprintf((*out)[0], len, "%s%s%s%s", base, a, b, c);
	*n = 1;
	return 0;
}

/* "revocation_urls": true puts this server's CRL (the shard's, when CRLs
 * are partitioned), OCSP and CA certificate URLs, under
 * server.public_base_url, into the profile's certificates; URLs the profile
 * lists itself stay as given. */
static int load_revocation_urls(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	const struct cfg *c = l->cfg;
	bool on = false;
	const char *ca;
	char base[256];
	int rc = 0;

	if (cfg_get_bool(l, o, path, "revocation_urls", &on) != 0)
		return -1;
	if (!on)
		return 0;
	if (c == NULL || c->public_base_url == NULL)
		return cfg_fail(l, path, "revocation_urls", "needs server.public_base_url");
	ca = p->ca[0] != '\0' ? p->ca : c->ca_name;
	snprintf(base, sizeof(base), "%s", c->public_base_url);
	if (base[0] != '\0' && base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';
	if (p->n_crl_urls == 0 && c->crl_shards > 0) {
		size_t len = strlen(base) + strlen(ca) + 8;
		if ((p->crl_shard_url = malloc(len)) != NULL)
			snprintf(p->crl_shard_url, len, "%s/crl/%s-", base, ca);
		p->crl_shards = c->crl_shards;
		rc |= p->crl_shard_url == NULL;
	} else if (p->n_crl_urls == 0) {
		rc |= one_url(&p->crl_urls, &p->n_crl_urls, base, "/crl/", ca, ".crl");
	}
	if (p->n_ocsp_urls == 0)
		rc |= one_url(&p->ocsp_urls, &p->n_ocsp_urls, base, "/ocsp", "", "");
	if (p->n_ca_issuers_urls == 0)
		rc |= one_url(&p->ca_issuers_urls, &p->n_ca_issuers_urls, base, "/ca/", ca, ".crt");
	return rc == 0 ? 0 : cfg_fail(l, path, "revocation_urls", "out of memory");
}

static int load_extensions(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	static const char *const nc_keys[] = { "permitted_dns", "excluded_dns", NULL };
	static const char *const custom_keys[] = { "oid", "critical", "der_hex", NULL };
	json_t *nc = json_object_get(o, "name_constraints"), *cu = json_object_get(o, "custom_extensions"), *e;
	bool bc = true, skid = true;
	long long n;
	char sub[160], cp[192];
	size_t i;

	if (cfg_get_bool(l, o, path, "basic_constraints", &bc) != 0 ||
	    cfg_get_bool(l, o, path, "subject_key_id", &skid) != 0 ||
	    cfg_get_int(l, o, path, "serial_bytes", 9, 20, 16, &n) != 0)
		return -1;
	p->no_basic_constraints = !bc;
	p->no_subject_key_id = !skid;
	p->serial_bytes = (unsigned)n;
	snprintf(sub, sizeof(sub), "%s.certificate_policies", path);
	if (cfg_load_names(l, json_object_get(o, "certificate_policies"), sub, "certificate_policies",
			   &p->policies, &p->n_policies) != 0 ||
	    load_urls(l, o, path, "crl_urls", &p->crl_urls, &p->n_crl_urls) != 0 ||
	    load_urls(l, o, path, "ocsp_urls", &p->ocsp_urls, &p->n_ocsp_urls) != 0 ||
	    load_urls(l, o, path, "ca_issuers_urls", &p->ca_issuers_urls, &p->n_ca_issuers_urls) != 0 ||
	    load_revocation_urls(l, o, path, p) != 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s.name_constraints", path);
	if (nc != NULL && (!json_is_object(nc) || cfg_check_keys(l, nc, sub, NULL, nc_keys) != 0))
		return json_is_object(nc) ? -1 : cfg_fail(l, sub, "name_constraints", "must be an object");
	if (cfg_load_names(l, json_object_get(nc, "permitted_dns"), sub, "permitted_dns",
			   &p->nc_permitted_dns, &p->n_nc_permitted_dns) != 0 ||
	    cfg_load_names(l, json_object_get(nc, "excluded_dns"), sub, "excluded_dns",
			   &p->nc_excluded_dns, &p->n_nc_excluded_dns) != 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s.custom_extensions", path);
	if (cu != NULL && !json_is_array(cu))
		return cfg_fail(l, sub, "custom_extensions", "must be an array of {oid, critical, der_hex}");
	if ((p->custom = calloc(json_array_size(cu) + 1, sizeof(*p->custom))) == NULL)
		return cfg_fail(l, sub, NULL, "out of memory");
	json_array_foreach(cu, i, e) {
		struct ca_custom_ext *c = &p->custom[i];
		const char *oid = json_string_value(json_object_get(e, "oid"));
		const char *hex = json_string_value(json_object_get(e, "der_hex"));
		long len = 0;
		snprintf(cp, sizeof(cp), "%s[%zu]", sub, i);
		p->n_custom++;
		if (!json_is_object(e) || cfg_check_keys(l, e, cp, NULL, custom_keys) != 0)
			return json_is_object(e) ? -1 : cfg_fail(l, cp, NULL, "must be an object");
		if (oid == NULL || hex == NULL)
			return cfg_fail(l, cp, "oid", "needs \"oid\" (dotted) and \"der_hex\" (the DER value in hex)");
		if (cfg_get_bool(l, e, cp, "critical", &c->critical) != 0)
			return -1;
		if ((c->oid = strdup(oid)) == NULL)
			return cfg_fail(l, cp, NULL, "out of memory");
		if (hex[0] == '\0' || (c->der = OPENSSL_hexstr2buf(hex, &len)) == NULL || len <= 0)
			return cfg_fail(l, cp, "der_hex", "\"der_hex\" is not hex (pairs of 0-9a-f, optionally with ':')");
		c->der_len = (size_t)len;
	}
	return 0;
}

static int load_rate(struct loader *l, json_t *o, const char *path, unsigned *count, unsigned *window)
{
	static const char *const keys[] = { "count", "window_seconds", NULL };
	json_t *r = json_object_get(o, "rate_limit");
	char sub[160];
	long long c, w;

	snprintf(sub, sizeof(sub), "%s.rate_limit", path);
	if (r == NULL)
		return 0;
	if (!json_is_object(r) || cfg_check_keys(l, r, sub, NULL, keys) != 0)
		return json_is_object(r) ? -1 : cfg_fail(l, sub, "rate_limit", "must be an object with count and window_seconds");
	if (cfg_get_int(l, r, sub, "count", 0, 100000000, 0, &c) != 0 ||
	    cfg_get_int(l, r, sub, "window_seconds", 1, 31 * 86400, 3600, &w) != 0)
		return -1;
	*count = (unsigned)c;
	*window = (unsigned)w;
	/* count 0 is "none allowed": keep it distinguishable from "no limit". */
	if (c == 0)
		return cfg_fail(l, sub, "count", "count must be at least 1 (remove the credential from the profile to refuse it)");
	return 0;
}

int cfg_load_binding(struct loader *l, json_t *o, const char *path, struct ca_credential *c)
{
	static const char *const keys[] = { "cn", "san", NULL };
	json_t *a = json_object_get(o, "allowed_names");
	const char *cn = json_string_value(json_object_get(a, "cn"));
	const char *san = json_string_value(json_object_get(a, "san"));
	char sub[160];
	struct ca_err e = { 0 };

	snprintf(sub, sizeof(sub), "%s.allowed_names", path);
	if (a != NULL && (!json_is_object(a) || cfg_check_keys(l, a, sub, NULL, keys) != 0))
		return json_is_object(a) ? -1 : cfg_fail(l, sub, "allowed_names", "must be an object with cn and san patterns");
	if ((json_object_get(a, "cn") && cn == NULL) || (json_object_get(a, "san") && san == NULL))
		return cfg_fail(l, sub, "allowed_names", "cn and san must be strings (POSIX extended regex)");
	if ((cn && (c->cn_pattern = strdup(cn)) == NULL) || (san && (c->san_pattern = strdup(san)) == NULL))
		return cfg_fail(l, sub, NULL, "out of memory");
	if (load_rate(l, o, path, &c->rate_count, &c->rate_window_s) != 0)
		return -1;
	if (ca_credential_prepare(c, &e) != 0)
		return cfg_fail(l, sub, NULL, "%s", e.detail);
	return 0;
}

int cfg_load_profile(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	json_t *v, *auth;
	const char *name = json_string_value(json_object_get(o, "name"));
	size_t i;
	long long n;
	char sub[128];
	struct ca_err e = { 0 };

	if (!json_is_object(o))
		return cfg_fail(l, path, "profiles", "must be an object");
	if (cfg_check_keys(l, o, path, NULL, profile_keys) != 0)
		return -1;
	if (name == NULL || name[0] == '\0' || strlen(name) >= CA_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(name))
		return cfg_fail(l, path, "name", "\"name\" must be 1-63 characters of a-z 0-9 - _ (it is an EST label)");
	snprintf(p->name, sizeof(p->name), "%s", name);
	v = json_object_get(o, "ca");
	if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= CA_NAME_MAX))
		return cfg_fail(l, path, "ca", "\"ca\" must name an issuing CA");
	if (v != NULL)
		snprintf(p->ca, sizeof(p->ca), "%s", json_string_value(v));
	snprintf(sub, sizeof(sub), "%s.key_types", path);
	v = json_object_get(o, "key_types");
	if (!json_is_array(v) || json_array_size(v) == 0)
		return cfg_fail(l, sub, "key_types", "must be a non-empty array of \"ec-p256\", \"ec-p384\", \"rsa\", \"ed25519\"");
	json_array_foreach(v, i, auth) {
		unsigned bit = json_is_string(auth) ? ca_key_type_from_name(json_string_value(auth)) : 0;
		if (bit == 0)
			return cfg_fail(l, sub, "key_types", "element %zu: unknown key type (ec-p256, ec-p384, rsa, ed25519)", i);
		p->key_types |= bit;
	}
	if (cfg_get_int(l, o, path, "rsa_min_bits", 2048, 4096, 2048, &n) != 0)
		return -1;
	p->rsa_min_bits = (unsigned)n;
	if (cfg_get_int(l, o, path, "rsa_max_bits", 2048, 4096, 4096, &n) != 0)
		return -1;
	p->rsa_max_bits = (unsigned)n;
	if (p->rsa_min_bits > p->rsa_max_bits)
		return cfg_fail(l, path, "rsa_min_bits", "rsa_min_bits is larger than rsa_max_bits");
	if (load_validity(l, o, path, p) != 0 ||
	    cfg_get_int(l, o, path, "backdate_seconds", 0, 86400, 60, &p->backdate_seconds) != 0 ||
	    cfg_get_int(l, o, path, "max_sans", 0, 100, 4, &n) != 0)
		return -1;
	p->max_sans = (unsigned)n;
	if (load_eku(l, o, path, p) != 0 || load_subject(l, o, path, p) != 0 ||
	    load_sans(l, o, path, p, json_object_get(o, "max_sans") != NULL) != 0 ||
	    load_extensions(l, o, path, p) != 0 || load_rate(l, o, path, &p->rate_count, &p->rate_window_s) != 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s.auth", path);
	auth = json_object_get(o, "auth");
	if (auth != NULL && (!json_is_object(auth) || cfg_check_keys(l, auth, sub, NULL, auth_keys) != 0))
		return auth && !json_is_object(auth) ? cfg_fail(l, sub, "auth", "must be an object") : -1;
	if (cfg_load_names(l, json_object_get(auth, "basic_users"), sub, "basic_users",
			   &p->basic_users, &p->n_basic_users) != 0 ||
	    cfg_load_names(l, json_object_get(auth, "client_cert_anchors"), sub, "client_cert_anchors",
			   &p->cert_anchors, &p->n_cert_anchors) != 0 ||
	    cfg_get_bool(l, auth, sub, "reenroll", &p->allow_reenroll) != 0 ||
	    cfg_get_bool(l, auth, sub, "operator", &p->operator_allowed) != 0)
		return -1;
	if (ca_profile_prepare(p, &e) != 0)
		return cfg_fail(l, path, "name", "%s", e.detail);
	return 0;
}
