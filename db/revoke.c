/* Revocations: revoke a chunk of serials in one transaction with their audit
 * rows, release a certificateHold, and find serials by profile and date.
 * Every change notifies OCSP responders on channel mintca_revocation in the
 * same transaction (delivered at COMMIT). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

/* Above this many serials one "*" (flush everything) replaces a
 * notification per serial. */
#define NOTIFY_EACH_MAX 64

/* Why a serial cannot be revoked: not a certificate of ours, not issued, or
 * already revoked (with its reason). Rows only for the problems. */
static const struct db_stmt st_check = {
	DB_S_REVOKE_CHECK, "revoke_check",
	"SELECT s.serial, c.status, r.reason "
	"FROM (SELECT DISTINCT unnest($1::text[]) AS serial) s "
	"LEFT JOIN certificates c ON c.serial = s.serial "
	"LEFT JOIN revocations r ON r.serial = s.serial "
	"WHERE c.serial IS NULL OR c.status <> 'issued' OR r.serial IS NOT NULL "
	"ORDER BY s.serial",
	1
};

/* A certificate on hold (reason 6) may be revoked for good: its row takes
 * the new reason and keeps its revocation time. Anything else already
 * revoked is left alone (not returned). */
static const struct db_stmt st_revoke = {
	DB_S_REVOKE_MANY, "revoke_many",
	"WITH s AS (SELECT DISTINCT unnest($1::text[]) AS serial), "
	"ins AS (INSERT INTO revocations AS r "
	"(serial, ca, revoked_at, reason, invalidity_date, site, crl_shard, not_after) "
	"SELECT c.serial, c.ca, now(), $2::smallint, to_timestamp(NULLIF($3::bigint, 0)), c.site, "
	"c.crl_shard, c.not_after "
	"FROM s JOIN certificates c ON c.serial = s.serial AND c.status = 'issued' "
	"ON CONFLICT (serial) DO UPDATE SET reason = EXCLUDED.reason, "
	"invalidity_date = EXCLUDED.invalidity_date "
	"WHERE r.reason = 6 AND EXCLUDED.reason <> 6 "
	"RETURNING r.serial, r.ca, r.site), "
	"a AS (INSERT INTO audit (action, ca, serial, actor, protocol, site, detail) "
	"SELECT 'revoke', ca, serial, $4, $5, site, "
	"jsonb_build_object('reason', $2::int, 'invalidity_date', NULLIF($3::bigint, 0)) FROM ins) "
	"SELECT serial FROM ins",
	5
};

static const struct db_stmt st_release = {
	DB_S_RELEASE_HOLD, "release_hold",
	"WITH d AS (DELETE FROM revocations WHERE serial = $1 AND reason = 6 "
	"RETURNING serial, ca, crl_shard, site), "
	"h AS (INSERT INTO hold_releases (serial, ca, crl_shard, site) "
	"SELECT serial, ca, crl_shard, site FROM d), "
	"a AS (INSERT INTO audit (action, ca, serial, actor, protocol, site) "
	"SELECT 'release_hold', ca, serial, $2, $3, site FROM d) "
	"SELECT serial, pg_notify('mintca_revocation', serial) FROM d",
	3
};

static const struct db_stmt st_matching = {
	DB_S_SERIALS_MATCHING, "serials_matching",
	"SELECT c.serial FROM certificates c "
	"WHERE c.status = 'issued' AND c.profile = $1 AND ($2::text IS NULL OR c.ca = $2) "
	"AND c.issued_at >= to_timestamp($3::bigint) AND c.issued_at < to_timestamp($4::bigint) "
	"AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) "
	"ORDER BY c.issued_at, c.serial LIMIT $5::bigint",
	5
};

/* COMMIT, telling a lost connection (outcome unknown) from a refusal. */
static int commit(struct db_conn *c, const char *what, struct ca_err *err)
{
	PGresult *res = PQexec(c->pg, "COMMIT");
	char msg[200], why[200] = "";
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		db_pg_msg(c->pg, res, msg, sizeof(msg));
		if (PQstatus(c->pg) != CONNECTION_OK) {
			(void)db_conn_recover(c, why, sizeof(why));
			ca_err_set(err, CA_E_STORE, "%s: connection lost during COMMIT, outcome unknown "
				   "(run it again to finish): %s%s", what, msg, why);
		} else {
			ca_err_set(err, CA_E_STORE, "%s: commit: %s", what, msg);
		}
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static void rollback_if_open(struct db_conn *c)
{
	PGTransactionStatusType ts = PQtransactionStatus(c->pg);

	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(c->pg, "ROLLBACK"));
}

