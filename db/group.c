/* Group commit: rows that many threads write at the same time share one
 * transaction, so that one round trip and one WAL flush serve them all.
 *
 * One queue per store and GROUP_SESSIONS committer threads, each with its own
 * PostgreSQL session, started on first use. A caller appends its row (a
 * certificate commit; serials are reserved ahead, 64 at a time, by
 * db/serials.c) and waits on its own condition variable. A committer with nothing in flight
 * takes everything queued (at most GROUP_MAX rows, no serial twice for one
 * statement) and sends, in one pipeline, each statement once for all of its
 * rows (parameter j is the array of every row's value j; the statement
 * returns the serial of each row it affected) followed by one Sync: one
 * implicit transaction, one round trip. Once the server answered the Sync
 * (the transaction is committed) it wakes each caller with its own result.
 * A committer never waits for more rows: an idle one runs a lone row at once;
 * batches form from the rows that arrive while a transaction is in flight.
 *
 * One session, not one per kind or several: on 2 cores, where PostgreSQL and
 * the signing threads share the CPU, a second session bought no certificates
 * per second (the database's CPU per row is the bound, not the WAL flush;
 * measured again after reservations left the group: still no gain).
 *
 * Failures never mix callers' outcomes:
 *   - a statement fails and the session is fine (a constraint, ...): the
 *     server rolled the transaction back; the batch is split in halves and
 *     each half runs again, down to the one row whose error it is;
 *   - no session (cannot connect): nothing was sent; every caller in the
 *     batch receives the error;
 *   - the session is lost once the batch was sent: the outcome is unknown,
 *     every caller in the batch receives an error, never a retry;
 *   - the server refuses for a passing reason (statement or lock timeout,
 *     serialization failure, deadlock, out of resources): rolled back, every
 *     caller in the batch receives the error, without halving.
 *
 * No caller waits long for a database that does not answer: the committer's
 * session is non-blocking, and a batch that has no answer within
 * GROUP_DEADLINE_MS (server-side: statement_timeout, lock_timeout) loses its
 * session (outcome unknown). While the database is known to be down,
 * db_open() fails at once, so queued rows fail fast instead of each waiting
 * for a connect timeout; store errors are marked for Retry-After. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "db_int.h"

#define GROUP_SESSIONS 1
#define GROUP_MAX 500
#define GROUP_MAX_COLS 16   /* parameters of a group statement */
#define GROUP_MAX_STMTS 4   /* statements in one batch */
#define HASH_SLOTS 1024     /* power of two, > 2 * GROUP_MAX */
#define GROUP_DEADLINE_MS 5000 /* one batch, once connected: prepare, send, commit */
/* Every session setting in one string (one round trip). A group statement
 * that joins arrays to a table must do so by primary key: the generic plan
 * made while the table is small (a new installation) would otherwise join
 * by a sequential scan, and keep doing so, every commit reading the whole
 * table, until an autoanalyze replaces it. */
#define GROUP_SESSION_SETUP \
	"SET plan_cache_mode = force_generic_plan; SET statement_timeout = '4s'; " \
	"SET lock_timeout = '2s'; SET enable_seqscan = off; SET enable_hashjoin = off; " \
	"SET enable_mergejoin = off"

#define OID_BYTEA 17
#define OID_TEXT 25

/* One caller's row, on the caller's stack. The committer owns the result
 * fields until it sets done (under the queue's mutex). */
struct greq {
	const struct db_stmt *s;
	const char *const *vals;  /* vals[0] is the serial (text) */
	const int *lens, *fmts;   /* fmts[j] 1: value j is bytes of length lens[j] */
	int affected;             /* the statement returned this row's serial */
	int rc;                   /* 0 or -1 (err set) */
	int done;
	struct ca_err err;
	pthread_cond_t cv;
	struct greq *next;
};

struct committer {
	struct db_group *g;
	pthread_t th;
	int started;
	PGconn *pg;
	unsigned long long prepared; /* bit per enum db_stmt_id, on pg */
	unsigned short slots[HASH_SLOTS];
	struct greq *batch[GROUP_MAX];
};

struct db_group {
	struct db_store *st;      /* for db_open() */
	pthread_mutex_t mu;
	pthread_cond_t work;      /* for committers: rows queued, or stop */
	pthread_cond_t idle;      /* for db_group_free(): the last waiter left */
	struct greq *head, *tail;
	int started, stopping;
	unsigned waiters;         /* callers inside db_group_exec() */
	unsigned long n_batches, n_rows, max_batch;
	struct committer c[GROUP_SESSIONS];
};

