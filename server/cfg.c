/* Config loading: a declarative table per JSON object (key, type, bounds,
 * default). Unknown keys and bad values are refused with the file, the line
 * where the key is written, the key path and the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "mintca/cfg.h"
#include "mintca/log.h"
#include "mintca/secret.h"
#include "cfg_int.h"

enum ftype { F_STR, F_UINT, F_DUR, F_OBJ_SKIP };

struct field {
	const char *key;
	enum ftype type;
	bool required;
	unsigned long long min, max, def_num;
	const char *def_str;
	size_t off; /* into struct cfg */
};

#define STR(k, req, def, member) { k, F_STR, req, 0, 0, 0, def, offsetof(struct cfg, member) }
#define NUM(k, lo, hi, def, member) { k, F_UINT, false, lo, hi, def, NULL, offsetof(struct cfg, member) }
/* A duration string ("90m", "14d") into unsigned seconds; def_num is the default. */
#define DUR(k, lo, hi, def, member) { k, F_DUR, false, lo, hi, def, NULL, offsetof(struct cfg, member) }
#define SUB(k) { k, F_OBJ_SKIP, false, 0, 0, 0, NULL, 0 }
#define END { NULL, F_STR, false, 0, 0, 0, NULL, 0 }

static const struct field server_fields[] = {
	STR("listen", false, "127.0.0.1", listen),
	NUM("port", 1, 65535, 8443, port),
	NUM("threads", 0, 256, 0, threads),
	NUM("workers", 1, 1024, 16, workers),
	NUM("max_connections", 1, 100000, 512, max_connections),
	NUM("max_connections_per_ip", 0, 100000, 0, max_connections_per_ip),
	NUM("connection_timeout_s", 1, 3600, 30, connection_timeout_s),
	NUM("max_body_bytes", 1024, 16 * 1024 * 1024, 65536, max_body_bytes),
	STR("public_name", false, "localhost", public_name),
	NUM("http_port", 0, 65535, 0, http_port),
	STR("public_base_url", false, NULL, public_base_url),
	END,
};
static const struct field tls_fields[] = {
	STR("cert_file", true, NULL, tls_cert_file),
	STR("key_file", true, NULL, tls_key_file),
	END,
};
static const struct field db_fields[] = { STR("dsn", true, NULL, db_dsn), END };
static const struct field ca_fields[] = {
	STR("name", true, NULL, ca_name),
	STR("root_subject", true, NULL, root_subject),
	STR("issuing_subject", true, NULL, issuing_subject),
	NUM("root_validity_days", 1, 36500, 7300, root_validity_days),
	NUM("issuing_validity_days", 1, 36500, 3650, issuing_validity_days),
	SUB("signer"),
	END,
};
static const struct field p11_fields[] = {
	SUB("type"),
	STR("module", true, NULL, p11_module),
	STR("token_label", true, NULL, p11_token_label),
	STR("pin_file", true, NULL, p11_pin_file),
	STR("root_key_label", true, NULL, p11_root_key_label),
	STR("issuing_key_label", true, NULL, p11_issuing_key_label),
	END,
};
static const struct field file_fields[] = {
	SUB("type"),
	STR("root_key_file", true, NULL, file_root_key),
	STR("issuing_key_file", true, NULL, file_issuing_key),
	END,
};
static const struct field log_fields[] = { STR("level", false, "info", log_level), END };
static const struct field revocation_fields[] = {
	DUR("crl_period", 60, 31 * 86400, 3600, crl_period_s),
	DUR("crl_next_update", 120, 366 * 86400, 86400, crl_next_update_s),
	DUR("crl_retention", 1, 100LL * 365 * 86400, 90 * 86400, crl_retention_s),
	NUM("crl_shards", 0, 65536, 0, crl_shards),
	DUR("delta_crl_period", 60, 31 * 86400, 0, delta_crl_period_s),
	DUR("ocsp_validity", 60, 31 * 86400, 3600, ocsp_validity_s),
	DUR("ocsp_responder_validity", 3600, 366 * 86400, 7 * 86400, ocsp_responder_validity_s),
	END,
};
static const struct field est_fields[] = { STR("default_profile", false, NULL, est_default_profile), END };
static const char *const top_keys[] = {
	"server", "tls", "database", "ca", "issuing_cas", "log", "est", "users", "client_cert_anchors",
	"profiles", "revocation", "operators", NULL,
};