/* The first problem row of the check, as a refusal; 0 when there is none
 * that refuses in this mode. */
static int refusal(PGresult *res, enum db_revoke_mode mode, int reason, struct ca_err *err)
{
	int n = PQntuples(res), bad = 0, first = -1;

	for (int i = 0; i < n; i++) {
		int unknown = PQgetisnull(res, i, 1) || strcmp(PQgetvalue(res, i, 1), "issued") != 0;
		int held = !PQgetisnull(res, i, 2) && atoi(PQgetvalue(res, i, 2)) == DB_REASON_HOLD;
		/* A hold may become permanent; anything else revoked twice is a
		 * conflict in strict mode and a skip when resuming. */
		int strict = mode == DB_REVOKE_STRICT || mode == DB_REVOKE_CHECK_STRICT;
		if (unknown || (strict && !(held && reason != DB_REASON_HOLD))) {
			if (first < 0)
				first = i;
			bad++;
		}
	}
	if (first < 0)
		return 0;
	if (PQgetisnull(res, first, 1))
		ca_err_set(err, CA_E_NOT_FOUND, "serial %s: no certificate with this serial%s",
			   PQgetvalue(res, first, 0), bad > 1 ? " (and more problems: see the count)" : "");
	else if (strcmp(PQgetvalue(res, first, 1), "issued") != 0)
		ca_err_set(err, CA_E_NOT_FOUND, "serial %s: reserved but never issued", PQgetvalue(res, first, 0));
	else
		ca_err_set(err, CA_E_CONFLICT, "serial %s: already revoked (reason %s)",
			   PQgetvalue(res, first, 0), PQgetvalue(res, first, 2));
	if (bad > 1) {
		size_t l = strlen(err->detail);
		snprintf(err->detail + l, sizeof(err->detail) - l, "; %d serials refused in all", bad);
	}
	return 1;
}

int db_revoke(db_store *st, const char *const *serials, size_t n, int reason,
	      time_t invalidity_date, const char *actor, const char *protocol,
	      enum db_revoke_mode mode, struct db_revoke_counts *counts, struct ca_err *err)
{
	char *arr = NULL, rs[8], inv[24];
	int arr_len = 0, rc = -1;
	struct db_conn *c;
	PGresult *res = NULL;
	const int fmts[5] = { 1, 0, 0, 0, 0 };
	int lens[5] = { 0 };

	counts->revoked = counts->already = 0;
	if (n == 0)
		return 0;
	if (reason < 0 || reason > 10 || reason == 7 || reason == 8) {
		ca_err_set(err, CA_E_BAD_REQUEST, "RFC 5280 §5.3.1: reason code %d cannot be given", reason);
		return 1;
	}
	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	if (db_text_array(serials, n, &arr, &arr_len) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "revoke: out of memory for %zu serials", n);
		goto out;
	}
	snprintf(rs, sizeof(rs), "%d", reason);
	snprintf(inv, sizeof(inv), "%lld", (long long)invalidity_date);
	const char *vals[5] = { arr, rs, inv, actor, protocol };
	lens[0] = arr_len;
	if (db_simple(c, "BEGIN", "revoke: begin", err) != 0)
		goto out;
	if ((res = db_exec(c, &st_check, vals, lens, fmts, 0, 0, err)) == NULL)
		goto out;
	if (refusal(res, mode, reason, err) != 0) {
		rc = 1;
		goto out;
	}
	if (mode == DB_REVOKE_CHECK_STRICT || mode == DB_REVOKE_CHECK_RESUME) {
		rc = 0;
		goto out; /* rolled back: a read-only transaction */
	}
	PQclear(res);
	if ((res = db_exec(c, &st_revoke, vals, lens, fmts, 0, 0, err)) == NULL)
		goto out;
	counts->revoked = (size_t)PQntuples(res);
	PQclear(res);
	res = NULL;
	if (counts->revoked > 0) {
		/* Responders drop what they cached for these serials at COMMIT. */
		const char *nv[1] = { arr };
		if (counts->revoked <= NOTIFY_EACH_MAX)
			res = PQexecParams(c->pg, "SELECT pg_notify('mintca_revocation', s) "
					   "FROM (SELECT DISTINCT unnest($1::text[]) AS s) x",
					   1, NULL, nv, lens, fmts, 0);
		else
			res = PQexec(c->pg, "SELECT pg_notify('mintca_revocation', '*')");
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			char msg[200];
			db_pg_msg(c->pg, res, msg, sizeof(msg));
			ca_err_set(err, CA_E_STORE, "revoke: notify: %s", msg);
			goto out;
		}
	}
	if (commit(c, "revoke", err) != 0)
		goto out;
	/* Distinct serials not revoked now were revoked before (resume). */
	{
		PGresult *d = NULL;
		size_t distinct = n;
		const char *dv[1] = { arr };
		if (counts->revoked < n) {
			d = PQexecParams(c->pg, "SELECT count(DISTINCT s) FROM unnest($1::text[]) s",
					 1, NULL, dv, lens, fmts, 0);
			if (PQresultStatus(d) == PGRES_TUPLES_OK && PQntuples(d) == 1)
				distinct = (size_t)strtoull(PQgetvalue(d, 0, 0), NULL, 10);
			PQclear(d);
		}
		counts->already = distinct > counts->revoked ? distinct - counts->revoked : 0;
	}
	rc = 0;