static unsigned hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h & (HASH_SLOTS - 1);
}

/* Open addressing over (statement, serial) of reqs: slots hold index + 1.
 * The index of the row with r's statement and serial, or -1 (then, with
 * add >= 0, index add is inserted for it). */
static long hash_find(unsigned short *slots, struct greq *const *reqs, const struct greq *r,
		      long add)
{
	for (unsigned h = hash_str(r->vals[0]);; h = (h + 1) & (HASH_SLOTS - 1)) {
		const struct greq *o;

		if (slots[h] == 0) {
			if (add >= 0)
				slots[h] = (unsigned short)(add + 1);
			return -1;
		}
		o = reqs[slots[h] - 1];
		if (o->s == r->s && strcmp(o->vals[0], r->vals[0]) == 0)
			return slots[h] - 1;
	}
}

static void drop_session(struct committer *c)
{
	PQfinish(c->pg);
	c->pg = NULL;
	c->prepared = 0;
}

static void put32(unsigned char **p, uint32_t v)
{
	(*p)[0] = (unsigned char)(v >> 24);
	(*p)[1] = (unsigned char)(v >> 16);
	(*p)[2] = (unsigned char)(v >> 8);
	(*p)[3] = (unsigned char)v;
	*p += 4;
}

/* Column j of reqs[0..n) as a one-dimensional array in PostgreSQL's binary
 * format (text or bytea elements): no literal is ever built from values.
 * Caller frees *out. 0 or -1 (too large, out of memory). */
static int column_array(struct greq *const *reqs, size_t n, int j, char **out, int *out_len)
{
	int bin = reqs[0]->fmts != NULL && reqs[0]->fmts[j] != 0;
	size_t total = 20 + 4 * n;
	int has_null = 0;
	unsigned char *buf, *p;

	for (size_t i = 0; i < n; i++) {
		const char *v = reqs[i]->vals[j];
		if (v == NULL)
			has_null = 1;
		else
			total += bin ? (size_t)reqs[i]->lens[j] : strlen(v);
	}
	if (total > INT_MAX || (buf = malloc(total)) == NULL)
		return -1;
	p = buf;
	put32(&p, 1);                           /* dimensions */
	put32(&p, (uint32_t)has_null);
	put32(&p, bin ? OID_BYTEA : OID_TEXT);
	put32(&p, (uint32_t)n);                 /* length */
	put32(&p, 1);                           /* lower bound */
	for (size_t i = 0; i < n; i++) {
		const char *v = reqs[i]->vals[j];
		size_t len;
		if (v == NULL) {
			put32(&p, UINT32_MAX);  /* -1: NULL */
			continue;
		}
		len = bin ? (size_t)reqs[i]->lens[j] : strlen(v);
		put32(&p, (uint32_t)len);
		memcpy(p, v, len);
		p += len;
	}
	*out = (char *)buf;
	*out_len = (int)total;
	return 0;
}

/* Send s for reqs[0..n) into the pipeline. 0, -1 (msg set: nothing useful
 * was sent), -2 (the send failed: the session is broken). */
static int send_stmt(struct committer *c, struct greq *const *reqs, size_t n, char *msg,
		     size_t msg_len)
{
	const struct db_stmt *s = reqs[0]->s;
	char *vals[GROUP_MAX_COLS] = { NULL };
	int lens[GROUP_MAX_COLS], fmts[GROUP_MAX_COLS];
	int j, rc = -1;

	if (s->nparams < 1 || s->nparams > GROUP_MAX_COLS) {
		snprintf(msg, msg_len, "%s: %d columns", s->name, s->nparams);
		return -1;
	}
	for (j = 0; j < s->nparams; j++) {
		fmts[j] = 1;
		if (column_array(reqs, n, j, &vals[j], &lens[j]) != 0) {
			snprintf(msg, msg_len, "out of memory for %zu rows", n);
			goto out;
		}
	}
	rc = PQsendQueryPrepared(c->pg, s->name, s->nparams, (const char *const *)vals, lens,
				 fmts, 0) == 1 ? 0 : -2;
out:
	for (j = 0; j < GROUP_MAX_COLS; j++)
		free(vals[j]);
	return rc;
}