/* Find the n-th (0-based) `"tok"` at or after from; NULL if absent. */
static const char *find_token(const char *from, const char *tok, size_t toklen, int n)
{
	char pat[96];
	const char *hit = from;

	if (toklen > sizeof(pat) - 3)
		return NULL;
	snprintf(pat, sizeof(pat), "\"%.*s\"", (int)toklen, tok);
	for (int i = 0; hit != NULL; i++) {
		if ((hit = strstr(hit, pat)) == NULL || i == n)
			return hit;
		hit += strlen(pat);
	}
	return NULL;
}

/* The line a key path ("profiles[1].auth") and then hint are written on, found
 * by following the path's keys through the text: Jansson keeps no positions.
 * An element [i] is found as the (i+1)-th occurrence of the key that follows.
 * Stops at the last part found, so a missing key points at its parent. */
static int line_of(const struct loader *l, const char *path, const char *hint)
{
	const char *pos = l->text, *p = path, *hit;
	int skip = 0, line = 1;

	if (pos == NULL)
		return 0;
	while (*p != '\0') {
		size_t n = strcspn(p, ".[");
		if (n > 0 && strncmp(p, "(top)", n) != 0) {
			if ((hit = find_token(pos, p, n, skip)) == NULL)
				goto count;
			pos = hit;
			skip = 0;
		}
		p += n;
		if (*p == '[') {
			skip = atoi(p + 1);
			p += strcspn(p, "]");
			if (*p == ']')
				p++;
		}
		if (*p == '.')
			p++;
	}
	if (hint != NULL && (hit = find_token(pos, hint, strlen(hint), skip)) != NULL)
		pos = hit;
count:
	for (const char *c = l->text; c < pos; c++)
		line += *c == '\n';
	return line;
}

int cfg_fail(struct loader *l, const char *path, const char *key, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ca_err_set(l->err, CA_E_CONFIG, "%s:%d: %s: %s", l->path, line_of(l, path, key), path, why);
	return -1;
}

int cfg_check_keys(struct loader *l, json_t *obj, const char *path,
		      const struct field *fields, const char *const *names)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		bool known = false;
		for (const struct field *f = fields; f && f->key; f++)
			known |= strcmp(f->key, k) == 0;
		for (const char *const *n = names; n && *n; n++)
			known |= strcmp(*n, k) == 0;
		if (!known) {
			char p[128];
			snprintf(p, sizeof(p), "%s.%s", path, k);
			return cfg_fail(l, p, k, "unknown key");
		}
	}
	return 0;
}

