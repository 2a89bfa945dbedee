/* Serials reserved ahead of use (ca-core/serial_pool.c): one serial_blocks
 * row per fill, and the settling of blocks once their serials are used or
 * given back (migration 005). */
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

/* Not checked against other blocks or certificates here: that costs more
 * than the certificate's own insert (arrays overlap by comparing every pair).
 * Serials carry 71 random bits or more, and the certificates primary key
 * refuses a commit that would use one twice. */
static const struct db_stmt st_reserve = {
	DB_S_RESERVE_POOL, "reserve_block",
	"INSERT INTO serial_blocks (ca, serials) VALUES ($1, $2::text[]) RETURNING id::text",
	2
};

/* $1 the blocks, $2 serials given back unused. A block is deleted when each
 * of its serials is given back or has its certificate; otherwise the given
 * back ones leave it, and what stays are serials that may have been signed
 * and were never committed (the view reserved_serials). The commits seen
 * are those done before the statement began: one still under way keeps its
 * block for a later settle. Returns the ids deleted. */
static const struct db_stmt st_settle = {
	DB_S_SETTLE_BLOCKS, "settle_blocks",
	"WITH d AS (DELETE FROM serial_blocks b WHERE b.id = ANY($1::text[]::uuid[]) "
	"AND NOT EXISTS (SELECT 1 FROM unnest(b.serials) AS s (serial) "
	"WHERE s.serial <> ALL($2::text[]) AND NOT EXISTS "
	"(SELECT 1 FROM certificates c WHERE c.serial = s.serial AND c.ca = b.ca)) "
	"RETURNING b.id), "
	"u AS (UPDATE serial_blocks b SET serials = ARRAY(SELECT s FROM unnest(b.serials) AS s "
	"WHERE s <> ALL($2::text[])) "
	"WHERE b.id = ANY($1::text[]::uuid[]) AND b.serials && $2::text[] "
	"AND b.id NOT IN (SELECT id FROM d)) "
	"SELECT id::text FROM d",
	2
};

int db_reserve_serials(db_store *st, const char *ca, const char *const *serials, size_t n,
		       char block_id[37], struct ca_err *err)
{
	struct db_conn *c;
	PGresult *res = NULL;
	char *arr = NULL;
	int arr_len = 0, rc = -1;

	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	if (n == 0 || db_text_array(serials, n, &arr, &arr_len) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "reserve_block: no memory for %zu serials", n);
		return -1;
	}
	const char *vals[2] = { ca, arr };
	const int lens[2] = { 0, arr_len }, fmts[2] = { 0, 1 };
	/* Safe to run again after a reconnect: a block the lost attempt made is
	 * never used; it stays, as a crash would leave it. */
	if ((res = db_exec(c, &st_reserve, vals, lens, fmts, 0, 1, err)) == NULL)
		goto out;
	if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 36) {
		ca_err_set(err, CA_E_STORE, "reserve_block: no block id returned");
		goto out;
	}
	memcpy(block_id, PQgetvalue(res, 0, 0), 37);
	rc = 0;
out:
	PQclear(res);
	free(arr);
	return rc;
}

int db_settle_serial_blocks(db_store *st, const char *const *blocks, size_t n_blocks,
			    const char *const *released, size_t n_released, unsigned char *deleted,
			    struct ca_err *err)
{
	struct db_conn *c;
	PGresult *res = NULL;
	char *ids = NULL, *rel = NULL;
	int ids_len = 0, rel_len = 0, rc = -1;

	memset(deleted, 0, n_blocks);
	if (n_blocks == 0)
		return 0;
	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	if (db_text_array(blocks, n_blocks, &ids, &ids_len) != 0 ||
	    db_text_array(released, n_released, &rel, &rel_len) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "settle_blocks: no memory for %zu blocks", n_blocks);
		goto out;
	}
	const char *vals[2] = { ids, rel };
	const int lens[2] = { ids_len, rel_len }, fmts[2] = { 1, 1 };
	/* Idempotent: safe to run again after a reconnect. */
	if ((res = db_exec(c, &st_settle, vals, lens, fmts, 0, 1, err)) == NULL)
		goto out;
	for (int r = 0; r < PQntuples(res); r++)
		for (size_t i = 0; i < n_blocks; i++)
			if (!deleted[i] && strcmp(PQgetvalue(res, r, 0), blocks[i]) == 0) {
				deleted[i] = 1;
				break;
			}
	rc = 0;
out:
	PQclear(res);
	free(ids);
	free(rel);
	return rc;
}
