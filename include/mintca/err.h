/* Protocol-neutral errors: every module reports failure as a struct ca_err.
 * Each protocol maps the code to its own form in one table (EST: HTTP status). */
#ifndef MINTCA_ERR_H
#define MINTCA_ERR_H

#include <stddef.h>

/* X(code, short text). The short text is safe to show to a client. */
#define CA_ERR_LIST(X)                                                        \
	X(CA_OK, "ok")                                                        \
	X(CA_E_BAD_REQUEST, "malformed request")                              \
	X(CA_E_BAD_CSR, "malformed certificate request")                      \
	X(CA_E_BAD_SIGNATURE, "certificate request signature does not verify") \
	X(CA_E_KEY_REFUSED, "key type or size not allowed by the profile")    \
	X(CA_E_NAME_REFUSED, "requested names not allowed")                   \
	X(CA_E_UNKNOWN_PROFILE, "unknown profile")                            \
	X(CA_E_UNAUTHENTICATED, "authentication required")                    \
	X(CA_E_FORBIDDEN, "requester not allowed to use this profile")        \
	X(CA_E_NOT_FOUND, "not found")                                        \
	X(CA_E_CONFLICT, "conflicts with the current state")                  \
	X(CA_E_RATE_LIMITED, "rate limit reached")                            \
	X(CA_E_STORE, "certificate store unavailable")                        \
	X(CA_E_SIGNER, "signer unavailable")                                  \
	X(CA_E_CONFIG, "invalid configuration")                               \
	X(CA_E_INTERNAL, "internal error")

#define CA_ERR_ENUM(c, s) c,
enum ca_code { CA_ERR_LIST(CA_ERR_ENUM) CA_CODE_COUNT };
#undef CA_ERR_ENUM

struct ca_err {
	enum ca_code code;
	char detail[256]; /* human-readable reason; never holds a secret */
	unsigned retry_after; /* CA_E_RATE_LIMITED: seconds until a retry can work */
};

/* Short text of a code; never NULL. */
const char *ca_code_str(enum ca_code code);

/* Set code and detail (printf-style, truncated to fit). Safe with err == NULL.
 * Does not overwrite an error already set unless err->code == CA_OK. */
void ca_err_set(struct ca_err *err, enum ca_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like ca_err_set, then appends the first OpenSSL error of the queue
 * (if any) to the detail and clears the queue. */
void ca_err_ssl(struct ca_err *err, enum ca_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void ca_err_clear(struct ca_err *err);

#endif
