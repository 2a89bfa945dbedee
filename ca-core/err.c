/* struct ca_err helpers and the one table of error texts. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include "mintca/err.h"

#define CA_ERR_TEXT(c, s) [c] = s,
static const char *const code_text[CA_CODE_COUNT] = { CA_ERR_LIST(CA_ERR_TEXT) };
#undef CA_ERR_TEXT

const char *ca_code_str(enum ca_code code)
{
	if ((unsigned)code >= CA_CODE_COUNT)
		return "unknown error";
	return code_text[code];
}

void ca_err_clear(struct ca_err *err)
{
	if (err == NULL)
		return;
	err->code = CA_OK;
	err->detail[0] = '\0';
	err->retry_after = 0;
}

static void err_vset(struct ca_err *err, enum ca_code code, const char *fmt, va_list ap)
{
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	err->code = code;
}

void ca_err_set(struct ca_err *err, enum ca_code code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->code != CA_OK)
		return;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
}

void ca_err_ssl(struct ca_err *err, enum ca_code code, const char *fmt, ...)
{
	va_list ap;
	unsigned long e = ERR_peek_error();
	char ssl[160];

	if (err == NULL || err->code != CA_OK) {
		ERR_clear_error();
		return;
	}
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	if (e != 0) {
		size_t n = strlen(err->detail);
		ERR_error_string_n(e, ssl, sizeof(ssl));
		snprintf(err->detail + n, sizeof(err->detail) - n, " (%s)", ssl);
	}
	ERR_clear_error();
}
