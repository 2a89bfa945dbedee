/* Rate limits: counters per key and fixed window in rate_windows, shared by
 * every node on the database. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

/* Prune ended windows on the first and then every PRUNE_EVERY-th call of a
 * connection; windows stay for an hour after they end (for operators). */
#define PRUNE_EVERY 1000u

/* $1 key, $2 window length in seconds, $3 limit (1..INT_MAX).
 * One clock reading (subquery c is neither pulled up nor run twice: it calls
 * volatile functions) gives both the window and the seconds left in it. It
 * also turns synchronous_commit off for this transaction only: losing the
 * last takes in a database crash costs a few extra certificates at most,
 * while waiting for the WAL flush would hold the row lock through an fsync
 * and cut the takes on one key to a third. The conflicting row is locked
 * whether or not it is updated, so concurrent takes queue on it and never
 * exceed the limit. Returns one row: the new count (NULL when the limit is
 * reached) and the seconds until the window ends (at least 1). */
static const struct db_stmt st_take = {
	DB_S_RATE_TAKE, "rate_take",
	"WITH w AS (SELECT now, $2::bigint AS len, "
	"to_timestamp(floor(extract(epoch FROM now) / $2::bigint) * $2::bigint) AS start "
	"FROM (SELECT clock_timestamp() AS now, "
	"set_config('synchronous_commit', 'off', true) AS sync) AS c WHERE sync = 'off'), "
	"up AS (INSERT INTO rate_windows AS r (key, window_start, window_end, count) "
	"SELECT $1, start, start + make_interval(secs => len), 1 FROM w "
	"ON CONFLICT (key, window_start) DO UPDATE SET count = r.count + 1 "
	"WHERE r.count < $3::integer RETURNING count) "
	"SELECT (SELECT count FROM up), "
	"greatest(1, ceil(extract(epoch FROM start) + len - extract(epoch FROM now)))::bigint "
	"FROM w",
	3
};

static const struct db_stmt st_prune = {
	DB_S_RATE_PRUNE, "rate_prune",
	"DELETE FROM rate_windows WHERE window_end < clock_timestamp() - interval '1 hour'",
	0
};

/* Total order on (key, window_s, index): the rows of one call are locked in
 * this order, so two calls never wait on each other in a cycle. */
static int rate_before(const struct db_rate *r, size_t a, size_t b)
{
	int k = strcmp(r[a].key, r[b].key);

	if (k != 0)
		return k < 0;
	if (r[a].window_s != r[b].window_s)
		return r[a].window_s < r[b].window_s;
	return a < b;
}

/* The index after prev in that order (prev == n: the first); n at the end. */
static size_t rate_next(const struct db_rate *r, size_t n, size_t prev)
{
	size_t best = n;

	for (size_t i = 0; i < n; i++) {
		if (prev != n && !rate_before(r, prev, i))
			continue;
		if (best == n || rate_before(r, i, best))
			best = i;
	}
	return best;
}

/* One attempt: every take in one transaction (one statement alone is one).
 * 0 taken, 1 limit reached (*which, *retry set), -1 error. */
static int take_once(struct db_conn *c, const struct db_rate *rates, size_t n, size_t *which,
		     unsigned *retry, struct ca_err *err)
{
	char len[16], lim[16], msg[200], why[200];
	const char *vals[3] = { NULL, len, lim };
	PGresult *res = NULL, *cres = NULL;
	PGTransactionStatusType ts;
	int rc = -1;

	/* READ COMMITTED: ON CONFLICT then waits for a concurrent take instead
	 * of failing to serialize. A lone take runs in the session's default
	 * isolation, which is READ COMMITTED unless the server was told
	 * otherwise. */
	if (n > 1 && db_simple(c, "BEGIN ISOLATION LEVEL READ COMMITTED", "rate_take: begin",
			       err) != 0)
		goto out;
	for (size_t i = rate_next(rates, n, n); i < n; i = rate_next(rates, n, i)) {
		unsigned limit = rates[i].limit > INT_MAX ? INT_MAX : rates[i].limit;

		snprintf(len, sizeof(len), "%u", rates[i].window_s);
		snprintf(lim, sizeof(lim), "%u", limit);
		vals[0] = rates[i].key;
		if ((res = db_exec(c, &st_take, vals, NULL, NULL, 0, 0, err)) == NULL)
			goto out;
		if (PQntuples(res) != 1) {
			ca_err_set(err, CA_E_STORE, "rate_take: %d rows", PQntuples(res));
			goto out;
		}
		if (PQgetisnull(res, 0, 0)) {
			unsigned long left = strtoul(PQgetvalue(res, 0, 1), NULL, 10);

			*which = i;
			*retry = left < 1 ? 1 : left > UINT_MAX ? UINT_MAX : (unsigned)left;
			rc = 1; /* the ROLLBACK below takes back the others */
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	if (n == 1) {
		rc = 0;
		goto out;
	}
	cres = PQexec(c->pg, "COMMIT");
	/* COMMIT of a failed transaction "succeeds" as ROLLBACK */
	if (PQresultStatus(cres) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(cres), "COMMIT") != 0) {
		db_pg_msg(c->pg, cres, msg, sizeof(msg));
		(void)db_conn_recover(c, why, sizeof(why));
		ca_err_set(err, CA_E_STORE, "rate_take: commit: %s%s", msg, why);
		goto out;
	}
	rc = 0;
out:
	ts = PQtransactionStatus(c->pg);
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	PQclear(res);
	PQclear(cres);
	return rc;
}

int db_rate_take(db_store *st, const struct db_rate *rates, size_t n, size_t *which,
		 unsigned *retry_after_s, struct ca_err *err)
{
	size_t w_dummy;
	unsigned r_dummy;
	struct db_conn *c;
	struct ca_err tmp;
	int rc = -1;

	if (which == NULL)
		which = &w_dummy;
	if (retry_after_s == NULL)
		retry_after_s = &r_dummy;
	if (n == 0)
		return 0;
	if (rates == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "rate_take: %zu limits but no array", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (rates[i].key == NULL || rates[i].window_s == 0) {
			ca_err_set(err, CA_E_INTERNAL, "rate_take: limit %zu has no key or no window", i);
			goto out;
		}
	}
	/* Never allowed: no need to ask the database. */
	for (size_t i = 0; i < n; i++) {
		if (rates[i].limit == 0) {
			*which = i;
			*retry_after_s = rates[i].window_s;
			rc = 1;
			goto out;
		}
	}
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	for (int attempt = 0;; attempt++) {
		ca_err_clear(&tmp);
		c->recovered = 0;
		if ((rc = take_once(c, rates, n, which, retry_after_s, &tmp)) >= 0)
			break;
		/* A lost session took its transaction with it; if it went during
		 * COMMIT, the takes may have counted: counting them again errs on
		 * the safe side. */
		if (attempt == 0 && c->recovered)
			continue;
		ca_err_set(err, tmp.code, "%s", tmp.detail);
		goto out;
	}
	/* Its own statement, after the transaction: a failure costs only the
	 * pruning, which the next round does. */
	if (c->rate_calls++ % PRUNE_EVERY == 0)
		PQclear(db_exec(c, &st_prune, NULL, NULL, NULL, 0, 0, NULL));
out:
	return rc;
}
