/* Secrets (passwords, PINs, challenges) have their own type so that they
 * are never handed to the logger or printf by accident; freed memory is wiped. */
#ifndef MINTCA_SECRET_H
#define MINTCA_SECRET_H

#include <stddef.h>

typedef struct sec_str {
	char *buf; /* NUL-terminated; use only where the secret is consumed */
	size_t len;
} sec_str;

/* Copy len bytes into a new secret. Returns 0, or -1 on allocation failure. */
int sec_set(sec_str *s, const char *v, size_t len) __attribute__((warn_unused_result));
/* Read a secret from a file (trailing newline removed, at most 1 KiB).
 * Returns 0 or -1 (errno set). */
int sec_read_file(sec_str *s, const char *path) __attribute__((warn_unused_result));
/* Wipe and free; safe on an empty secret. */
void sec_clear(sec_str *s);

/* Password hashes: "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>",
 * iterations 1000..10000000.
 * sec_hash_password: caller frees the result with free(). NULL on failure. */
char *sec_hash_password(const char *password, unsigned iterations);
/* 1 if password matches hash (constant-time compare), 0 if not, -1 if the
 * hash string is malformed. */
int sec_check_password(const char *hash, const char *password, size_t pwlen);
/* Like sec_check_password, for a request path: PBKDF2 is slow on purpose
 * (tens of ms), so a match is remembered for SEC_VERIFIED_TTL_S seconds as
 * an HMAC under a key drawn at process start (never the password itself),
 * keyed by user, hash string and password; a later request with the same
 * three costs one HMAC. A changed hash (reload) or password misses. Only
 * matches are remembered: a wrong password always pays the full PBKDF2. */
#define SEC_VERIFIED_TTL_S 300
/* For a user that does not exist: spend what checking a password costs
 * (PBKDF2 with the default iterations), so the answer's timing does not
 * tell which user names exist. */
void sec_check_password_unknown_user(const char *password, size_t pwlen);
int sec_check_password_cached(const char *user, const char *hash, const char *password, size_t pwlen);
/* 0 if the hash string has the right form, -1 if not. */
int sec_hash_valid(const char *hash);

#endif