enum attempt_rc {
	A_OK,        /* committed; affected set */
	A_STMT,      /* the server refused a statement: nothing committed */
	A_NOT_SENT,  /* no session, or lost before anything was sent */
	A_UNKNOWN,   /* session lost once the batch was sent */
	A_PASSING,   /* refused for a passing reason: nothing committed */
};

/* A refusal that says "not now" rather than "never": statement or lock
 * timeout, serialization failure or deadlock, out of resources. */
static int passing(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state != NULL && (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0 ||
				 strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
				 strncmp(state, "53", 2) == 0);
}

/* A failure that ended the session (or is about to). */
static int session_gone(PGconn *pg, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(pg) != CONNECTION_OK)
		return 1;
	/* 57P01..57P05: administrator or crash shutdown; 08: connection */
	return state != NULL && (strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait, at most until deadline, until everything queued is sent and (with
 * want_result) PQgetResult() would not block. 0, or -1 with msg set: the
 * session broke, or no answer in time (then the store counts the database
 * as down, so that the next batches fail fast instead of each waiting). */
static int await(struct db_store *st, PGconn *pg, long long deadline, int want_result, char *msg,
		 size_t msg_len)
{
	for (;;) {
		int f = PQflush(pg);
		long long left;
		struct pollfd p;

		if (f < 0 || PQsocket(pg) < 0) {
			db_pg_msg(pg, NULL, msg, msg_len);
			return -1;
		}
		if (f == 0 && (!want_result || !PQisBusy(pg)))
			return 0;
		if ((left = deadline - now_ms()) <= 0) {
			snprintf(msg, msg_len, "no answer from PostgreSQL within %d ms", GROUP_DEADLINE_MS);
			db_down(st);
			return -1;
		}
		p.fd = PQsocket(pg);
		p.events = (short)(POLLIN | (f == 1 ? POLLOUT : 0));
		p.revents = 0;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(msg, msg_len, "poll: %s", strerror(errno));
			return -1;
		}
		if ((p.revents & (POLLIN | POLLERR | POLLHUP)) != 0 && PQconsumeInput(pg) == 0) {
			db_pg_msg(pg, NULL, msg, msg_len);
			return -1;
		}
	}
}

/* The results of what was just sent (not in a pipeline), until deadline:
 * the first that failed, else the last. NULL with msg set: no answer in
 * time, or the session broke. */
static PGresult *await_result(struct db_store *st, PGconn *pg, long long deadline, char *msg,
				size_t msg_len)
{
	PGresult *keep = NULL, *r;

	for (;;) {
		if (await(st, pg, deadline, 1, msg, msg_len) != 0) {
			PQclear(keep);
			return NULL;
		}
		if ((r = PQgetResult(pg)) == NULL)
			break;
		if (keep == NULL || (PQresultStatus(keep) == PGRES_COMMAND_OK &&
				     PQresultStatus(r) != PGRES_COMMAND_OK)) {
			PQclear(keep);
			keep = r;
		} else {
			PQclear(r);
		}
	}
	if (keep == NULL)
		snprintf(msg, msg_len, "no result from PostgreSQL");
	return keep;
}

