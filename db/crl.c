/* CRLs: the CA's CRL counter, the revocations a CRL lists (streamed with
 * COPY ... TO STDOUT in binary), the published CRLs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "db_int.h"

/* Publications for one CA queue on this row lock until commit. */
static const struct db_stmt st_number = {
	DB_S_CRL_NUMBER, "crl_number",
	"UPDATE cas SET crl_number = crl_number + 1 WHERE name = $1 RETURNING crl_number", 1
};

/* crls_latest index: (ca, shard, (delta_of IS NOT NULL), number DESC) */
static const struct db_stmt st_latest = {
	DB_S_CRL_LATEST, "crl_latest",
	"SELECT number, coalesce(delta_of, 0), floor(extract(epoch FROM this_update))::bigint, "
	"floor(extract(epoch FROM next_update))::bigint, entries, octet_length(der) "
	"FROM crls WHERE ca = $1 AND shard = $2::integer AND (delta_of IS NOT NULL) = $3::boolean "
	"ORDER BY number DESC LIMIT 1",
	3
};

static const struct db_stmt st_put = {
	DB_S_CRL_PUT, "crl_put",
	"INSERT INTO crls (ca, number, shard, delta_of, this_update, next_update, entries, der) "
	"VALUES ($1, $2::bigint, $3::integer, $4::bigint, to_timestamp($5::bigint), "
	"to_timestamp($6::bigint), $7::integer, $8)",
	8
};

/* CRLs of the scope no relying party may still use. */
static const struct db_stmt st_prune = {
	DB_S_CRL_PRUNE, "crl_prune",
	"DELETE FROM crls WHERE ca = $1 AND shard = $2::integer AND (delta_of IS NOT NULL) = $3::boolean "
	"AND next_update < to_timestamp($4::bigint) AND number < $5::bigint",
	5
};

