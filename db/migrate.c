/* Schema migrations, compiled in (build/gen/migrations.c), applied at start
 * under an advisory lock so several nodes may start together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

/* "mintca" in ASCII, then 1. Other db_lock() users must pick other keys. */
#define MIGRATE_LOCK_KEY 0x6d696e7463610001L

static int apply(struct db_conn *c, const struct db_migration *m, struct ca_err *err)
{
	char ver[16], what[96], msg[200], why[200];
	const char *vals[2] = { ver, m->name };
	PGresult *res = NULL;
	PGTransactionStatusType ts;
	int rc = -1;

	snprintf(ver, sizeof(ver), "%d", m->version);
	snprintf(what, sizeof(what), "migration %s", m->name);
	if (db_simple(c, "BEGIN", what, err) != 0 || db_simple(c, m->sql, what, err) != 0)
		goto out;
	res = PQexecParams(c->pg, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
			   2, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_pg_msg(c->pg, res, msg, sizeof(msg));
		(void)db_conn_recover(c, why, sizeof(why));
		ca_err_set(err, CA_E_STORE, "%s: record: %s%s", what, msg, why);
		goto out;
	}
	if (db_simple(c, "COMMIT", what, err) != 0)
		goto out;
	rc = 0;
out:
	ts = PQtransactionStatus(c->pg);
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	PQclear(res);
	return rc;
}

/* Marks in applied[] the compiled-in migrations the database has; refuses a
 * database that has one this build does not know. */
static int read_applied(struct db_conn *c, unsigned char *applied, struct ca_err *err)
{
	const struct db_migration *last = &db_migrations[db_n_migrations - 1];
	PGresult *res;
	char msg[200], why[200];
	int rc = -1;

	res = PQexec(c->pg, "SELECT version, name FROM schema_migrations ORDER BY version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_pg_msg(c->pg, res, msg, sizeof(msg));
		(void)db_conn_recover(c, why, sizeof(why));
		ca_err_set(err, CA_E_STORE, "read schema_migrations: %s%s", msg, why);
		goto out;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		long v = strtol(PQgetvalue(res, r, 0), NULL, 10);
		const char *name = PQgetvalue(res, r, 1);
		size_t i;

		if (v > last->version) {
			ca_err_set(err, CA_E_STORE,
				   "database schema has migration %ld (%s), newer than this build's latest "
				   "(%s): refusing to run an older mintcad on it", v, name, last->name);
			goto out;
		}
		for (i = 0; i < db_n_migrations && db_migrations[i].version != v; i++)
			;
		if (i == db_n_migrations || strcmp(db_migrations[i].name, name) != 0) {
			ca_err_set(err, CA_E_STORE,
				   "database schema has migration %ld (%s) that this build does not have",
				   v, name);
			goto out;
		}
		applied[i] = 1;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int db_migrate(db_store *st, struct ca_err *err)
{
	unsigned char *applied = NULL;
	struct db_conn *c;
	int rc = -1, locked = 0;

	if (db_n_migrations == 0) {
		ca_err_set(err, CA_E_INTERNAL, "no migrations compiled in");
		goto out;
	}
	for (size_t i = 1; i < db_n_migrations; i++) {
		if (db_migrations[i].version <= db_migrations[i - 1].version) {
			ca_err_set(err, CA_E_INTERNAL, "compiled-in migrations out of order at %s",
				   db_migrations[i].name);
			goto out;
		}
	}
	if ((applied = calloc(db_n_migrations, 1)) == NULL) {
		ca_err_set(err, CA_E_STORE, "migrate: out of memory");
		goto out;
	}
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	if (db_lock(st, MIGRATE_LOCK_KEY, err) != 0)
		goto out;
	locked = 1;
	if (db_simple(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 "version int PRIMARY KEY, name text NOT NULL, "
			 "applied_at timestamptz NOT NULL DEFAULT now())",
		      "create schema_migrations", err) != 0)
		goto out;
	if (read_applied(c, applied, err) != 0)
		goto out;
	for (size_t i = 0; i < db_n_migrations; i++) {
		if (!applied[i] && apply(c, &db_migrations[i], err) != 0)
			goto out;
	}
	rc = 0;
out:
	/* A failed unlock only fails a migration that otherwise worked. */
	if (locked && db_unlock(st, MIGRATE_LOCK_KEY, rc == 0 ? err : NULL) != 0)
		rc = -1;
	free(applied);
	return rc;
}
