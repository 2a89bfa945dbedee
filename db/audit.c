/* Audit rows for actions that change no certificate row themselves (a CRL
 * published on an operator's request, ...). Issuance and revocation write
 * theirs in their own transactions (db/certs.c, db/revoke.c). */
#include "db_int.h"

static const struct db_stmt st_note = {
	DB_S_AUDIT_NOTE, "audit_note",
	"INSERT INTO audit (action, ca, actor, protocol, detail) VALUES ($1, $2, $3, $4, $5::jsonb)",
	5
};

int db_audit_note(db_store *st, const char *action, const char *ca, const char *actor,
		  const char *protocol, const char *detail_json, struct ca_err *err)
{
	const char *vals[5] = { action, ca, actor, protocol, detail_json };
	struct db_conn *c;
	PGresult *res;

	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	/* Not retried after a reconnect: a lost INSERT may have happened. */
	if ((res = db_exec(c, &st_note, vals, NULL, NULL, 0, 0, err)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}
