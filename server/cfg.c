/* Config loading: a declarative table per JSON object (key, type, bounds,
 * default). Unknown keys and bad values are refused with the file, the line
 * where the key is written, the key path and the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "mintca/cfg.h"
#include "mintca/log.h"
#include "mintca/secret.h"

enum ftype { F_STR, F_UINT, F_OBJ_SKIP };

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
#define SUB(k) { k, F_OBJ_SKIP, false, 0, 0, 0, NULL, 0 }
#define END { NULL, F_STR, false, 0, 0, 0, NULL, 0 }

static const struct field server_fields[] = {
	STR("listen", false, "127.0.0.1", listen),
	NUM("port", 1, 65535, 8443, port),
	NUM("threads", 1, 256, 2, threads),
	NUM("max_connections", 1, 100000, 512, max_connections),
	NUM("connection_timeout_s", 1, 3600, 30, connection_timeout_s),
	NUM("max_body_bytes", 1024, 16 * 1024 * 1024, 65536, max_body_bytes),
	STR("public_name", false, "localhost", public_name),
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
static const struct field est_fields[] = { STR("default_profile", false, NULL, est_default_profile), END };
static const char *const top_keys[] = {
	"server", "tls", "database", "ca", "log", "est", "users", "client_cert_anchors", "profiles", NULL,
};

struct loader {
	const char *path;
	char *text; /* the file, to find the line a key is on */
	struct ca_err *err;
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

static int fail(struct loader *l, const char *path, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct loader *l, const char *path, const char *key, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ca_err_set(l->err, CA_E_CONFIG, "%s:%d: %s: %s", l->path, line_of(l, path, key), path, why);
	return -1;
}

static int check_keys(struct loader *l, json_t *obj, const char *path,
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
			return fail(l, p, k, "unknown key");
		}
	}
	return 0;
}