/* A session ready for a pipeline, its statements prepared. */
static enum attempt_rc ready(struct committer *c, struct greq *const *reqs, size_t n,
			     long long deadline, char *msg, size_t msg_len)
{
	struct ca_err cerr = { 0 };
	PGresult *res;

	/* A session the server ended while it was idle is replaced before use:
	 * nothing is lost with it. */
	if (c->pg != NULL && (PQconsumeInput(c->pg) == 0 || PQstatus(c->pg) != CONNECTION_OK))
		drop_session(c);
	if (c->pg == NULL) {
		if ((c->pg = db_open(c->g->st, &cerr)) == NULL) {
			snprintf(msg, msg_len, "%s", cerr.detail);
			return A_NOT_SENT;
		}
		/* The group statements join arrays to tables by primary key: the
		 * generic plan (nested loop, index scan) is right for every batch
		 * size, and planning each call anew would cost more than running it.
		 * A batch takes milliseconds: seconds mean trouble, and every caller
		 * waits for it. */
		if (PQsetnonblocking(c->pg, 1) != 0 || PQsendQuery(c->pg, GROUP_SESSION_SETUP) != 1) {
			db_pg_msg(c->pg, NULL, msg, msg_len);
			drop_session(c);
			return A_NOT_SENT;
		}
		if ((res = await_result(c->g->st, c->pg, deadline, msg, msg_len)) == NULL ||
		    PQresultStatus(res) != PGRES_COMMAND_OK) {
			if (res != NULL)
				db_pg_msg(c->pg, res, msg, msg_len);
			PQclear(res);
			drop_session(c);
			return A_NOT_SENT;
		}
		PQclear(res);
	}
	for (size_t i = 0; i < n; i++) {
		const struct db_stmt *s = reqs[i]->s;
		if (c->prepared & (1ull << s->id))
			continue;
		/* A Parse commits nothing, whatever happened to it. */
		if (PQsendPrepare(c->pg, s->name, s->sql, s->nparams, NULL) != 1 ||
		    (res = await_result(c->g->st, c->pg, deadline, msg, msg_len)) == NULL) {
			if (msg[0] == '\0')
				db_pg_msg(c->pg, NULL, msg, msg_len);
			drop_session(c);
			return A_NOT_SENT;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			enum attempt_rc rc = A_STMT;
			db_pg_msg(c->pg, res, msg, msg_len);
			if (session_gone(c->pg, res)) {
				drop_session(c);
				rc = A_NOT_SENT;
			}
			PQclear(res);
			return rc;
		}
		PQclear(res);
		c->prepared |= 1ull << s->id;
	}
	return A_OK;
}

/* One implicit transaction for reqs[0..n) (sorted by statement): each
 * statement once, then Sync. */
static enum attempt_rc attempt(struct committer *c, struct greq **reqs, size_t n, char *msg,
			       size_t msg_len)
{
	size_t start[GROUP_MAX_STMTS + 1], n_stmts = 0, i;
	long long deadline = now_ms() + GROUP_DEADLINE_MS;
	enum attempt_rc rc;
	int failed = 0, lost = 0, sent, not_now = 0;
	PGresult *res;

	msg[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0 && reqs[i]->s == reqs[i - 1]->s)
			continue;
		if (n_stmts == GROUP_MAX_STMTS) {
			snprintf(msg, msg_len, "more than %d statements in a batch", GROUP_MAX_STMTS);
			return A_STMT;
		}
		start[n_stmts++] = i;
	}
	start[n_stmts] = n;
	if ((rc = ready(c, reqs, n, deadline, msg, msg_len)) != A_OK)
		return rc;
	if (PQenterPipelineMode(c->pg) != 1) {
		db_pg_msg(c->pg, NULL, msg, msg_len);
		drop_session(c);
		return A_NOT_SENT;
	}
	/* Nothing commits without the Sync: a statement that cannot be sent
	 * loses the session, never a row. */
	for (i = 0; i < n_stmts; i++) {
		if ((sent = send_stmt(c, reqs + start[i], start[i + 1] - start[i], msg, msg_len)) != 0) {
			if (sent == -2)
				db_pg_msg(c->pg, NULL, msg, msg_len);
			drop_session(c);
			return sent == -1 ? A_STMT : A_NOT_SENT;
		}
	}
	if (PQpipelineSync(c->pg) != 1) {
		db_pg_msg(c->pg, NULL, msg, msg_len);
		drop_session(c);
		return A_UNKNOWN;
	}
	for (i = 0; i < n; i++)
		reqs[i]->affected = 0;
	/* Each statement's result is followed by NULL; the Sync's ends it all. */
	for (size_t k = 0;;) {
		ExecStatusType rs;

		if (await(c->g->st, c->pg, deadline, 1, msg, msg_len) != 0) {
			lost = 1;
			break;
		}
		if ((res = PQgetResult(c->pg)) == NULL) {
			if (PQstatus(c->pg) != CONNECTION_OK || ++k > n_stmts) {
				lost = 1;
				break;
			}
			continue;
		}
		rs = PQresultStatus(res);
		if (rs == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		if (k >= n_stmts) {
			PQclear(res);
			lost = 1;
			break;
		}
		if (rs == PGRES_TUPLES_OK) {
			struct greq **sub = reqs + start[k];
			size_t m = start[k + 1] - start[k];

			memset(c->slots, 0, sizeof(c->slots));
			for (i = 0; i < m; i++)
				(void)hash_find(c->slots, sub, sub[i], (long)i);
			for (int t = 0; t < PQntuples(res); t++) {
				struct greq key = { .s = sub[0]->s };
				const char *serial = PQgetvalue(res, t, 0);
				long at;

				key.vals = &serial;
				if ((at = hash_find(c->slots, sub, &key, -1)) >= 0)
					sub[at]->affected = 1;
			}
		} else if (rs != PGRES_PIPELINE_ABORTED && !failed) {
			failed = 1;
			db_pg_msg(c->pg, res, msg, msg_len);
			if (session_gone(c->pg, res))
				lost = 1;
			not_now = passing(res);
		}
		PQclear(res);
		if (lost)
			break;
	}
	if (lost || PQexitPipelineMode(c->pg) != 1) {
		if (msg[0] == '\0')
			db_pg_msg(c->pg, NULL, msg, msg_len);
		drop_session(c);
		return A_UNKNOWN;
	}
	/* The server reported the error and rolled the transaction back. */
	return !failed ? A_OK : not_now ? A_PASSING : A_STMT;
}

