/* Certificate rows: commit the issued certificate with its audit row, count.
 * (Serials are reserved by db/serials.c.) */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "db_int.h"

/* $4 is a JSON array of strings: no text[] literal is ever built by hand.
 * The row is inserted whole, once (migration 005): a serial already used
 * fails on the primary key, and nothing is written. */
static const struct db_stmt st_commit = {
	DB_S_COMMIT_INSERT, "commit_cert",
	"INSERT INTO certificates (serial, ca, status, subject, sans, not_before, not_after, "
	"profile, requester, protocol, der, renewed_serial, crl_shard, issued_at) "
	"VALUES ($1, $2, 'issued', $3, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), "
	"to_timestamp($5::bigint), to_timestamp($6::bigint), $7, $8, $9, $10, $11, $12::int, now()) "
	"RETURNING site",
	12
};

static const struct db_stmt st_audit_issue = {
	DB_S_AUDIT_ISSUE, "audit_issue",
	"INSERT INTO audit (action, ca, serial, actor, protocol, site, detail) "
	"VALUES ('issue', $1, $2, $3, $4, $5, "
	"jsonb_build_object('profile', $6::text, 'subject', $7::text))",
	7
};

/* Group commit (db/group.c): the statement above for many rows at once,
 * each parameter an array with one element per row (serials unique),
 * returning the serials of the rows it inserted, each with its audit row. */
static const struct db_stmt st_commit_many = {
	DB_S_COMMIT_MANY, "commit_certs",
	"WITH u AS (INSERT INTO certificates (serial, ca, status, subject, sans, not_before, "
	"not_after, profile, requester, protocol, der, renewed_serial, crl_shard, issued_at) "
	"SELECT r.serial, r.ca, 'issued', r.subject, "
	"ARRAY(SELECT jsonb_array_elements_text(r.sans::jsonb)), "
	"to_timestamp(r.not_before::bigint), to_timestamp(r.not_after::bigint), r.profile, "
	"r.requester, r.protocol, r.der, r.renewed_serial, r.crl_shard::int, now() "
	"FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
	"$7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[], $12::text[]) "
	"AS r (serial, ca, subject, sans, not_before, not_after, profile, requester, protocol, "
	"der, renewed_serial, crl_shard) "
	"RETURNING serial, ca, site, requester, protocol, profile, subject), "
	"a AS (INSERT INTO audit (action, ca, serial, actor, protocol, site, detail) "
	"SELECT 'issue', ca, serial, requester, protocol, site, "
	"jsonb_build_object('profile', profile, 'subject', subject) FROM u) "
	"SELECT serial FROM u",
	12
};

static const struct db_stmt st_count = {
	DB_S_CERT_COUNT, "cert_count",
	"SELECT count(*) FROM certificates WHERE status = 'issued'",
	0
};

static const struct db_stmt st_profile = {
	DB_S_CERT_PROFILE, "cert_profile",
	"SELECT profile FROM certificates WHERE serial = $1 AND ca = $2 AND status = 'issued'",
	2
};

int db_cert_profile(db_store *st, const char *ca, const char *serial_hex, char *profile,
		    size_t len, struct ca_err *err)
{
	const char *vals[2] = { serial_hex, ca };
	struct db_conn *c;
	PGresult *res = NULL;
	int rc = -1;

	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	if ((res = db_exec(c, &st_profile, vals, NULL, NULL, 0, 1, err)) == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		rc = 1;
		goto out;
	}
	snprintf(profile, len, "%s", PQgetvalue(res, 0, 0));
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Caller frees the result with free(). NULL with err set on failure. */
static char *sans_json(const struct db_cert_row *row, struct ca_err *err)
{
	json_t *a = json_array();
	char *s = NULL;

	if (a == NULL)
		goto out;
	if (row->n_sans > 0 && row->sans == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "commit_cert: %zu names but no array", row->n_sans);
		goto out;
	}
	for (size_t i = 0; i < row->n_sans; i++) {
		/* json_string() refuses NULL and text that is not UTF-8 */
		if (json_array_append_new(a, json_string(row->sans[i])) != 0) {
			ca_err_set(err, CA_E_INTERNAL, "commit_cert: name %zu is not UTF-8 text", i);
			goto out;
		}
	}
	s = json_dumps(a, JSON_COMPACT);
out:
	json_decref(a);
	if (s == NULL)
		ca_err_set(err, CA_E_STORE, "commit_cert: out of memory");
	return s;
}

/* One attempt in one transaction. *sent is set once COMMIT went out: a
 * failure after that has an unknown outcome. */
