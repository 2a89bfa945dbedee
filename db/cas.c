/* CA certificates, stored as DER by name. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

static const struct db_stmt st_ca_get = {
	DB_S_CA_GET, "ca_get", "SELECT cert_der, parent, key_label FROM cas WHERE name = $1", 1
};

static const struct db_stmt st_ca_put = {
	DB_S_CA_PUT, "ca_put",
	"INSERT INTO cas (name, parent, key_label, cert_der) VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (name) DO NOTHING",
	4
};

/* The CA's row (cert_der, parent, key_label) in *res, binary: 0 found,
 * 1 not found, -1 error. */
static int ca_row(db_store *st, const char *name, PGresult **res, struct ca_err *err)
{
	const char *vals[1] = { name };
	struct db_conn *c;

	*res = NULL;
	if (name == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "ca_get: no CA name");
		return -1;
	}
	if ((c = db_conn_get(st, err)) == NULL)
		return -1;
	/* binary result: the bytea arrives as its bytes, text as its bytes */
	if ((*res = db_exec(c, &st_ca_get, vals, NULL, NULL, 1, 1, err)) == NULL)
		return -1;
	return PQntuples(*res) == 0 ? 1 : 0;
}

/* Column col of the row as a C string into buf[len] ("" when NULL). */
static void text_col(const PGresult *res, int col, char *buf, size_t len)
{
	int n = PQgetisnull(res, 0, col) ? 0 : PQgetlength(res, 0, col);

	if ((size_t)n >= len)
		n = (int)len - 1;
	memcpy(buf, PQgetvalue(res, 0, col), (size_t)n);
	buf[n] = '\0';
}

int db_ca_get(db_store *st, const char *name, unsigned char **der, size_t *len,
	      struct ca_err *err)
{
	return db_ca_get_parent(st, name, der, len, NULL, 0, err);
}

int db_ca_key_label(db_store *st, const char *name, char *label, size_t len, struct ca_err *err)
{
	PGresult *res;
	int rc = ca_row(st, name, &res, err);

	if (rc == 0 && PQgetisnull(res, 0, 2))
		rc = 1;
	if (rc == 0)
		text_col(res, 2, label, len);
	PQclear(res);
	return rc;
}

int db_ca_get_parent(db_store *st, const char *name, unsigned char **der, size_t *len,
		     char *parent, size_t plen, struct ca_err *err)
{
	PGresult *res;
	unsigned char *p;
	int rc = ca_row(st, name, &res, err), n;

	*der = NULL;
	*len = 0;
	if (rc != 0)
		goto out;
	rc = -1;
	n = PQgetlength(res, 0, 0);
	if ((p = malloc(n > 0 ? (size_t)n : 1)) == NULL) {
		ca_err_set(err, CA_E_STORE, "ca_get: out of memory");
		goto out;
	}
	memcpy(p, PQgetvalue(res, 0, 0), (size_t)n);
	if (parent != NULL && plen > 0)
		text_col(res, 1, parent, plen);
	*der = p;
	*len = (size_t)n;
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int db_ca_put(db_store *st, const char *name, const char *parent, const char *key_label,
	      const unsigned char *der, size_t len, struct ca_err *err)
{
	const char *vals[4] = { name, parent, key_label, (const char *)der };
	const int lens[4] = { 0, 0, 0, (int)len };
	const int fmts[4] = { 0, 0, 0, 1 };
	struct db_conn *c;
	PGresult *res = NULL;
	int rc = -1;

	if (name == NULL || der == NULL || len == 0 || len > INT_MAX) {
		ca_err_set(err, CA_E_INTERNAL, "ca_put: no CA name or certificate");
		goto out;
	}
	if ((c = db_conn_get(st, err)) == NULL)
		goto out;
	/* Not run again after a reconnect: a lost first insert would turn
	 * into a false "already exists". */
	if ((res = db_exec(c, &st_ca_put, vals, lens, fmts, 0, 0, err)) == NULL)
		goto out;
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		ca_err_set(err, CA_E_STORE, "ca_put: a CA named '%s' is already in the store", name);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}