static int load_fields(struct loader *l, struct cfg *c, json_t *obj, const char *path,
		       const struct field *fields)
{
	if (obj != NULL && !json_is_object(obj))
		return cfg_fail(l, path, strrchr(path, '.') ? strrchr(path, '.') + 1 : path, "must be an object");
	if (obj != NULL && cfg_check_keys(l, obj, path, fields, NULL) != 0)
		return -1;
	for (const struct field *f = fields; f->key; f++) {
		json_t *v = obj ? json_object_get(obj, f->key) : NULL;
		char p[128];
		snprintf(p, sizeof(p), "%s.%s", path, f->key);
		if (f->type == F_OBJ_SKIP)
			continue;
		if (v == NULL && f->required)
			return cfg_fail(l, p, NULL, "required key is missing");
		if (f->type == F_DUR) {
			long long d = (long long)f->def_num;
			if (v != NULL && (!json_is_string(v) || (d = cfg_parse_duration(json_string_value(v))) < 0))
				return cfg_fail(l, p, f->key, "must be a duration such as \"90m\", \"1h\", \"14d\"");
			if (v != NULL && (d < (long long)f->min || (unsigned long long)d > f->max))
				return cfg_fail(l, p, f->key, "must be between %llus and %llus", f->min, f->max);
			*(unsigned *)((char *)c + f->off) = (unsigned)d;
		} else if (f->type == F_STR) {
			const char *s = v ? json_string_value(v) : f->def_str;
			if (v != NULL && (s == NULL || s[0] == '\0'))
				return cfg_fail(l, p, f->key, "must be a non-empty string");
			if (s != NULL && (*(char **)((char *)c + f->off) = strdup(s)) == NULL)
				return cfg_fail(l, p, f->key, "out of memory");
		} else {
			json_int_t n = v ? json_integer_value(v) : (json_int_t)f->def_num;
			if (v != NULL && !json_is_integer(v))
				return cfg_fail(l, p, f->key, "must be an integer");
			if (n < (json_int_t)f->min || (unsigned long long)n > f->max)
				return cfg_fail(l, p, f->key, "must be between %llu and %llu", f->min, f->max);
			if (f->off == offsetof(struct cfg, max_body_bytes))
				c->max_body_bytes = (size_t)n;
			else
				*(unsigned *)((char *)c + f->off) = (unsigned)n;
		}
	}
	return 0;
}

static int load_signer(struct loader *l, struct cfg *c, json_t *ca)
{
	json_t *s = json_object_get(ca, "signer");
	const char *type = json_string_value(json_object_get(s, "type"));

	if (!json_is_object(s))
		return cfg_fail(l, "ca.signer", "signer", "required object is missing");
	if (type != NULL && strcmp(type, "pkcs11") == 0) {
		c->signer = CFG_SIGNER_PKCS11;
		return load_fields(l, c, s, "ca.signer", p11_fields);
	}
	if (type != NULL && strcmp(type, "file") == 0) {
		c->signer = CFG_SIGNER_FILE;
		return load_fields(l, c, s, "ca.signer", file_fields);
	}
	return cfg_fail(l, "ca.signer.type", "type", "must be \"pkcs11\" or \"file\" (file: development only)");
}

int cfg_load_names(struct loader *l, json_t *arr, const char *path, const char *key,
		      char ***out, size_t *n)
{
	size_t i;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return cfg_fail(l, path, key, "must be an array of strings");
	if ((*out = calloc(json_array_size(arr) + 1, sizeof(char *))) == NULL)
		return cfg_fail(l, path, key, "out of memory");
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			return cfg_fail(l, path, key, "element %zu must be a non-empty string", i);
		if (((*out)[i] = strdup(json_string_value(v))) == NULL)
			return cfg_fail(l, path, key, "out of memory");
		(*n)++;
	}
	return 0;
}

int cfg_get_int(struct loader *l, json_t *o, const char *path, const char *key,
		   long long lo, long long hi, long long def, long long *out)
{
	json_t *v = json_object_get(o, key);
	char p[128];

	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return cfg_fail(l, p, key, "must be an integer between %lld and %lld", lo, hi);
	*out = json_integer_value(v);
	return 0;
}