/* unavailable: the database is down or busy for now (503 + Retry-After). */
static void fail_all(struct greq **reqs, size_t n, int unknown, int unavailable, const char *msg)
{
	for (size_t i = 0; i < n; i++) {
		reqs[i]->rc = -1;
		if (unknown)
			ca_err_set(&reqs[i]->err, CA_E_STORE,
				   "%s: connection lost during the transaction of serial %s (one of %zu), "
				   "outcome unknown: %s", reqs[i]->s->name, reqs[i]->vals[0], n, msg);
		else
			ca_err_set(&reqs[i]->err, CA_E_STORE, "%s: %s", reqs[i]->s->name, msg);
		if (unavailable)
			db_unavailable(&reqs[i]->err);
	}
}

/* Give every row of reqs[0..n) (sorted by statement) its outcome. */
static void run_batch(struct committer *c, struct greq **reqs, size_t n)
{
	char msg[sizeof(((struct ca_err *)0)->detail)];
	int tries = 0;

	for (;;) {
		switch (attempt(c, reqs, n, msg, sizeof(msg))) {
		case A_OK:
			for (size_t i = 0; i < n; i++)
				reqs[i]->rc = 0;
			return;
		case A_UNKNOWN:
			fail_all(reqs, n, 1, 1, msg);
			return;
		case A_PASSING:
			/* Rolled back, and no row's fault: halving would only wait longer. */
			fail_all(reqs, n, 0, 1, msg);
			return;
		case A_NOT_SENT:
			/* Nothing reached the server: once more on a new session. */
			if (tries++ == 0)
				continue;
			fail_all(reqs, n, 0, 1, msg);
			return;
		case A_STMT:
			if (n == 1) {
				fail_all(reqs, n, 0, 0, msg);
				return;
			}
			/* Rolled back: halves until the row at fault is alone. */
			run_batch(c, reqs, n / 2);
			run_batch(c, reqs + n / 2, n - n / 2);
			return;
		}
	}
}

/* By statement, then serial: each statement's rows are contiguous, and
 * concurrent transactions lock rows in the same order. */
static int req_order(const void *a, const void *b)
{
	const struct greq *x = *(struct greq *const *)a, *y = *(struct greq *const *)b;

	if (x->s != y->s)
		return x->s->id < y->s->id ? -1 : 1;
	return strcmp(x->vals[0], y->vals[0]);
}

static void *committer(void *arg)
{
	struct committer *c = arg;
	struct db_group *g = c->g;
	struct greq **batch = c->batch, *r, *prev, *next;
	size_t n;

	pthread_mutex_lock(&g->mu);
	for (;;) {
		while (g->head == NULL && !g->stopping)
			pthread_cond_wait(&g->work, &g->mu);
		if (g->head == NULL)
			break; /* stopping, and everything queued is done */
		/* Everything queued, in order, except a second row with the same
		 * statement and serial: it stays for the next batch, so that each
		 * returned serial names exactly one caller. */
		memset(c->slots, 0, sizeof(c->slots));
		n = 0;
		prev = NULL;
		for (r = g->head; r != NULL; r = next) {
			next = r->next;
			if (n < GROUP_MAX && hash_find(c->slots, batch, r, (long)n) < 0) {
				batch[n++] = r;
				if (prev != NULL)
					prev->next = next;
				else
					g->head = next;
			} else {
				prev = r;
			}
		}
		g->tail = prev;
		/* What is left is for another committer. */
		if (g->head != NULL)
			pthread_cond_signal(&g->work);
		pthread_mutex_unlock(&g->mu);

		qsort(batch, n, sizeof(*batch), req_order);
		run_batch(c, batch, n);

		pthread_mutex_lock(&g->mu);
		g->n_batches++;
		g->n_rows += n;
		if (n > g->max_batch)
			g->max_batch = n;
		/* A woken caller cannot return before this unlock. */
		for (size_t i = 0; i < n; i++) {
			batch[i]->done = 1;
			pthread_cond_signal(&batch[i]->cv);
		}
	}
	pthread_mutex_unlock(&g->mu);
	drop_session(c);
	return NULL;
}

