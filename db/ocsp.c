/* OCSP reads: the status of a serial, the delegated responder rows, and the
 * LISTEN session on which revocations are announced. Only the responder row
 * is ever written here; certificates and revocations are read only. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

#define PAYLOAD_MAX 64

static const struct db_stmt st_status = {
	DB_S_OCSP_STATUS, "ocsp_status",
	"SELECT c.ca, c.status, floor(extract(epoch FROM r.revoked_at))::bigint, r.reason "
	"FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial "
	"WHERE c.serial = $1",
	1
};

static const struct db_stmt st_responder_get = {
	DB_S_OCSP_RESPONDER_GET, "ocsp_responder_get",
	"SELECT key_label, cert_der, floor(extract(epoch FROM not_after))::bigint::text "
	"FROM ocsp_responders WHERE ca = $1",
	1
};

static const struct db_stmt st_responder_put = {
	DB_S_OCSP_RESPONDER_PUT, "ocsp_responder_put",
	"INSERT INTO ocsp_responders (ca, key_label, cert_der, not_after, updated_at) "
	"VALUES ($1, $2, $3, to_timestamp($4::bigint), now()) "
	"ON CONFLICT (ca) DO UPDATE SET key_label = EXCLUDED.key_label, "
	"cert_der = EXCLUDED.cert_der, not_after = EXCLUDED.not_after, updated_at = now()",
	4
};

int db_ocsp_status(db_store *st, const char *serial_hex, struct db_cert_status *out,
		   struct ca_err *err)
{
	const char *vals[1] = { serial_hex };
	struct db_conn *c;
	PGresult *res = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (serial_hex == NULL || strlen(serial_hex) > 40) {
		ca_err_set(err, CA_E_INTERNAL, "ocsp_status: no serial");
		goto out;
	}
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	/* A read: safe to run again after a reconnect. */
	if ((res = db_exec(c, &st_status, vals, NULL, NULL, 0, 1, err)) == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = 1;
		goto out;
	}
	snprintf(out->ca, sizeof(out->ca), "%s", PQgetvalue(res, 0, 0));
	out->issued = strcmp(PQgetvalue(res, 0, 1), "issued") == 0;
	if (!PQgetisnull(res, 0, 2)) {
		out->revoked = 1;
		out->revoked_at = (time_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		out->reason = PQgetisnull(res, 0, 3) ? 0 : atoi(PQgetvalue(res, 0, 3));
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int db_ocsp_responder_get(db_store *st, const char *ca, char *key_label, size_t label_len,
			  unsigned char **der, size_t *len, time_t *not_after, struct ca_err *err)
{
	const char *vals[1] = { ca };
	struct db_conn *c;
	PGresult *res = NULL;
	char when[32];
	int rc = -1, n;

	*der = NULL;
	*len = 0;
	*not_after = 0;
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	/* binary result: the bytea as its bytes, text as its bytes */
	if ((res = db_exec(c, &st_responder_get, vals, NULL, NULL, 1, 1, err)) == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = 1;
		goto out;
	}
	n = PQgetlength(res, 0, 0);
	if ((size_t)n >= label_len || PQgetlength(res, 0, 2) >= (int)sizeof(when)) {
		ca_err_set(err, CA_E_STORE, "ocsp_responder_get: row of CA '%s' too long", ca);
		goto out;
	}
	memcpy(key_label, PQgetvalue(res, 0, 0), (size_t)n);
	key_label[n] = '\0';
	memcpy(when, PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
	when[PQgetlength(res, 0, 2)] = '\0';
	n = PQgetlength(res, 0, 1);
	if (n <= 0 || (*der = malloc((size_t)n)) == NULL) {
		ca_err_set(err, CA_E_STORE, "ocsp_responder_get: no certificate, or out of memory");
		goto out;
	}
	memcpy(*der, PQgetvalue(res, 0, 1), (size_t)n);
	*len = (size_t)n;
	*not_after = (time_t)strtoll(when, NULL, 10);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int db_ocsp_responder_put(db_store *st, const char *ca, const char *key_label,
			  const unsigned char *der, size_t len, time_t not_after, struct ca_err *err)
{
	char na[24];
	const char *vals[4] = { ca, key_label, (const char *)der, na };
	const int lens[4] = { 0, 0, (int)len, 0 };
	const int fmts[4] = { 0, 0, 1, 0 };
	struct db_conn *c;
	PGresult *res = NULL;
	int rc = -1;

	if (ca == NULL || key_label == NULL || der == NULL || len == 0 || len > INT_MAX) {
		ca_err_set(err, CA_E_INTERNAL, "ocsp_responder_put: CA, key label or certificate missing");
		goto out;
	}
	snprintf(na, sizeof(na), "%lld", (long long)not_after);
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	/* An upsert: the same outcome when it runs twice. */
	if ((res = db_exec(c, &st_responder_put, vals, lens, fmts, 0, 1, err)) == NULL)
		goto out;
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* --- LISTEN ------------------------------------------------------------- */

struct db_listen {
	PGconn *pg;
};

static void listen_fail(db_listen *l, const char *what, PGresult *res, struct ca_err *err)
{
	char msg[200];

	db_pg_msg(l->pg, res, msg, sizeof(msg));
	ca_err_set(err, CA_E_STORE, "revocation LISTEN session: %s: %s", what, msg);
}

db_listen *db_listen_open(db_store *st, struct ca_err *err)
{
	db_listen *l = calloc(1, sizeof(*l)), *ret = NULL;
	PGresult *res = NULL;

	if (l == NULL) {
		ca_err_set(err, CA_E_STORE, "out of memory");
		goto out;
	}
	if ((l->pg = db_connect(st->dsn, err)) == NULL)
		goto out;
	res = PQexec(l->pg, "LISTEN " DB_OCSP_CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		listen_fail(l, "LISTEN", res, err);
		goto out;
	}
	ret = l;
	l = NULL;
out:
	PQclear(res);
	db_listen_close(l);
	return ret;
}

/* Hand every notification already read to fn. */
static void drain(db_listen *l, void (*fn)(void *, const char *), void *arg)
{
	PGnotify *n;

	while ((n = PQnotifies(l->pg)) != NULL) {
		const char *p = n->extra != NULL ? n->extra : "*";
		fn(arg, strlen(p) > PAYLOAD_MAX ? "*" : p);
		PQfreemem(n);
	}
}

int db_listen_wait(db_listen *l, int timeout_ms, void (*fn)(void *arg, const char *payload),
		   void *arg, struct ca_err *err)
{
	struct pollfd pfd = { .fd = PQsocket(l->pg), .events = POLLIN };
	int r;

	drain(l, fn, arg);
	if (PQstatus(l->pg) != CONNECTION_OK || pfd.fd < 0) {
		listen_fail(l, "connection", NULL, err);
		return -1;
	}
	r = poll(&pfd, 1, timeout_ms);
	if (r < 0 && errno != EINTR) {
		ca_err_set(err, CA_E_STORE, "revocation LISTEN session: poll: %s", strerror(errno));
		return -1;
	}
	if (r > 0 && (PQconsumeInput(l->pg) != 1 || PQstatus(l->pg) != CONNECTION_OK)) {
		listen_fail(l, "read", NULL, err);
		return -1;
	}
	drain(l, fn, arg);
	return 0;
}

int db_listen_ping(db_listen *l, struct ca_err *err)
{
	PGresult *res;
	int rc = 0;

	/* Notifications that arrive meanwhile wait in libpq for the next drain(). */
	res = PQexec(l->pg, "SELECT 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		listen_fail(l, "keep-alive", res, err);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

void db_listen_close(db_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->pg);
	free(l);
}