int cfg_get_bool(struct loader *l, json_t *o, const char *path, const char *key, bool *out)
{
	json_t *v = json_object_get(o, key);
	char p[128];

	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return cfg_fail(l, p, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

/* "operators": who may use the operator API (/api/), by the client-certificate
 * anchors that verify their certificates. None: the API answers nobody. */
static int load_operators(struct loader *l, struct cfg *c, json_t *o)
{
	static const char *const keys[] = { "client_cert_anchors", NULL };

	if (o == NULL)
		return 0;
	if (!json_is_object(o))
		return cfg_fail(l, "operators", "operators", "must be an object");
	if (cfg_check_keys(l, o, "operators", NULL, keys) != 0)
		return -1;
	return cfg_load_names(l, json_object_get(o, "client_cert_anchors"), "operators.client_cert_anchors",
			      "client_cert_anchors", &c->operator_anchors, &c->n_operator_anchors);
}

/* A user's or anchor's allowed_names / rate_limit, when it has any. */
static int add_binding(struct loader *l, struct cfg *c, json_t *o, const char *path,
		       const char *kind, const char *name)
{
	struct ca_credential *cr = &c->creds[c->n_creds];

	if (json_object_get(o, "allowed_names") == NULL && json_object_get(o, "rate_limit") == NULL)
		return 0;
	snprintf(cr->key, sizeof(cr->key), "%s:%s", kind, name);
	c->n_creds++;
	return cfg_load_binding(l, o, path, cr);
}

static int load_arrays(struct loader *l, struct cfg *c, json_t *root)
{
	json_t *users = json_object_get(root, "users"), *anchors = json_object_get(root, "client_cert_anchors");
	json_t *profiles = json_object_get(root, "profiles"), *v;
	size_t i;
	char path[64];

	if ((users && !json_is_array(users)) || (anchors && !json_is_array(anchors)))
		return cfg_fail(l, users && !json_is_array(users) ? "users" : "client_cert_anchors", NULL, "must be an array");
	c->users = calloc(json_array_size(users) + 1, sizeof(*c->users));
	c->anchors = calloc(json_array_size(anchors) + 1, sizeof(*c->anchors));
	c->creds = calloc(json_array_size(users) + json_array_size(anchors) + 1, sizeof(*c->creds));
	if (c->users == NULL || c->anchors == NULL || c->creds == NULL)
		return cfg_fail(l, "users", NULL, "out of memory");
	json_array_foreach(users, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *hash = json_string_value(json_object_get(v, "password_hash"));
		static const char *const keys[] = { "name", "password_hash", "allowed_names", "rate_limit", NULL };
		snprintf(path, sizeof(path), "users[%zu]", i);
		if (!json_is_object(v) || cfg_check_keys(l, v, path, NULL, keys) != 0)
			return json_is_object(v) ? -1 : cfg_fail(l, path, "users", "must be an object");
		if (name == NULL || name[0] == '\0' || strchr(name, ':') != NULL)
			return cfg_fail(l, path, "name", "\"name\" must be a non-empty string without ':'");
		if (hash == NULL || sec_hash_valid(hash) != 0)
			return cfg_fail(l, path, "password_hash", "\"password_hash\" must come from `mintctl passwd` (pbkdf2-sha256$...)");
		if (cfg_user_find(c, name) != NULL)
			return cfg_fail(l, path, name, "user '%s' defined twice", name);
		c->users[c->n_users].name = strdup(name);
		c->users[c->n_users++].password_hash = strdup(hash);
		if (add_binding(l, c, v, path, "basic", name) != 0)
			return -1;
	}
	json_array_foreach(anchors, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *file = json_string_value(json_object_get(v, "ca_file"));
		static const char *const keys[] = { "name", "ca_file", "allowed_names", "rate_limit", NULL };
		snprintf(path, sizeof(path), "client_cert_anchors[%zu]", i);
		if (!json_is_object(v) || cfg_check_keys(l, v, path, NULL, keys) != 0)
			return json_is_object(v) ? -1 : cfg_fail(l, path, "client_cert_anchors", "must be an object");
		if (name == NULL || name[0] == '\0' || strlen(name) >= CA_NAME_MAX || file == NULL || file[0] == '\0')
			return cfg_fail(l, path, "name", "needs \"name\" (1-63 characters) and \"ca_file\"");
		if (strcmp(name, c->ca_name) == 0)
			return cfg_fail(l, path, "name", "'%s' is the name of this server's own CA", name);
		c->anchors[c->n_anchors].name = strdup(name);
		c->anchors[c->n_anchors++].ca_file = strdup(file);
		if (add_binding(l, c, v, path, "cert", name) != 0)
			return -1;
	}
	if (!json_is_array(profiles) || json_array_size(profiles) == 0)
		return cfg_fail(l, "profiles", "profiles", "at least one profile is required");
	if ((c->profiles = calloc(json_array_size(profiles), sizeof(*c->profiles))) == NULL)
		return cfg_fail(l, "profiles", NULL, "out of memory");
	json_array_foreach(profiles, i, v) {
		snprintf(path, sizeof(path), "profiles[%zu]", i);
		c->n_profiles++;
		if (cfg_load_profile(l, v, path, &c->profiles[i]) != 0)
			return -1;
	}
	return 0;
}

static bool ca_known(const struct cfg *c, const char *name)
{
	if (strcmp(name, c->ca_name) == 0)
		return true;
	for (size_t i = 0; i < c->n_issuing_cas; i++)
		if (strcmp(c->issuing_cas[i].name, name) == 0)
			return true;
	return false;
}

/* "issuing_cas": further CAs this server issues from. */
static int load_issuing_cas(struct loader *l, struct cfg *c, json_t *arr)
{
	static const char *const keys[] = { "name", "signer", "replaces", NULL };
	static const char *const p11_keys[] = { "type", "module", "token_label", "pin_file", "key_label", NULL };
	static const char *const file_keys[] = { "type", "key_file", NULL };
	char path[64], sp[96];
	size_t i;
	json_t *v;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return cfg_fail(l, "issuing_cas", "issuing_cas", "must be an array");
	if ((c->issuing_cas = calloc(json_array_size(arr) + 1, sizeof(*c->issuing_cas))) == NULL)
		return cfg_fail(l, "issuing_cas", NULL, "out of memory");
	json_array_foreach(arr, i, v) {
		struct cfg_ca *ca = &c->issuing_cas[i];
		json_t *sg = json_object_get(v, "signer");
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *type = json_string_value(json_object_get(sg, "type"));
		struct { const char *key; char **dst; } p11[] = {
			{ "module", &ca->module }, { "token_label", &ca->token_label },
			{ "pin_file", &ca->pin_file }, { "key_label", &ca->key_label },
		};
		snprintf(path, sizeof(path), "issuing_cas[%zu]", i);
		snprintf(sp, sizeof(sp), "%s.signer", path);
		if (!json_is_object(v) || cfg_check_keys(l, v, path, NULL, keys) != 0)
			return json_is_object(v) ? -1 : cfg_fail(l, path, NULL, "must be an object");
		if (name == NULL || name[0] == '\0' || strlen(name) >= CA_NAME_MAX ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(name))
			return cfg_fail(l, path, "name", "\"name\" must be 1-63 characters of a-z 0-9 - _ (it is an EST label)");
		/* checked against the CAs before this one, then counted */
		if (ca_known(c, name))
			return cfg_fail(l, path, "name", "CA '%s' defined twice", name);
		if ((ca->name = strdup(name)) == NULL)
			return cfg_fail(l, path, NULL, "out of memory");
		c->n_issuing_cas++;
		if (cfg_load_names(l, json_object_get(v, "replaces"), path, "replaces", &ca->replaces,
				   &ca->n_replaces) != 0)
			return -1;
		if (!json_is_object(sg) || type == NULL)
			return cfg_fail(l, sp, "signer", "needs \"type\": \"pkcs11\" or \"file\"");
		if (strcmp(type, "pkcs11") == 0) {
			ca->signer = CFG_SIGNER_PKCS11;
			if (cfg_check_keys(l, sg, sp, NULL, p11_keys) != 0)
				return -1;
			for (size_t k = 0; k < sizeof(p11) / sizeof(p11[0]); k++) {
				const char *val = json_string_value(json_object_get(sg, p11[k].key));
				if (val == NULL || val[0] == '\0')
					return cfg_fail(l, sp, p11[k].key, "\"%s\" is required", p11[k].key);
				if ((*p11[k].dst = strdup(val)) == NULL)
					return cfg_fail(l, sp, NULL, "out of memory");
			}
		} else if (strcmp(type, "file") == 0) {
			const char *kf = json_string_value(json_object_get(sg, "key_file"));
			ca->signer = CFG_SIGNER_FILE;
			if (cfg_check_keys(l, sg, sp, NULL, file_keys) != 0)
				return -1;
			if (kf == NULL || kf[0] == '\0' || (ca->key_file = strdup(kf)) == NULL)
				return cfg_fail(l, sp, "key_file", "\"key_file\" is required");
		} else {
			return cfg_fail(l, sp, "type", "must be \"pkcs11\" or \"file\" (file: development only)");
		}
	}
	return 0;
}

static bool anchor_known(const struct cfg *c, const char *name)
{
	if (ca_known(c, name))
		return true;
	for (size_t i = 0; i < c->n_anchors; i++)
		if (strcmp(c->anchors[i].name, name) == 0)
			return true;
	return false;
}

/* Checks across sections: every name a profile uses must be defined. */
static int cross_check(struct loader *l, struct cfg *c)
{
	char path[96];
	bool found = c->est_default_profile == NULL;
	enum log_level lvl;

	if (log_level_from_name(c->log_level, &lvl) != 0)
		return cfg_fail(l, "log.level", "level", "must be debug, info, warn or error");
	for (size_t i = 0; i < c->n_profiles; i++) {
		const struct ca_profile *p = &c->profiles[i];
		snprintf(path, sizeof(path), "profiles[%zu]", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->profiles[j].name, p->name) == 0)
				return cfg_fail(l, path, "name", "profile '%s' defined twice", p->name);
		snprintf(path, sizeof(path), "profiles[%zu].auth", i);
		for (size_t j = 0; j < p->n_basic_users; j++)
			if (cfg_user_find(c, p->basic_users[j]) == NULL)
				return cfg_fail(l, path, p->basic_users[j], "user '%s' is not in \"users\"", p->basic_users[j]);
		for (size_t j = 0; j < p->n_cert_anchors; j++)
			if (!anchor_known(c, p->cert_anchors[j]))
				return cfg_fail(l, path, p->cert_anchors[j],
					    "anchor '%s' is neither in \"client_cert_anchors\" nor this CA's name", p->cert_anchors[j]);
		found |= c->est_default_profile && strcmp(p->name, c->est_default_profile) == 0;
		snprintf(path, sizeof(path), "profiles[%zu]", i);
		if (p->ca[0] != '\0' && !ca_known(c, p->ca))
			return cfg_fail(l, path, "ca", "CA '%s' is neither ca.name nor in \"issuing_cas\"", p->ca);
		for (size_t j = 0; j < c->n_issuing_cas; j++)
			if (strcmp(c->issuing_cas[j].name, p->name) == 0)
				return cfg_fail(l, path, "name", "profile '%s' has the name of a CA: EST labels must be unique", p->name);
	}
	if (!found)
		return cfg_fail(l, "est.default_profile", "default_profile", "no profile named '%s'", c->est_default_profile);
	for (size_t j = 0; j < c->n_operator_anchors; j++)
		if (!anchor_known(c, c->operator_anchors[j]))
			return cfg_fail(l, "operators.client_cert_anchors", c->operator_anchors[j],
				    "anchor '%s' is not in \"client_cert_anchors\"", c->operator_anchors[j]);
	if (c->public_base_url != NULL && strncmp(c->public_base_url, "http://", 7) != 0 &&
	    strncmp(c->public_base_url, "https://", 8) != 0)
		return cfg_fail(l, "server.public_base_url", "public_base_url", "must start with http:// or https://");
	if (c->crl_next_update_s <= c->crl_period_s)
		return cfg_fail(l, "revocation.crl_next_update", "crl_next_update",
				"must be longer than crl_period, so a CRL never expires before the next one");
	if (c->threads == 0) {
		/* One HTTP thread per two CPUs: they share the listening socket
		 * and all wake for each new connection, and the pool threads
		 * need the other half (EST load on 2 CPUs: 1 thread 59-63% of
		 * nginx, 2 threads 47-52%, 4 threads 43%). */
		long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
		c->threads = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
	}
	if (c->http_port != 0 && c->http_port == c->port)
		return cfg_fail(l, "server.http_port", "http_port", "must differ from server.port");
	return 0;
}

static char *slurp(const char *path, size_t max)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	if ((buf = malloc(max + 1)) != NULL) {
		n = fread(buf, 1, max + 1, f);
		if (n > max) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

struct cfg *cfg_load(const char *path, struct ca_err *err)
{
	struct cfg *c = calloc(1, sizeof(*c));
	struct loader l = { .path = path, .err = err, .cfg = c };
	json_error_t jerr;
	json_t *root = NULL, *ca;
	static const struct { const char *key; const struct field *fields; } sections[] = {
		{ "server", server_fields }, { "tls", tls_fields }, { "database", db_fields },
		{ "ca", ca_fields }, { "log", log_fields }, { "est", est_fields },
		{ "revocation", revocation_fields },
	};

	if (c == NULL || (c->path = strdup(path)) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto fail;
	}
	if ((l.text = slurp(path, 1024 * 1024)) == NULL) {
		ca_err_set(err, CA_E_CONFIG, "%s: cannot read (missing, unreadable or over 1 MiB)", path);
		goto fail;
	}
	if ((root = json_loads(l.text, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		ca_err_set(err, CA_E_CONFIG, "%s:%d: %s", path, jerr.line, jerr.text);
		goto fail;
	}
	if (!json_is_object(root)) {
		cfg_fail(&l, "(top)", NULL, "the file must hold one JSON object");
		goto fail;
	}
	if (cfg_check_keys(&l, root, "(top)", NULL, top_keys) != 0)
		goto fail;
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		json_t *o = json_object_get(root, sections[i].key);
		if (load_fields(&l, c, o, sections[i].key, sections[i].fields) != 0)
			goto fail;
	}
	ca = json_object_get(root, "ca");
	if (load_signer(&l, c, ca) != 0 || load_issuing_cas(&l, c, json_object_get(root, "issuing_cas")) != 0 ||
	    load_arrays(&l, c, root) != 0 || load_operators(&l, c, json_object_get(root, "operators")) != 0 ||
	    cross_check(&l, c) != 0)
		goto fail;
	json_decref(root);
	free(l.text);
	return c;
fail:
	json_decref(root);
	free(l.text);
	cfg_free(c);
	return NULL;
}

const struct cfg_user *cfg_user_find(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->n_users; i++)
		if (strcmp(c->users[i].name, name) == 0)
			return &c->users[i];
	return NULL;
}

void cfg_free(struct cfg *c)
{
	if (c == NULL)
		return;
	char **strs[] = {
		&c->path, &c->listen, &c->public_name, &c->tls_cert_file, &c->tls_key_file, &c->db_dsn,
		&c->ca_name, &c->root_subject, &c->issuing_subject, &c->p11_module, &c->p11_token_label,
		&c->p11_pin_file, &c->p11_root_key_label, &c->p11_issuing_key_label, &c->file_root_key,
		&c->file_issuing_key, &c->log_level, &c->est_default_profile, &c->public_base_url,
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	for (size_t i = 0; i < c->n_users; i++) {
		free(c->users[i].name);
		free(c->users[i].password_hash);
	}
	free(c->users);
	for (size_t i = 0; i < c->n_anchors; i++) {
		free(c->anchors[i].name);
		free(c->anchors[i].ca_file);
	}
	free(c->anchors);
	for (size_t i = 0; i < c->n_issuing_cas; i++) {
		struct cfg_ca *ca = &c->issuing_cas[i];
		char *f[] = { ca->name, ca->module, ca->token_label, ca->pin_file, ca->key_label, ca->key_file };
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			free(f[k]);
		for (size_t k = 0; k < ca->n_replaces; k++)
			free(ca->replaces[k]);
		free(ca->replaces);
	}
	free(c->issuing_cas);
	for (size_t i = 0; i < c->n_profiles; i++)
		ca_profile_free_lists(&c->profiles[i]);
	free(c->profiles);
	for (size_t i = 0; i < c->n_creds; i++)
		ca_credential_free(&c->creds[i]);
	free(c->creds);
	for (size_t i = 0; i < c->n_operator_anchors; i++)
		free(c->operator_anchors[i]);
	free(c->operator_anchors);
	free(c);
}
