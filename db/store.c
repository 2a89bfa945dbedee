/* Store lifetime, one PostgreSQL session per calling thread, and running
 * prepared statements with one reconnect. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "db_int.h"

/* While the database is down, connection attempts wait this long after a
 * failure, doubling up to the maximum: 100 requests then cost one connect
 * timeout, not 100, and service resumes within the maximum of its return. */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 2000

static void ignore_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

void db_pg_msg(PGconn *pg, const PGresult *res, char *buf, size_t n)
{
	const char *m = NULL;
	size_t len = 0;

	/* The primary message only: DETAIL may quote whole rows. */
	if (res != NULL) {
		m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		if (m == NULL)
			m = PQresultErrorMessage(res);
	}
	if ((m == NULL || *m == '\0') && pg != NULL)
		m = PQerrorMessage(pg);
	if (m == NULL || *m == '\0')
		m = "unknown error (out of memory?)";
	/* libpq messages span lines; a log line must not */
	for (; *m != '\0' && len + 1 < n; m++) {
		char ch = (*m == '\n' || *m == '\r' || *m == '\t') ? ' ' : *m;
		if (ch != ' ' || (len > 0 && buf[len - 1] != ' '))
			buf[len++] = ch;
	}
	while (len > 0 && buf[len - 1] == ' ')
		len--;
	if (n > 0)
		buf[len] = '\0';
}

/* Only libpq's connection messages reach err: they name host, user and
 * database, never the password. */
PGconn *db_connect(const char *dsn, struct ca_err *err)
{
	/* Keywords before "dbname" are defaults the DSN may override. A worker
	 * never waits long for a database that does not answer: connecting takes
	 * at most 3 s (per host), and over TCP a dead peer is noticed within
	 * about 10 s (keepalives; unacknowledged data: tcp_user_timeout). */
	static const char *const kw[] = {
		"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "tcp_user_timeout", "dbname", "fallback_application_name", NULL
	};
	const char *const val[] = { "3", "1", "5", "2", "3", "10000", dsn, "mintcad", NULL };
	char msg[200];
	PGconn *pg;

	if ((pg = PQconnectdbParams(kw, val, 1)) == NULL) {
		ca_err_set(err, CA_E_STORE, "cannot connect to PostgreSQL: out of memory");
		return NULL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		db_pg_msg(pg, NULL, msg, sizeof(msg));
		ca_err_set(err, CA_E_STORE, "cannot connect to PostgreSQL: %s", msg);
		PQfinish(pg);
		return NULL;
	}
	/* The default processor writes NOTICEs to stderr. */
	PQsetNoticeProcessor(pg, ignore_notice, NULL);
	return pg;
}

void db_unavailable(struct ca_err *err)
{
	if (err != NULL && err->code == CA_E_STORE && err->retry_after == 0)
		err->retry_after = DB_RETRY_AFTER_S;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* May this thread try to connect? 1 yes, 2 yes as the one probe (report
 * with connected()), 0 no: the database is known to be down. */
static int may_connect(struct db_store *st)
{
	long long until = atomic_load(&st->down_until_ms);
	int idle = 0;

	if (until == 0)
		return 1;
	if (now_ms() < until)
		return 0;
	return atomic_compare_exchange_strong(&st->probing, &idle, 1) ? 2 : 0;
}

/* The outcome of a connection attempt allowed by may_connect() (how). */
static void connected(struct db_store *st, int how, int ok)
{
	if (ok) {
		atomic_store(&st->down_streak, 0);
		atomic_store(&st->down_until_ms, 0);
	} else {
		unsigned streak = atomic_fetch_add(&st->down_streak, 1);
		long long wait = BACKOFF_MIN_MS << (streak < 4 ? streak : 4);
		atomic_store(&st->down_until_ms, now_ms() + (wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS));
	}
	if (how == 2)
		atomic_store(&st->probing, 0);
}

void db_down(struct db_store *st)
{
	connected(st, 1, 0);
}

static void known_down(struct ca_err *err)
{
	ca_err_set(err, CA_E_STORE, "PostgreSQL unavailable: the last connection attempt failed "
		   "(next attempt within %d ms)", BACKOFF_MAX_MS);
	db_unavailable(err);
}

PGconn *db_open(struct db_store *st, struct ca_err *err)
{
	int how = may_connect(st);
	PGconn *pg;

	if (how == 0) {
		known_down(err);
		return NULL;
	}
	pg = db_connect(st->dsn, err);
	connected(st, how, pg != NULL);
	if (pg == NULL)
		db_unavailable(err);
	return pg;
}

/* A failure that says the database or the session is gone or overloaded
 * for now, not that the statement is wrong: SQLSTATE classes 08
 * (connection), 53 (resources), 57 (operator intervention, including
 * statement_timeout 57014), lock_timeout 55P03, serialization 40001 and
 * deadlock 40P01. */
static int transient(PGconn *pg, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(pg) != CONNECTION_OK || state == NULL)
		return 1;
	return strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	       strncmp(state, "57", 2) == 0 || strcmp(state, "55P03") == 0 ||
	       strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0;
}