static const struct db_stmt st_der = {
	DB_S_CRL_DER, "crl_der", "SELECT der FROM crls WHERE ca = $1 AND number = $2::bigint", 2
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Row 0 of a crl_latest result. */
static void meta_of(const PGresult *res, struct db_crl_meta *m)
{
	m->number = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	m->delta_of = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	m->this_update = (time_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	m->next_update = (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	m->entries = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	m->der_len = (size_t)strtoull(PQgetvalue(res, 0, 5), NULL, 10);
}

/* The latest CRL of a scope on session c: 0 found, 1 none, -1. */
static int latest_on(struct db_conn *c, const char *ca, unsigned shard, int delta, int retry,
		     struct db_crl_meta *m, struct ca_err *err)
{
	char sh[16];
	const char *vals[3] = { ca, sh, delta ? "t" : "f" };
	PGresult *res;
	int rc;

	snprintf(sh, sizeof(sh), "%u", shard);
	if ((res = db_exec(c, &st_latest, vals, NULL, NULL, 0, retry, err)) == NULL)
		return -1;
	rc = PQntuples(res) == 0 ? 1 : 0;
	if (rc == 0)
		meta_of(res, m);
	PQclear(res);
	return rc;
}

int db_crl_latest(db_store *st, const char *ca, unsigned shard, int delta, struct db_crl_meta *m,
		  struct ca_err *err)
{
	struct db_conn *c = db_conn_get(st, err);

	return c == NULL ? -1 : latest_on(c, ca, shard, delta, 1, m, err);
}

int db_crl_der(db_store *st, const char *ca, long long number, unsigned char **der, size_t *len,
	       struct ca_err *err)
{
	char num[24];
	const char *vals[2] = { ca, num };
	struct db_conn *c = db_conn_get(st, err);
	PGresult *res = NULL;
	int rc = -1, n;

	*der = NULL;
	*len = 0;
	if (c == NULL)
		goto out;
	snprintf(num, sizeof(num), "%lld", number);
	/* binary: the bytea arrives as its bytes */
	if ((res = db_exec(c, &st_der, vals, NULL, NULL, 1, 1, err)) == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = 1;
		goto out;
	}
	n = PQgetlength(res, 0, 0);
	if ((*der = malloc(n > 0 ? (size_t)n : 1)) == NULL) {
		ca_err_set(err, CA_E_STORE, "out of memory (CRL of %d bytes)", n);
		goto out;
	}
	memcpy(*der, PQgetvalue(res, 0, 0), (size_t)n);
	*len = (size_t)n;
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* The COPY statement for a job, in binary: PostgreSQL sends timestamps as
 * 8-octet integers instead of formatting them (a third less server time
 * than text). COPY takes no parameters: the CA name goes in as an escaped
 * literal, the rest are numbers formatted here. Caller frees. */
static char *copy_sql(PGconn *pg, const struct db_crl_job *job, time_t since, struct ca_err *err)
{
	char *lit = PQescapeLiteral(pg, job->ca, strlen(job->ca)), shard[48] = "", *sql = NULL;
	int n;

	if (lit == NULL) {
		ca_err_set(err, CA_E_STORE, "cannot quote the CA name");
		return NULL;
	}
	if (job->shard > 0)
		snprintf(shard, sizeof(shard), " AND crl_shard = %u", job->shard);
	if (!job->delta) {
		n = asprintf(&sql,
			     "COPY (SELECT serial, revoked_at, reason::integer, invalidity_date, not_after "
			     "FROM revocations WHERE ca = %s%s "
			     "AND (not_after IS NULL OR not_after >= to_timestamp(%lld))"
			     ") TO STDOUT (FORMAT binary)",
			     lit, shard, (long long)job->expired_before);
	} else {
		/* RFC 5280 §5.2.4: what changed since the base; a hold released
		 * (and not revoked again) is removeFromCRL (8). */
		n = asprintf(&sql,
			     "COPY (SELECT serial, revoked_at, reason::integer, invalidity_date, not_after "
			     "FROM revocations WHERE ca = %s%s "
			     "AND (not_after IS NULL OR not_after >= to_timestamp(%lld)) "
			     "AND revoked_at >= to_timestamp(%lld) "
			     "UNION ALL SELECT h.serial, max(h.released_at), 8, NULL::timestamptz, NULL::timestamptz "
			     "FROM hold_releases h WHERE h.ca = %s%s AND h.released_at >= to_timestamp(%lld) "
			     "AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = h.serial) "
			     "GROUP BY h.serial) TO STDOUT (FORMAT binary)",
			     lit, shard, (long long)job->expired_before, (long long)since,
			     lit, shard, (long long)since);
	}
	PQfreemem(lit);
	if (n < 0) {
		ca_err_set(err, CA_E_STORE, "out of memory");
		return NULL;
	}
	return sql;
}

/* PostgreSQL's binary COPY format (documented with COPY): a signature and
 * header, then per row an int16 field count and per field an int32 length
 * (-1: NULL) and the value; integers big-endian; a timestamptz is int64
 * microseconds since 2000-01-01 UTC. */
static const unsigned char copy_sig[11] = { 'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0 };
#define PG_EPOCH 946684800LL  /* 2000-01-01 in Unix time */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The next field of a row at *p (len bytes left): its value and length
 * (-1 NULL). 0 or -1. */
static int field(const unsigned char **p, size_t *left, const unsigned char **v, int32_t *len)
{
	if (*left < 4)
		return -1;
	*len = (int32_t)be32(*p);
	*p += 4;
	*left -= 4;
	if (*len < -1 || (*len > 0 && (size_t)*len > *left))
		return -1;
	*v = *p;
	if (*len > 0) {
		*p += *len;
		*left -= (size_t)*len;
	}
	return 0;
}

/* A timestamptz field (or NULL, as 0) in Unix seconds, rounded down. */
static int ts_field(const unsigned char **p, size_t *left, time_t *out)
{
	const unsigned char *v;
	int32_t len;
	long long us;

	if (field(p, left, &v, &len) != 0 || (len != -1 && len != 8))
		return -1;
	if (len == -1) {
		*out = 0;
		return 0;
	}
	us = (long long)((uint64_t)be32(v) << 32 | be32(v + 4));
	*out = (time_t)((us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000)) + PG_EPOCH);
	return 0;
}

/* One binary row into e; serial is e's buffer (41 bytes). 0, 1 the
 * trailer, -1 malformed. */
static int parse_row(const unsigned char *row, size_t left, struct db_crl_entry *e, char serial[41])
{
	const unsigned char *p = row, *v;
	int32_t len;

	if (left < 2)
		return -1;
	if (row[0] == 0xff && row[1] == 0xff)
		return 1;
	if (row[0] != 0 || row[1] != 5)
		return -1;
	p += 2;
	left -= 2;
	if (field(&p, &left, &v, &len) != 0 || len < 1 || len > 40)
		return -1;
	memcpy(serial, v, (size_t)len);
	serial[len] = '\0';
	e->serial_hex = serial;
	if (ts_field(&p, &left, &e->revoked_at) != 0 || e->revoked_at == 0)
		return -1;
	if (field(&p, &left, &v, &len) != 0 || len != 4)
		return -1;
	e->reason = (int)(int32_t)be32(v);
	if (ts_field(&p, &left, &e->invalidity_date) != 0 || ts_field(&p, &left, &e->not_after) != 0 ||
	    left != 0)
		return -1;
	return 0;
}

/* Run the COPY and hand each row to the sink. 0 or -1. */
static int stream_rows(struct db_conn *c, const char *sql, const struct db_crl_sink *sink,
		       struct ca_err *err)
{
	PGresult *res = PQexec(c->pg, sql);
	char *row = NULL, msg[200], serial[41];
	int n, failed = 0, first = 1, done = 0;

	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		db_pg_msg(c->pg, res, msg, sizeof(msg));
		ca_err_set(err, CA_E_STORE, "crl_copy: %s", msg);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	/* Read to the end even after a failure, so the session stays usable. */
	while ((n = PQgetCopyData(c->pg, &row, 0)) > 0) {
		const unsigned char *p = (const unsigned char *)row;
		size_t left = (size_t)n;
		struct db_crl_entry e;
		int r;
		/* The header comes with the first row: signature, flags, extension. */
		if (first && !failed) {
			first = 0;
			if (left < 19 || memcmp(p, copy_sig, sizeof(copy_sig)) != 0 ||
			    left < 19 + (size_t)be32(p + 15)) {
				failed = 1;
			} else {
				size_t skip = 19 + (size_t)be32(p + 15);
				p += skip;
				left -= skip;
			}
		}
		if (failed || done || left == 0) {
			/* drain */
		} else if ((r = parse_row(p, left, &e, serial)) < 0) {
			ca_err_set(err, CA_E_STORE, "crl_copy: unexpected row");
			failed = 1;
		} else if (r == 1) {
			done = 1;
		} else if (sink->entry(sink->arg, &e, err) != 0) {
			failed = 1;
		}
		PQfreemem(row);
		row = NULL;
	}
	if (n == -2 && !failed) {
		db_pg_msg(c->pg, NULL, msg, sizeof(msg));
		ca_err_set(err, CA_E_STORE, "crl_copy: %s", msg);
		failed = 1;
	}
	while ((res = PQgetResult(c->pg)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
			db_pg_msg(c->pg, res, msg, sizeof(msg));
			ca_err_set(err, CA_E_STORE, "crl_copy: %s", msg);
			failed = 1;
		}
		PQclear(res);
	}
	if (!failed && !done) {
		ca_err_set(err, CA_E_STORE, "crl_copy: rows ended early");
		failed = 1;
	}
	if (failed && err != NULL && err->code == CA_OK)
		ca_err_set(err, CA_E_STORE, "crl_copy: not PostgreSQL's binary COPY format");
	return failed ? -1 : 0;
}

static int store_crl(struct db_conn *c, const struct db_crl_job *job, const struct db_crl_plan *plan,
		     const struct db_crl_out *o, struct ca_err *err)
{
	char num[24], shard[16], delta[24], tu[24], nu[24], entries[24], now[24];
	const char *vals[8] = { job->ca, num, shard, job->delta ? delta : NULL, tu, nu, entries,
				(const char *)o->der };
	const char *pvals[5] = { job->ca, shard, job->delta ? "t" : "f", now, num };
	int lens[8] = { 0, 0, 0, 0, 0, 0, 0, (int)o->der_len };
	int fmts[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	PGresult *res;

	if (o->der_len > 0x7fffffff || o->entries > 0x7fffffff) {
		ca_err_set(err, CA_E_STORE, "crl_put: CRL too large");
		return -1;
	}
	snprintf(num, sizeof(num), "%lld", plan->number);
	snprintf(shard, sizeof(shard), "%u", job->shard);
	snprintf(delta, sizeof(delta), "%lld", plan->base_number);
	snprintf(tu, sizeof(tu), "%lld", (long long)o->this_update);
	snprintf(nu, sizeof(nu), "%lld", (long long)o->next_update);
	snprintf(entries, sizeof(entries), "%zu", o->entries);
	snprintf(now, sizeof(now), "%lld", (long long)job->now);
	if ((res = db_exec(c, &st_put, vals, lens, fmts, 0, 0, err)) == NULL)
		return -1;
	PQclear(res);
	if ((res = db_exec(c, &st_prune, pvals, NULL, NULL, 0, 0, err)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* In this transaction, compress the CRL with lz4 rather than pglz: a
 * fourth of the time for a 40 MB CRL, nearly the same size. A server
 * built without lz4 refuses, and keeps its default. */
static void lz4(struct db_conn *c)
{
	PGresult *res;

	PQclear(PQexec(c->pg, "SAVEPOINT crl_lz4"));
	res = PQexec(c->pg, "SET LOCAL default_toast_compression = 'lz4'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		PQclear(PQexec(c->pg, "ROLLBACK TO SAVEPOINT crl_lz4"));
	PQclear(res);
}

int db_crl_publish(db_store *st, const struct db_crl_job *job, const struct db_crl_sink *sink,
		   struct db_crl_plan *plan, struct db_crl_times *times, struct ca_err *err)
{
	struct db_conn *c = db_conn_get(st, err);
	struct db_crl_times t = { 0 };
	struct db_crl_meta latest, base;
	struct db_crl_out out = { 0 };
	const char *vals[1] = { job->ca };
	PGresult *res = NULL;
	char *sql = NULL;
	double t0 = mono_s(), t1;
	int rc = -1, r, in_tx = 0;

	memset(plan, 0, sizeof(*plan));
	if (c == NULL)
		goto out;
	/* Not due? Ask before locking anything (the usual answer). */
	if (job->min_age_s > 0) {
		if ((r = latest_on(c, job->ca, job->shard, job->delta, 1, &latest, err)) < 0)
			goto out;
		if (r == 0 && latest.this_update > job->now - (time_t)job->min_age_s) {
			rc = 1;
			goto out;
		}
	}
	if (db_simple(c, "BEGIN", "crl_begin", err) != 0)
		goto out;
	in_tx = 1;
	lz4(c);
	/* 1. the number, and the lock that orders publishers of this CA */
	if ((res = db_exec(c, &st_number, vals, NULL, NULL, 0, 0, err)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		ca_err_set(err, CA_E_NOT_FOUND, "CA '%s' is not in the store", job->ca);
		goto out;
	}
	plan->number = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	/* 2. due (again: another process may have published while we waited) */
	if (job->min_age_s > 0) {
		if ((r = latest_on(c, job->ca, job->shard, job->delta, 0, &latest, err)) < 0)
			goto out;
		if (r == 0 && latest.this_update > job->now - (time_t)job->min_age_s) {
			rc = 1;
			goto out;
		}
	}
	if (job->delta) {
		if ((r = latest_on(c, job->ca, job->shard, 0, 0, &base, err)) < 0)
			goto out;
		if (r == 1) {
			rc = 2;
			goto out;
		}
		plan->base_number = base.number;
		plan->base_this_update = base.this_update;
	}
	t1 = mono_s();
	t.lock_s = t1 - t0;
	/* 3. the rows */
	if ((sql = copy_sql(c->pg, job, plan->base_this_update - (time_t)job->delta_margin_s, err)) == NULL ||
	    stream_rows(c, sql, sink, err) != 0)
		goto out;
	t0 = mono_s();
	t.read_s = t0 - t1;
	/* 4. build and sign */
	if (sink->finish(sink->arg, plan, &out, err) != 0)
		goto out;
	t1 = mono_s();
	t.finish_s = t1 - t0;
	/* 5. store, commit */
	if (store_crl(c, job, plan, &out, err) != 0 || db_simple(c, "COMMIT", "crl_commit", err) != 0)
		goto out;
	in_tx = 0;
	t.store_s = mono_s() - t1;
	rc = 0;
out:
	if (in_tx && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	if (times != NULL)
		*times = t;
	PQclear(res);
	free(sql);
	return rc;
}
