/* Serials reserved ahead of use, many in one statement (ca-core/serial_pool.c),
 * and given back when they were never used. */
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

static const struct db_stmt st_reserve_pool = {
	DB_S_RESERVE_POOL, "reserve_pool",
	"INSERT INTO certificates (serial, ca, site, status) "
	"SELECT s, $2, $3, 'reserved' FROM unnest($1::text[]) AS s "
	"ON CONFLICT (serial) DO NOTHING RETURNING serial",
	3
};

/* Only rows that never became a certificate: an issued serial is never
 * touched, whatever the caller passes. */
static const struct db_stmt st_release_pool = {
	DB_S_RELEASE_POOL, "release_pool",
	"DELETE FROM certificates WHERE serial = ANY($1::text[]) AND ca = $2 AND status = 'reserved'",
	2
};

static int run(db_store *st, const struct db_stmt *s, const char *ca, const char *const *serials,
	       size_t n, const char *site, unsigned char *inserted, struct ca_err *err)
{
	struct db_conn *c;
	PGresult *res = NULL;
	char *arr = NULL;
	int arr_len = 0, rc = -1;

	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	if (db_text_array(serials, n, &arr, &arr_len) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "%s: out of memory for %zu serials", s->name, n);
		return -1;
	}
	const char *vals[3] = { arr, ca, site != NULL ? site : "main" };
	const int lens[3] = { arr_len, 0, 0 }, fmts[3] = { 1, 0, 0 };
	/* Safe to run again after a reconnect: a reservation the lost attempt
	 * made is not returned the second time, so it is never used (it stays
	 * 'reserved', as a crash would leave it); a release is idempotent. */
	if ((res = db_exec(c, s, vals, lens, fmts, 0, 1, err)) == NULL)
		goto out;
	if (inserted != NULL) {
		memset(inserted, 0, n);
		for (int r = 0; r < PQntuples(res); r++)
			for (size_t i = 0; i < n; i++)
				if (!inserted[i] && strcmp(PQgetvalue(res, r, 0), serials[i]) == 0) {
					inserted[i] = 1;
					break;
				}
	}
	rc = 0;
out:
	PQclear(res);
	free(arr);
	return rc;
}

int db_reserve_serials(db_store *st, const char *ca, const char *const *serials, size_t n,
		       const char *site, unsigned char *inserted, struct ca_err *err)
{
	return run(st, &st_reserve_pool, ca, serials, n, site, inserted, err);
}

int db_release_serials(db_store *st, const char *ca, const char *const *serials, size_t n,
		       struct ca_err *err)
{
	return run(st, &st_release_pool, ca, serials, n, NULL, NULL, err);
}