/* Thread exit: the session goes with the thread. db_store_close() must not
 * race a thread that used the store while it exits: join such threads first. */
static void conn_drop(void *p)
{
	struct db_conn *c = p;
	struct db_store *st = c->st;

	pthread_mutex_lock(&st->mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		st->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&st->mu);
	PQfinish(c->pg);
	free(c);
}

struct db_conn *db_conn_get(struct db_store *st, struct ca_err *err)
{
	struct db_conn *c = pthread_getspecific(st->key);

	if (c != NULL) {
		/* Never let a statement join a transaction some failure left open. */
		PGTransactionStatusType ts = PQtransactionStatus(c->pg);
		if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
			PQclear(PQexec(c->pg, "ROLLBACK"));
		return c;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ca_err_set(err, CA_E_STORE, "cannot connect to PostgreSQL: out of memory");
		return NULL;
	}
	c->st = st;
	if ((c->pg = db_open(st, err)) == NULL) {
		free(c);
		return NULL;
	}
	if (pthread_setspecific(st->key, c) != 0) {
		ca_err_set(err, CA_E_STORE, "cannot keep a PostgreSQL connection for this thread");
		PQfinish(c->pg);
		free(c);
		return NULL;
	}
	pthread_mutex_lock(&st->mu);
	c->next = st->conns;
	if (st->conns != NULL)
		st->conns->prev = c;
	st->conns = c;
	st->n_opened++;
	pthread_mutex_unlock(&st->mu);
	return c;
}

int db_conn_recover(struct db_conn *c, char *msg, size_t n)
{
	char why[160];
	int had_locks = c->n_locks > 0;

	int how;

	msg[0] = '\0';
	if (PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	if ((how = may_connect(c->st)) == 0) {
		snprintf(msg, n, "; PostgreSQL unavailable, next attempt within %d ms", BACKOFF_MAX_MS);
		return 0;
	}
	PQreset(c->pg);
	connected(c->st, how, PQstatus(c->pg) == CONNECTION_OK);
	/* A new session: nothing prepared, no advisory lock held. */
	c->prepared = 0;
	c->n_locks = 0;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		db_pg_msg(c->pg, NULL, why, sizeof(why));
		snprintf(msg, n, "; reconnect failed: %s", why);
		return 0;
	}
	if (had_locks) {
		snprintf(msg, n, "; reconnected, but this thread's advisory locks were lost");
		return 0;
	}
	c->recovered = 1;
	return 1;
}

static PGresult *exec_once(struct db_conn *c, const struct db_stmt *s, const char *const *vals,
			   const int *lens, const int *fmts, int result_binary)
{
	unsigned long long bit = 1ull << s->id;
	PGresult *res;

	if ((c->prepared & bit) == 0) {
		res = PQprepare(c->pg, s->name, s->sql, s->nparams, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		c->prepared |= bit;
	}
	return PQexecPrepared(c->pg, s->name, s->nparams, vals, lens, fmts, result_binary);
}

PGresult *db_exec(struct db_conn *c, const struct db_stmt *s, const char *const *vals,
		  const int *lens, const int *fmts, int result_binary, int retry,
		  struct ca_err *err)
{
	char msg[200], why[200];
	ExecStatusType rs;
	PGresult *res;

	int tr = 0;

	for (int attempt = 0;; attempt++) {
		res = exec_once(c, s, vals, lens, fmts, result_binary);
		rs = PQresultStatus(res);
		if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK)
			return res;
		db_pg_msg(c->pg, res, msg, sizeof(msg));
		tr = transient(c->pg, res);
		PQclear(res);
		if (!db_conn_recover(c, why, sizeof(why)) || !retry || attempt > 0)
			break;
	}
	ca_err_set(err, CA_E_STORE, "%s: %s%s", s->name, msg, why);
	if (tr)
		db_unavailable(err);
	return NULL;
}

