/* Private to the config loader (server/cfg*.c). */
#ifndef MINTCA_CFG_INT_H
#define MINTCA_CFG_INT_H

#include <stdbool.h>
#include <jansson.h>
#include "mintca/cfg.h"

struct loader {
	const char *path;
	char *text; /* the file, to find the line a key is on */
	struct ca_err *err;
	const struct cfg *cfg; /* what is loaded so far (sections before arrays) */
};

/* Refuse: "<file>:<line>: <path>: <why>" into l->err; returns -1. The line is
 * that of path (then hint) in the file. */
int cfg_fail(struct loader *l, const char *path, const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Every key of obj must be a field's key or in names. 0 or -1. */
struct field;
int cfg_check_keys(struct loader *l, json_t *obj, const char *path, const struct field *fields,
		   const char *const *names);
/* A JSON array of non-empty strings into a malloc'd list (NULL array: empty). */
int cfg_load_names(struct loader *l, json_t *arr, const char *path, const char *key,
		   char ***out, size_t *n);
int cfg_get_int(struct loader *l, json_t *o, const char *path, const char *key,
		long long lo, long long hi, long long def, long long *out);
/* "90m", "14d", "20y" (365 days), "3600s", "12h": seconds, or -1. */
long long cfg_parse_duration(const char *s);
int cfg_get_bool(struct loader *l, json_t *o, const char *path, const char *key, bool *out);

/* One element of "profiles": fills p and prepares it (ca_profile_prepare). */
int cfg_load_profile(struct loader *l, json_t *o, const char *path, struct ca_profile *p);
/* "allowed_names" and "rate_limit" of a user or anchor into a credential. */
int cfg_load_binding(struct loader *l, json_t *o, const char *path, struct ca_credential *c);

#endif