out:
	rollback_if_open(c);
	PQclear(res);
	free(arr);
	return rc;
}

int db_release_hold(db_store *st, const char *serial_hex, const char *actor,
		    const char *protocol, struct ca_err *err)
{
	const char *vals[3] = { serial_hex, actor, protocol };
	struct db_conn *c;
	PGresult *res = NULL;
	int rc = -1;

	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	if (db_simple(c, "BEGIN", "release hold: begin", err) != 0)
		goto out;
	if ((res = db_exec(c, &st_release, vals, NULL, NULL, 0, 0, err)) == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		/* Tell why, from the same snapshot. */
		const int fmts[1] = { 1 };
		char *arr = NULL;
		int len = 0;
		PGresult *chk = NULL;
		if (db_text_array(&serial_hex, 1, &arr, &len) == 0) {
			const char *cv[1] = { arr };
			chk = db_exec(c, &st_check, cv, &len, fmts, 0, 0, err);
		}
		free(arr);
		if (chk != NULL && PQntuples(chk) == 1 && !PQgetisnull(chk, 0, 1) &&
		    strcmp(PQgetvalue(chk, 0, 1), "issued") == 0)
			ca_err_set(err, CA_E_CONFLICT, "serial %s: not on hold (reason %s): only a "
				   "certificateHold can be released", serial_hex, PQgetvalue(chk, 0, 2));
		else if (chk != NULL && PQntuples(chk) == 0)
			ca_err_set(err, CA_E_CONFLICT, "serial %s: not revoked, nothing to release", serial_hex);
		else if (chk != NULL)
			ca_err_set(err, CA_E_NOT_FOUND, "serial %s: no issued certificate with this serial", serial_hex);
		rc = chk != NULL ? 1 : -1;
		PQclear(chk);
		goto out;
	}
	if (commit(c, "release hold", err) != 0)
		goto out;
	rc = 0;
out:
	rollback_if_open(c);
	PQclear(res);
	return rc;
}

int db_serials_matching(db_store *st, const char *ca, const char *profile, time_t from,
			time_t to, size_t max, char ***out, size_t *n, struct ca_err *err)
{
	char f[24], t[24], m[24];
	const char *vals[5] = { profile, ca, f, t, m };
	struct db_conn *c;
	PGresult *res = NULL;
	char **v = NULL;
	int rows, rc = -1;

	*out = NULL;
	*n = 0;
	snprintf(f, sizeof(f), "%lld", (long long)from);
	snprintf(t, sizeof(t), "%lld", (long long)to);
	snprintf(m, sizeof(m), "%zu", max);
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	if ((res = db_exec(c, &st_matching, vals, NULL, NULL, 0, 1, err)) == NULL)
		goto out;
	rows = PQntuples(res);
	if ((v = calloc((size_t)rows + 1, sizeof(*v))) == NULL)
		goto oom;
	for (int i = 0; i < rows; i++)
		if ((v[i] = strdup(PQgetvalue(res, i, 0))) == NULL) {
			db_serials_free(v, (size_t)i);
			v = NULL;
			goto oom;
		}
	*out = v;
	*n = (size_t)rows;
	rc = 0;
	goto out;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory for %d serials", rows);
out:
	PQclear(res);
	return rc;
}

void db_serials_free(char **serials, size_t n)
{
	if (serials == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(serials[i]);
	free(serials);
}