/* Under g->mu, on first use: the committers. Signals go to the threads that
 * expect them, never here. */
static void start(struct db_group *g)
{
	sigset_t all, old;

	g->started = 1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int k = 0; k < GROUP_SESSIONS; k++)
		g->c[k].started = pthread_create(&g->c[k].th, NULL, committer, &g->c[k]) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

struct db_group *db_group_new(struct db_store *st)
{
	struct db_group *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->st = st;
	for (int k = 0; k < GROUP_SESSIONS; k++)
		g->c[k].g = g;
	if (pthread_mutex_init(&g->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&g->work, NULL) != 0)
		goto fail_mu;
	if (pthread_cond_init(&g->idle, NULL) != 0)
		goto fail_work;
	return g;
fail_work:
	pthread_cond_destroy(&g->work);
fail_mu:
	pthread_mutex_destroy(&g->mu);
fail:
	free(g);
	return NULL;
}

void db_group_free(struct db_group *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stopping = 1;
	pthread_cond_broadcast(&g->work);
	pthread_mutex_unlock(&g->mu);
	/* The committers finish what is queued before they exit. */
	for (int k = 0; k < GROUP_SESSIONS; k++)
		if (g->c[k].started)
			pthread_join(g->c[k].th, NULL);
	pthread_mutex_lock(&g->mu);
	while (g->waiters > 0)
		pthread_cond_wait(&g->idle, &g->mu);
	pthread_mutex_unlock(&g->mu);
	pthread_cond_destroy(&g->idle);
	pthread_cond_destroy(&g->work);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

int db_group_exec(struct db_store *st, const struct db_stmt *s, const char *const *vals,
		  const int *lens, const int *fmts, struct ca_err *err)
{
	struct greq r = { .s = s, .vals = vals, .lens = lens, .fmts = fmts, .rc = -1 };
	struct db_group *g = st->group;

	if (g == NULL || vals[0] == NULL)
		return -2;
	for (int j = 0; fmts != NULL && j < s->nparams; j++)
		if (fmts[j] != 0 && vals[j] != NULL && lens[j] < 0)
			return -2;
	if (pthread_cond_init(&r.cv, NULL) != 0)
		return -2;
	pthread_mutex_lock(&g->mu);
	if (g->stopping) {
		pthread_mutex_unlock(&g->mu);
		pthread_cond_destroy(&r.cv);
		ca_err_set(err, CA_E_STORE, "%s: the store is closing", s->name);
		return -1;
	}
	if (!g->started)
		start(g);
	if (!g->c[0].started) {
		/* No thread to commit with: the caller's own session it is. */
		pthread_mutex_unlock(&g->mu);
		pthread_cond_destroy(&r.cv);
		return -2;
	}
	if (g->tail != NULL)
		g->tail->next = &r;
	else
		g->head = &r;
	g->tail = &r;
	g->waiters++;
	pthread_cond_signal(&g->work);
	while (!r.done)
		pthread_cond_wait(&r.cv, &g->mu);
	if (--g->waiters == 0 && g->stopping)
		pthread_cond_broadcast(&g->idle);
	pthread_mutex_unlock(&g->mu);
	pthread_cond_destroy(&r.cv);
	if (r.rc != 0) {
		ca_err_set(err, r.err.code, "%s", r.err.detail);
		if (r.err.retry_after != 0)
			db_unavailable(err);
		return -1;
	}
	return r.affected;
}

void db_group_stats(struct db_store *st, unsigned long *batches, unsigned long *rows,
		    unsigned long *max_batch)
{
	struct db_group *g = st->group;

	*batches = *rows = *max_batch = 0;
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	*batches = g->n_batches;
	*rows = g->n_rows;
	*max_batch = g->max_batch;
	pthread_mutex_unlock(&g->mu);
}
