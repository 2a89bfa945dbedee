/* Listing certificate rows for operators: serials reserved but never
 * issued (a crash or a failure between the reservation and the commit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

/* Oldest first, on the database clock (reserved_at is set by it). $2 is one
 * more than the caller's maximum, to tell whether there are more. */
static const struct db_stmt st_reserved = {
	DB_S_CERTS_RESERVED, "certs_reserved",
	"SELECT serial, ca, site, extract(epoch FROM reserved_at)::bigint FROM reserved_serials "
	"WHERE reserved_at <= now() - make_interval(secs => $1::bigint) "
	"ORDER BY reserved_at, serial LIMIT $2::bigint",
	2
};

void db_reserved_free(struct db_reserved *rows, size_t n)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(rows[i].serial_hex);
		free(rows[i].ca);
		free(rows[i].site);
	}
	free(rows);
}

int db_certs_reserved(db_store *st, unsigned long long older_than_s, size_t max,
		      struct db_reserved **out, size_t *n, int *more, struct ca_err *err)
{
	char age[24], limit[24];
	const char *vals[2] = { age, limit };
	struct db_reserved *rows = NULL;
	struct db_conn *c;
	PGresult *res = NULL;
	size_t got = 0;
	int rc = -1, nt;

	*out = NULL;
	*n = 0;
	*more = 0;
	if (max == 0 || max > DB_RESERVED_MAX || older_than_s > DB_RESERVED_AGE_MAX) {
		ca_err_set(err, CA_E_INTERNAL, "certs_reserved: max must be 1..%d, the age at most %llu s",
			   DB_RESERVED_MAX, (unsigned long long)DB_RESERVED_AGE_MAX);
		goto out;
	}
	snprintf(age, sizeof(age), "%llu", older_than_s);
	snprintf(limit, sizeof(limit), "%zu", max + 1);
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	/* Read only: safe to run again after a reconnect. */
	if ((res = db_exec(c, &st_reserved, vals, NULL, NULL, 0, 1, err)) == NULL)
		goto out;
	nt = PQntuples(res);
	if ((size_t)nt > max) {
		*more = 1;
		nt = (int)max;
	}
	if (nt > 0 && (rows = calloc((size_t)nt, sizeof(*rows))) == NULL) {
		ca_err_set(err, CA_E_STORE, "certs_reserved: out of memory for %d rows", nt);
		goto out;
	}
	for (; got < (size_t)nt; got++) {
		struct db_reserved *r = &rows[got];
		int i = (int)got;

		r->serial_hex = strdup(PQgetvalue(res, i, 0));
		r->ca = strdup(PQgetvalue(res, i, 1));
		r->site = strdup(PQgetvalue(res, i, 2));
		r->reserved_at = (time_t)strtoll(PQgetvalue(res, i, 3), NULL, 10);
		if (r->serial_hex == NULL || r->ca == NULL || r->site == NULL) {
			got++; /* this row's strings are freed with the others */
			ca_err_set(err, CA_E_STORE, "certs_reserved: out of memory");
			goto out;
		}
	}
	*out = rows;
	*n = got;
	rows = NULL;
	rc = 0;
out:
	db_reserved_free(rows, got);
	PQclear(res);
	return rc;
}