static int commit_once(struct db_conn *c, const struct db_cert_row *row, const char *const *cv,
		       const int *cl, const int *cf, int *sent, struct ca_err *err)
{
	const char *av[7] = { row->ca, row->serial_hex, row->requester, row->protocol, NULL,
			      row->profile, row->subject };
	PGresult *res = NULL, *ares = NULL, *cres = NULL;
	PGTransactionStatusType ts;
	char msg[200], why[200];
	int rc = -1;

	if (db_simple(c, "BEGIN", "commit_cert: begin", err) != 0)
		goto out;
	if ((res = db_exec(c, &st_commit, cv, cl, cf, 0, 0, err)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		ca_err_set(err, CA_E_INTERNAL, "commit_cert: serial %s of CA %s: no row inserted",
			   row->serial_hex, row->ca);
		goto out;
	}
	av[4] = PQgetvalue(res, 0, 0); /* this database's site */
	if ((ares = db_exec(c, &st_audit_issue, av, NULL, NULL, 0, 0, err)) == NULL)
		goto out;
	*sent = 1;
	cres = PQexec(c->pg, "COMMIT");
	/* COMMIT of a failed transaction "succeeds" as ROLLBACK */
	if (PQresultStatus(cres) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(cres), "COMMIT") != 0) {
		db_pg_msg(c->pg, cres, msg, sizeof(msg));
		if (PQstatus(c->pg) != CONNECTION_OK) {
			(void)db_conn_recover(c, why, sizeof(why));
			ca_err_set(err, CA_E_STORE,
				   "commit_cert: connection lost during COMMIT of serial %s, outcome unknown: %s%s",
				   row->serial_hex, msg, why);
		} else {
			ca_err_set(err, CA_E_STORE, "commit_cert: commit: %s", msg);
		}
		goto out;
	}
	rc = 0;
out:
	ts = PQtransactionStatus(c->pg);
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	PQclear(res);
	PQclear(ares);
	PQclear(cres);
	return rc;
}

int db_commit_cert(db_store *st, const struct db_cert_row *row, struct ca_err *err)
{
	char nb[24], na[24], shard[16], *sans = NULL;
	const char *cv[12];
	int cl[12] = { 0 }, cf[12] = { 0 };
	struct db_conn *c;
	struct ca_err tmp;
	int rc = -1, sent;

	if (row == NULL || row->serial_hex == NULL || row->ca == NULL || row->der == NULL ||
	    row->der_len == 0 || row->der_len > INT_MAX) {
		ca_err_set(err, CA_E_INTERNAL, "commit_cert: serial, CA or DER missing");
		goto out;
	}
	if ((sans = sans_json(row, err)) == NULL)
		goto out;
	snprintf(nb, sizeof(nb), "%lld", (long long)row->not_before);
	snprintf(na, sizeof(na), "%lld", (long long)row->not_after);
	cv[0] = row->serial_hex;
	cv[1] = row->ca;
	cv[2] = row->subject;
	cv[3] = sans;
	cv[4] = nb;
	cv[5] = na;
	cv[6] = row->profile;
	cv[7] = row->requester;
	cv[8] = row->protocol;
	cv[9] = (const char *)row->der;
	cl[9] = (int)row->der_len;
	cf[9] = 1; /* bytea, binary */
	cv[10] = row->renewed_serial;
	snprintf(shard, sizeof(shard), "%u", row->crl_shard);
	cv[11] = shard;
	if (!st->direct) {
		int r = db_group_exec(st, &st_commit_many, cv, cl, cf, err);
		if (r == 0)
			ca_err_set(err, CA_E_INTERNAL, "commit_cert: serial %s of CA %s: no row inserted",
				   row->serial_hex, row->ca);
		if (r != -2) {
			rc = r == 1 ? 0 : -1;
			goto out;
		}
	}
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	for (int attempt = 0;; attempt++) {
		ca_err_clear(&tmp);
		c->recovered = 0;
		sent = 0;
		if (commit_once(c, row, cv, cl, cf, &sent, &tmp) == 0)
			break;
		/* A session lost before COMMIT took its transaction with it. */
		if (attempt == 0 && !sent && c->recovered)
			continue;
		ca_err_set(err, tmp.code, "%s", tmp.detail);
		goto out;
	}
	rc = 0;
out:
	free(sans);
	return rc;
}

long long db_cert_count(db_store *st, struct ca_err *err)
{
	struct db_conn *c;
	PGresult *res = NULL;
	long long n = -1;

	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	if ((res = db_exec(c, &st_count, NULL, NULL, NULL, 0, 1, err)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		ca_err_set(err, CA_E_STORE, "cert_count: no row");
		goto out;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
out:
	PQclear(res);
	return n;
}