static int load_fields(struct loader *l, struct cfg *c, json_t *obj, const char *path,
		       const struct field *fields)
{
	if (obj != NULL && !json_is_object(obj))
		return fail(l, path, strrchr(path, '.') ? strrchr(path, '.') + 1 : path, "must be an object");
	if (obj != NULL && check_keys(l, obj, path, fields, NULL) != 0)
		return -1;
	for (const struct field *f = fields; f->key; f++) {
		json_t *v = obj ? json_object_get(obj, f->key) : NULL;
		char p[128];
		snprintf(p, sizeof(p), "%s.%s", path, f->key);
		if (f->type == F_OBJ_SKIP)
			continue;
		if (v == NULL && f->required)
			return fail(l, p, NULL, "required key is missing");
		if (f->type == F_STR) {
			const char *s = v ? json_string_value(v) : f->def_str;
			if (v != NULL && (s == NULL || s[0] == '\0'))
				return fail(l, p, f->key, "must be a non-empty string");
			if (s != NULL && (*(char **)((char *)c + f->off) = strdup(s)) == NULL)
				return fail(l, p, f->key, "out of memory");
		} else {
			json_int_t n = v ? json_integer_value(v) : (json_int_t)f->def_num;
			if (v != NULL && !json_is_integer(v))
				return fail(l, p, f->key, "must be an integer");
			if (n < (json_int_t)f->min || (unsigned long long)n > f->max)
				return fail(l, p, f->key, "must be between %llu and %llu", f->min, f->max);
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
		return fail(l, "ca.signer", "signer", "required object is missing");
	if (type != NULL && strcmp(type, "pkcs11") == 0) {
		c->signer = CFG_SIGNER_PKCS11;
		return load_fields(l, c, s, "ca.signer", p11_fields);
	}
	if (type != NULL && strcmp(type, "file") == 0) {
		c->signer = CFG_SIGNER_FILE;
		return load_fields(l, c, s, "ca.signer", file_fields);
	}
	return fail(l, "ca.signer.type", "type", "must be \"pkcs11\" or \"file\" (file: development only)");
}

/* A JSON array of non-empty strings into a malloc'd list. */
static int load_names(struct loader *l, json_t *arr, const char *path, const char *key,
		      char ***out, size_t *n)
{
	size_t i;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return fail(l, path, key, "must be an array of strings");
	if ((*out = calloc(json_array_size(arr) + 1, sizeof(char *))) == NULL)
		return fail(l, path, key, "out of memory");
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			return fail(l, path, key, "element %zu must be a non-empty string", i);
		if (((*out)[i] = strdup(json_string_value(v))) == NULL)
			return fail(l, path, key, "out of memory");
		(*n)++;
	}
	return 0;
}

static const char *const profile_keys[] = {
	"name", "key_types", "rsa_min_bits", "rsa_max_bits", "validity_days", "validity_seconds",
	"backdate_seconds", "extended_key_usage", "max_sans", "auth", NULL,
};
static const char *const auth_keys[] = { "basic_users", "client_cert_anchors", "reenroll", "operator", NULL };

static int get_int(struct loader *l, json_t *o, const char *path, const char *key,
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
		return fail(l, p, key, "must be an integer between %lld and %lld", lo, hi);
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(struct loader *l, json_t *o, const char *path, const char *key, bool *out)
{
	json_t *v = json_object_get(o, key);
	char p[128];

	snprintf(p, sizeof(p), "%s.%s", path, key);
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return fail(l, p, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

static int load_profile(struct loader *l, json_t *o, const char *path, struct ca_profile *p)
{
	json_t *v, *auth;
	const char *name = json_string_value(json_object_get(o, "name"));
	size_t i;
	long long n, days, secs;
	char sub[128];

	if (!json_is_object(o))
		return fail(l, path, "profiles", "must be an object");
	if (check_keys(l, o, path, NULL, profile_keys) != 0)
		return -1;
	if (name == NULL || name[0] == '\0' || strlen(name) >= CA_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(name))
		return fail(l, path, "name", "\"name\" must be 1-63 characters of a-z 0-9 - _ (it is an EST label)");
	strcpy(p->name, name);
	snprintf(sub, sizeof(sub), "%s.key_types", path);
	v = json_object_get(o, "key_types");
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(l, sub, "key_types", "must be a non-empty array of \"ec-p256\", \"ec-p384\", \"rsa\", \"ed25519\"");
	json_array_foreach(v, i, auth) {
		unsigned bit = json_is_string(auth) ? ca_key_type_from_name(json_string_value(auth)) : 0;
		if (bit == 0)
			return fail(l, sub, "key_types", "element %zu: unknown key type (ec-p256, ec-p384, rsa, ed25519)", i);
		p->key_types |= bit;
	}
	if (get_int(l, o, path, "rsa_min_bits", 2048, 4096, 2048, &n) != 0)
		return -1;
	p->rsa_min_bits = (unsigned)n;
	if (get_int(l, o, path, "rsa_max_bits", 2048, 4096, 4096, &n) != 0)
		return -1;
	p->rsa_max_bits = (unsigned)n;
	if (p->rsa_min_bits > p->rsa_max_bits)
		return fail(l, path, "rsa_min_bits", "rsa_min_bits is larger than rsa_max_bits");
	if (get_int(l, o, path, "validity_days", 0, 36500, 0, &days) != 0 ||
	    get_int(l, o, path, "validity_seconds", 0, 36500LL * 86400, 0, &secs) != 0)
		return -1;
	if ((days == 0) == (secs == 0))
		return fail(l, path, "validity_days", "give exactly one of validity_days and validity_seconds");
	p->validity_seconds = days ? days * 86400 : secs;
	if (get_int(l, o, path, "backdate_seconds", 0, 86400, 60, &p->backdate_seconds) != 0 ||
	    get_int(l, o, path, "max_sans", 0, 100, 4, &n) != 0)
		return -1;
	p->max_sans = (unsigned)n;
	snprintf(sub, sizeof(sub), "%s.extended_key_usage", path);
	v = json_object_get(o, "extended_key_usage");
	if (v != NULL && !json_is_array(v))
		return fail(l, sub, "extended_key_usage", "must be an array of \"clientAuth\", \"serverAuth\"");
	json_array_foreach(v, i, auth) {
		unsigned bit = json_is_string(auth) ? ca_eku_from_name(json_string_value(auth)) : 0;
		if (bit == 0)
			return fail(l, sub, "extended_key_usage", "element %zu: unknown usage (clientAuth, serverAuth)", i);
		p->eku |= bit;
	}
	snprintf(sub, sizeof(sub), "%s.auth", path);
	auth = json_object_get(o, "auth");
	if (auth != NULL && (!json_is_object(auth) || check_keys(l, auth, sub, NULL, auth_keys) != 0))
		return auth && !json_is_object(auth) ? fail(l, sub, "auth", "must be an object") : -1;
	if (load_names(l, json_object_get(auth, "basic_users"), sub, "basic_users",
		       &p->basic_users, &p->n_basic_users) != 0 ||
	    load_names(l, json_object_get(auth, "client_cert_anchors"), sub, "client_cert_anchors",
		       &p->cert_anchors, &p->n_cert_anchors) != 0 ||
	    get_bool(l, auth, sub, "reenroll", &p->allow_reenroll) != 0 ||
	    get_bool(l, auth, sub, "operator", &p->operator_allowed) != 0)
		return -1;
	return 0;
}

static int load_arrays(struct loader *l, struct cfg *c, json_t *root)
{
	json_t *users = json_object_get(root, "users"), *anchors = json_object_get(root, "client_cert_anchors");
	json_t *profiles = json_object_get(root, "profiles"), *v;
	size_t i;
	char path[64];

	if ((users && !json_is_array(users)) || (anchors && !json_is_array(anchors)))
		return fail(l, users && !json_is_array(users) ? "users" : "client_cert_anchors", NULL, "must be an array");
	c->users = calloc(json_array_size(users) + 1, sizeof(*c->users));
	c->anchors = calloc(json_array_size(anchors) + 1, sizeof(*c->anchors));
	if (c->users == NULL || c->anchors == NULL)
		return fail(l, "users", NULL, "out of memory");
	json_array_foreach(users, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *hash = json_string_value(json_object_get(v, "password_hash"));
		static const char *const keys[] = { "name", "password_hash", NULL };
		snprintf(path, sizeof(path), "users[%zu]", i);
		if (!json_is_object(v) || check_keys(l, v, path, NULL, keys) != 0)
			return json_is_object(v) ? -1 : fail(l, path, "users", "must be an object");
		if (name == NULL || name[0] == '\0' || strchr(name, ':') != NULL)
			return fail(l, path, "name", "\"name\" must be a non-empty string without ':'");
		if (hash == NULL || sec_hash_valid(hash) != 0)
			return fail(l, path, "password_hash", "\"password_hash\" must come from `mintctl passwd` (pbkdf2-sha256$...)");
		if (cfg_user_find(c, name) != NULL)
			return fail(l, path, name, "user '%s' defined twice", name);
		c->users[c->n_users].name = strdup(name);
		c->users[c->n_users++].password_hash = strdup(hash);
	}
	json_array_foreach(anchors, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *file = json_string_value(json_object_get(v, "ca_file"));
		static const char *const keys[] = { "name", "ca_file", NULL };
		snprintf(path, sizeof(path), "client_cert_anchors[%zu]", i);
		if (!json_is_object(v) || check_keys(l, v, path, NULL, keys) != 0)
			return json_is_object(v) ? -1 : fail(l, path, "client_cert_anchors", "must be an object");
		if (name == NULL || name[0] == '\0' || strlen(name) >= CA_NAME_MAX || file == NULL || file[0] == '\0')
			return fail(l, path, "name", "needs \"name\" (1-63 characters) and \"ca_file\"");
		if (strcmp(name, c->ca_name) == 0)
			return fail(l, path, "name", "'%s' is the name of this server's own CA", name);
		c->anchors[c->n_anchors].name = strdup(name);
		c->anchors[c->n_anchors++].ca_file = strdup(file);
	}
	if (!json_is_array(profiles) || json_array_size(profiles) == 0)
		return fail(l, "profiles", "profiles", "at least one profile is required");
	if ((c->profiles = calloc(json_array_size(profiles), sizeof(*c->profiles))) == NULL)
		return fail(l, "profiles", NULL, "out of memory");
	json_array_foreach(profiles, i, v) {
		snprintf(path, sizeof(path), "profiles[%zu]", i);
		c->n_profiles++;
		if (load_profile(l, v, path, &c->profiles[i]) != 0)
			return -1;
	}
	return 0;
}

static bool anchor_known(const struct cfg *c, const char *name)
{
	if (strcmp(name, c->ca_name) == 0)
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

	if (log_set_level_name(c->log_level) != 0)
		return fail(l, "log.level", "level", "must be debug, info, warn or error");
	for (size_t i = 0; i < c->n_profiles; i++) {
		const struct ca_profile *p = &c->profiles[i];
		snprintf(path, sizeof(path), "profiles[%zu]", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->profiles[j].name, p->name) == 0)
				return fail(l, path, "name", "profile '%s' defined twice", p->name);
		snprintf(path, sizeof(path), "profiles[%zu].auth", i);
		for (size_t j = 0; j < p->n_basic_users; j++)
			if (cfg_user_find(c, p->basic_users[j]) == NULL)
				return fail(l, path, p->basic_users[j], "user '%s' is not in \"users\"", p->basic_users[j]);
		for (size_t j = 0; j < p->n_cert_anchors; j++)
			if (!anchor_known(c, p->cert_anchors[j]))
				return fail(l, path, p->cert_anchors[j],
					    "anchor '%s' is neither in \"client_cert_anchors\" nor this CA's name", p->cert_anchors[j]);
		found |= c->est_default_profile && strcmp(p->name, c->est_default_profile) == 0;
	}
	if (!found)
		return fail(l, "est.default_profile", "default_profile", "no profile named '%s'", c->est_default_profile);
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
	struct loader l = { .path = path, .err = err };
	json_error_t jerr;
	json_t *root = NULL, *ca;
	static const struct { const char *key; const struct field *fields; } sections[] = {
		{ "server", server_fields }, { "tls", tls_fields }, { "database", db_fields },
		{ "ca", ca_fields }, { "log", log_fields }, { "est", est_fields },
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
		fail(&l, "(top)", NULL, "the file must hold one JSON object");
		goto fail;
	}
	if (check_keys(&l, root, "(top)", NULL, top_keys) != 0)
		goto fail;
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		json_t *o = json_object_get(root, sections[i].key);
		if (load_fields(&l, c, o, sections[i].key, sections[i].fields) != 0)
			goto fail;
	}
	ca = json_object_get(root, "ca");
	if (load_signer(&l, c, ca) != 0 || load_arrays(&l, c, root) != 0 || cross_check(&l, c) != 0)
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
		&c->file_issuing_key, &c->log_level, &c->est_default_profile,
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
	for (size_t i = 0; i < c->n_profiles; i++)
		ca_profile_free_lists(&c->profiles[i]);
	free(c->profiles);
	free(c);
}
