/* Revocation: the one path for the CLI and the operator API. Serials are
 * normalized and every one is checked before anything is written; then one
 * transaction per chunk (db_revoke), so a batch killed half-way and run
 * again with resume finishes the rest and counts nothing twice. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mintca/ca.h"

#define DEFAULT_CHUNK 1000
#define MAX_CHUNK 100000

static const char *const reason_names[11] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
	"cessationOfOperation", "certificateHold", NULL, NULL /* removeFromCRL: delta CRLs only */,
	"privilegeWithdrawn", "aACompromise",
};

int ca_reason_from_name(const char *name)
{
	char *end;
	long n;

	if (name == NULL || *name == '\0')
		return -1;
	for (int i = 0; i < 11; i++)
		if (reason_names[i] != NULL && strcasecmp(name, reason_names[i]) == 0)
			return i;
	n = strtol(name, &end, 10);
	if (*end != '\0' || n < 0 || n > 10 || reason_names[n] == NULL)
		return -1;
	return (int)n;
}

const char *ca_reason_name(int code)
{
	if (code == 8)
		return "removeFromCRL";
	return code >= 0 && code <= 10 && reason_names[code] != NULL ? reason_names[code] : "unknown";
}

int ca_serial_normalize(const char *in, char out[41])
{
	char hex[64];
	size_t n = 0, skip = 0;
	int pad;

	if (in == NULL)
		return -1;
	if (strncasecmp(in, "serial=", 7) == 0)
		in += 7;
	if (in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
		in += 2;
	pad = 0;
	for (const char *p = in; *p != '\0'; p++)
		pad ^= *p != ':' && *p != ' ';
	if (pad)
		hex[n++] = '0'; /* whole octets */
	for (; *in != '\0'; in++) {
		if (*in == ':' || *in == ' ')
			continue;
		if (!isxdigit((unsigned char)*in) || n + 3 >= sizeof(hex))
			return -1;
		hex[n++] = (char)tolower((unsigned char)*in);
	}
	hex[n] = '\0';
	if (n == 0 || strspn(hex, "0") == n)
		return -1; /* empty or zero: RFC 5280 serials are positive */
	while (n - skip > 2 && hex[skip] == '0' && hex[skip + 1] == '0')
		skip += 2;
	/* DER INTEGER octets: a leading top bit needs a 00 octet in front. */
	if (hex[skip] >= '8') {
		if (n - skip + 2 > 40)
			return -1;
		out[0] = out[1] = '0';
		memcpy(out + 2, hex + skip, n - skip + 1);
		return 0;
	}
	if (n - skip > 40)
		return -1;
	memcpy(out, hex + skip, n - skip + 1);
	return 0;
}

/* Normalized copies of the serials; NULL with err naming the first bad one. */
static char **normalize_all(const struct ca_revoke_req *req, struct ca_err *err)
{
	char **v = calloc(req->n + 1, sizeof(*v));

	if (v == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory for %zu serials", req->n);
		return NULL;
	}
	for (size_t i = 0; i < req->n; i++) {
		char s[41];
		if (ca_serial_normalize(req->serials[i], s) != 0) {
			ca_err_set(err, CA_E_BAD_REQUEST, "serial %zu ('%.60s') is not a serial number "
				   "(hex, at most 20 octets, positive)", i + 1, req->serials[i]);
			goto fail;
		}
		if ((v[i] = strdup(s)) == NULL) {
			ca_err_set(err, CA_E_INTERNAL, "out of memory for %zu serials", req->n);
			goto fail;
		}
	}
	return v;
fail:
	for (size_t i = 0; i < req->n; i++)
		free(v[i]);
	free(v);
	return NULL;
}

int ca_revoke(db_store *st, const struct ca_revoke_req *req, struct ca_revoke_res *res,
	      struct ca_err *err)
{
	size_t chunk = req->chunk ? req->chunk : DEFAULT_CHUNK;
	enum db_revoke_mode mode = req->resume ? DB_REVOKE_RESUME : DB_REVOKE_STRICT;
	char **serials = NULL;
	int rc = -1, r;

	memset(res, 0, sizeof(*res));
	if (st == NULL || req->n == 0) {
		ca_err_set(err, CA_E_BAD_REQUEST, "no serial to revoke");
		return -1;
	}
	if (chunk > MAX_CHUNK)
		chunk = MAX_CHUNK;
	if ((serials = normalize_all(req, err)) == NULL)
		return -1;
	if (req->release) {
		if (req->n != 1) {
			ca_err_set(err, CA_E_BAD_REQUEST, "a hold is released one serial at a time");
			goto out;
		}
		if ((r = db_release_hold(st, serials[0], req->actor, req->protocol, err)) != 0)
			goto out;
		res->revoked = 1;
		res->chunks = 1;
		rc = 0;
		goto out;
	}
	if (req->reason < 0 || req->reason > 10 || req->reason == 7 || req->reason == 8) {
		ca_err_set(err, CA_E_BAD_REQUEST, "RFC 5280 §5.3.1: reason %d cannot be given "
			   "(0-6, 9 or 10; removeFromCRL is a release)", req->reason);
		goto out;
	}
	/* 1. Check everything first: a bad serial anywhere changes nothing. */
	for (size_t i = 0; i < req->n; i += chunk) {
		size_t k = req->n - i < chunk ? req->n - i : chunk;
		struct db_revoke_counts c;
		r = db_revoke(st, (const char *const *)serials + i, k, req->reason, req->invalidity_date,
			      req->actor, req->protocol,
			      req->resume ? DB_REVOKE_CHECK_RESUME : DB_REVOKE_CHECK_STRICT, &c, err);
		if (r != 0)
			goto out;
	}
	/* 2. Revoke, one transaction per chunk. */
	for (size_t i = 0; i < req->n; i += chunk) {
		size_t k = req->n - i < chunk ? req->n - i : chunk;
		struct db_revoke_counts c;
		r = db_revoke(st, (const char *const *)serials + i, k, req->reason, req->invalidity_date,
			      req->actor, req->protocol, mode, &c, err);
		if (r != 0)
			goto out;
		res->revoked += c.revoked;
		res->already += c.already;
		res->chunks++;
		if (req->progress != NULL)
			req->progress(req->progress_arg, i + k, req->n, res->revoked, res->already);
	}
	rc = 0;
out:
	for (size_t i = 0; i < req->n; i++)
		free(serials[i]);
	free(serials);
	return rc;
}