int db_simple(struct db_conn *c, const char *sql, const char *what, struct ca_err *err)
{
	char msg[200], why[200];
	PGresult *res = PQexec(c->pg, sql);
	ExecStatusType rs = PQresultStatus(res);
	int rc = -1;

	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK && rs != PGRES_EMPTY_QUERY) {
		int tr = transient(c->pg, res);
		db_pg_msg(c->pg, res, msg, sizeof(msg));
		(void)db_conn_recover(c, why, sizeof(why));
		ca_err_set(err, CA_E_STORE, "%s: %s%s", what, msg, why);
		if (tr)
			db_unavailable(err);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

db_store *db_store_open(const char *dsn, struct ca_err *err)
{
	struct db_store *st, *ret = NULL;
	PQconninfoOption *opts;
	char *perr = NULL;

	if (dsn == NULL) {
		ca_err_set(err, CA_E_CONFIG, "no PostgreSQL DSN given");
		return NULL;
	}
	/* libpq's syntax errors may quote the password: say only where it failed. */
	if ((opts = PQconninfoParse(dsn, &perr)) == NULL) {
		PQfreemem(perr);
		ca_err_set(err, CA_E_CONFIG, "invalid PostgreSQL DSN (connection string syntax)");
		return NULL;
	}
	PQconninfoFree(opts);
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		ca_err_set(err, CA_E_STORE, "out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&st->mu, NULL) != 0) {
		free(st);
		ca_err_set(err, CA_E_STORE, "cannot create a mutex");
		return NULL;
	}
	if (pthread_key_create(&st->key, conn_drop) != 0) {
		pthread_mutex_destroy(&st->mu);
		free(st);
		ca_err_set(err, CA_E_STORE, "no thread-specific key left");
		return NULL;
	}
	/* From here db_store_close() undoes everything. */
	if ((st->dsn = strdup(dsn)) == NULL) {
		ca_err_set(err, CA_E_STORE, "out of memory");
		goto out;
	}
	/* Check the DSN now; the session stays as this thread's. */
	if (db_conn_get(st, err) == NULL)
		goto out;
	/* Its committer threads start on first use. */
	if ((st->group = db_group_new(st)) == NULL) {
		ca_err_set(err, CA_E_STORE, "out of memory");
		goto out;
	}
	ret = st;
	st = NULL;
out:
	db_store_close(st);
	return ret;
}

void db_store_close(db_store *st)
{
	struct db_conn *c, *next;

	if (st == NULL)
		return;
	/* Calls still waiting on a committer get their outcome first. */
	db_group_free(st->group);
	st->group = NULL;
	/* After this no exiting thread runs conn_drop() on this store. */
	pthread_key_delete(st->key);
	pthread_mutex_lock(&st->mu);
	for (c = st->conns; c != NULL; c = next) {
		next = c->next;
		PQfinish(c->pg);
		free(c);
	}
	st->conns = NULL;
	pthread_mutex_unlock(&st->mu);
	pthread_mutex_destroy(&st->mu);
	if (st->dsn != NULL) {
		explicit_bzero(st->dsn, strlen(st->dsn));
		free(st->dsn);
	}
	free(st);
}

void db_store_set_group_commit(db_store *st, int on)
{
	st->direct = !on;
}

static const struct db_stmt st_lock = {
	DB_S_LOCK, "advisory_lock", "SELECT pg_advisory_lock($1::bigint)", 1
};
static const struct db_stmt st_unlock = {
	DB_S_UNLOCK, "advisory_unlock", "SELECT pg_advisory_unlock($1::bigint)", 1
};

/* Run an advisory lock statement for key on this thread's session. */
static PGresult *run_lock(db_store *st, const struct db_stmt *s, long key, int retry,
			  struct db_conn **c, struct ca_err *err)
{
	char k[24];
	const char *vals[1] = { k };

	snprintf(k, sizeof(k), "%ld", key);
	if ((*c = db_conn_get(st, err)) == NULL)
		return NULL;
	return db_exec(*c, s, vals, NULL, NULL, 0, retry, err);
}

int db_lock(db_store *st, long key, struct ca_err *err)
{
	struct db_conn *c;
	/* Taking it again on a new session is safe; db_conn_recover() refuses
	 * when the lost session held other locks. */
	PGresult *res = run_lock(st, &st_lock, key, 1, &c, err);

	if (res == NULL)
		return -1;
	c->n_locks++;
	PQclear(res);
	return 0;
}

int db_unlock(db_store *st, long key, struct ca_err *err)
{
	struct db_conn *c;
	PGresult *res = run_lock(st, &st_unlock, key, 0, &c, err);
	int rc = -1;

	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		ca_err_set(err, CA_E_STORE, "advisory lock %ld was not held by this session", key);
		goto out;
	}
	if (c->n_locks > 0)
		c->n_locks--;
	rc = 0;
out:
	PQclear(res);
	return rc;
}
