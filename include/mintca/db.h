/* The PostgreSQL store. One connection per calling thread, opened lazily;
 * every statement is prepared once per connection. Knows nothing of X.509:
 * certificates arrive as DER bytes plus the columns to index. */
#ifndef MINTCA_DB_H
#define MINTCA_DB_H

#include <stddef.h>
#include <time.h>
#include "mintca/err.h"

typedef struct db_store db_store;

/* Connect (to check the DSN) and return the store. Caller frees with
 * db_store_close(). NULL on error. */
db_store *db_store_open(const char *dsn, struct ca_err *err);
/* Closes every connection the store opened. Call once no thread uses it. */
void db_store_close(db_store *st);
/* Group commit (the default, on): db_commit_cert()
 * calls made at the same time by different threads share one transaction
 * (one WAL flush), on committer threads with their own sessions; each call
 * still returns only once its own row is committed or has failed. Off: each
 * call is its own transaction on the calling thread's session. Set it before
 * other threads use the store. */
void db_store_set_group_commit(db_store *st, int on);
/* Group commit so far: transactions, rows, and the largest batch (all 0
 * when it is off or unused). For benchmarks and tests. */
void db_group_stats(db_store *st, unsigned long *batches, unsigned long *rows,
		    unsigned long *max_batch);

/* Apply the migrations in db/migrations/ not yet applied, under an advisory
 * lock so several nodes may start together. 0 or -1. */
int db_migrate(db_store *st, struct ca_err *err) __attribute__((warn_unused_result));

/* A session-level advisory lock on this thread's connection (e.g. for
 * first-start CA creation by several nodes). 0 or -1. */
int db_lock(db_store *st, long key, struct ca_err *err) __attribute__((warn_unused_result));
int db_unlock(db_store *st, long key, struct ca_err *err);

/* Reserve n serials of a CA ahead of use: one serial_blocks row, committed
 * before it returns; block_id receives its id (a UUID). 0 or -1 (then none may
 * be used). */
int db_reserve_serials(db_store *st, const char *ca, const char *const *serials, size_t n,
		       char block_id[37], struct ca_err *err) __attribute__((warn_unused_result));
/* Settle blocks[0..n_blocks): released[0..n_released) were never signed and
 * leave their blocks; a block whose every serial left it or has its
 * certificate is deleted (deleted[i] = 1). What stays of a block are serials
 * perhaps signed and never committed. 0 or -1. */
int db_settle_serial_blocks(db_store *st, const char *const *blocks, size_t n_blocks,
			    const char *const *released, size_t n_released, unsigned char *deleted,
			    struct ca_err *err);

struct db_cert_row {
	const char *serial_hex;   /* lower-case hex, no leading zeros beyond one byte */
	const char *ca;           /* issuing CA name */
	const char *subject;      /* RFC 2253 text */
	const char *const *sans;  /* "DNS:x", "IP:x", "URI:x", "email:x" */
	size_t n_sans;
	time_t not_before, not_after;
	const char *profile;
	const char *requester;    /* who asked, e.g. "basic:factory" */
	const char *protocol;     /* "est", "cli", ... */
	const unsigned char *der;
	size_t der_len;
	const char *renewed_serial; /* serial this one renews, or NULL */
	unsigned crl_shard;       /* partitioned CRLs: its shard, 0 = none */
};

/* Insert the certificate row of a reserved serial and its audit row, in one
 * transaction. 0 or -1 (then nothing was written). */
int db_commit_cert(db_store *st, const struct db_cert_row *row, struct ca_err *err)
	__attribute__((warn_unused_result));

/* CA certificates. Returns 0 found (*der malloc'd, caller frees), 1 not
 * found, -1 error. */
int db_ca_get(db_store *st, const char *name, unsigned char **der, size_t *len,
	      struct ca_err *err) __attribute__((warn_unused_result));
/* Like db_ca_get, and the parent's name into parent[plen] ("" for a root). */
int db_ca_get_parent(db_store *st, const char *name, unsigned char **der, size_t *len,
		     char *parent, size_t plen, struct ca_err *err) __attribute__((warn_unused_result));
/* The key label recorded with a CA, into label[len]. 0, 1 none, -1 error. */
int db_ca_key_label(db_store *st, const char *name, char *label, size_t len, struct ca_err *err);
/* Insert a CA certificate. parent may be NULL (root). 0 or -1. */
int db_ca_put(db_store *st, const char *name, const char *parent,
	      const char *key_label, const unsigned char *der, size_t len,
	      struct ca_err *err) __attribute__((warn_unused_result));

/* The profile an issued certificate of this CA was issued under, into
 * profile[len]. Returns 0 found, 1 no such issued certificate, -1 error. */
int db_cert_profile(db_store *st, const char *ca, const char *serial_hex, char *profile,
		    size_t len, struct ca_err *err) __attribute__((warn_unused_result));

/* Count certificates in state 'issued' (for tests and health). -1 on error. */
long long db_cert_count(db_store *st, struct ca_err *err);

/* One rate limit: at most `limit` takes per fixed window of window_s seconds
 * (windows aligned to the Unix epoch, on the database clock), counted under
 * `key` (e.g. "credential:basic:factory", "profile:device"). A key must always
 * come with the same window_s: give a per-minute and a per-day limit of one
 * requester two keys. Limits above INT_MAX count as INT_MAX. */
struct db_rate { const char *key; unsigned limit; unsigned window_s; };
/* Take one unit from every limit in rates[0..n), all or none, in one
 * transaction. Returns 0 taken; 1 a limit is reached (nothing taken: *which is
 * its index, *retry_after_s the seconds until its window ends, at least 1);
 * -1 error (CA_E_STORE; CA_E_INTERNAL for a NULL key or window_s 0). which and
 * retry_after_s may be NULL. n == 0 takes nothing and returns 0; limit 0 is
 * never allowed (*retry_after_s is then window_s). Counters are committed
 * asynchronously: a database crash may forget the last fraction of a second
 * of takes, and a connection lost during COMMIT may count a take twice,
 * never none. */
int db_rate_take(db_store *st, const struct db_rate *rates, size_t n, size_t *which,
		 unsigned *retry_after_s, struct ca_err *err) __attribute__((warn_unused_result));

/* --- Revocation (db/revoke.c) ------------------------------------------- */

/* RFC 5280 §5.3.1 reason codes a revocation may carry: 0-6, 9, 10. */
#define DB_REASON_HOLD 6  /* certificateHold: may be released */

enum db_revoke_mode {
	DB_REVOKE_STRICT,  /* any serial unknown, not issued or already revoked: refuse all */
	DB_REVOKE_RESUME,  /* unknown or not issued: refuse all; already revoked: skip, count */
	DB_REVOKE_CHECK_STRICT, /* only check as STRICT would (nothing changes, no counts) */
	DB_REVOKE_CHECK_RESUME, /* only check as RESUME would */
};

struct db_revoke_counts {
	size_t revoked;    /* revoked now (a hold made permanent counts here) */
	size_t already;    /* RESUME: were revoked before, left as they were */
};

/* Revoke serials[0..n) (lower-case hex) of any CA in one transaction, each
 * with its audit row (action 'revoke', actor, protocol), and notify OCSP
 * responders (NOTIFY mintca_revocation). A certificate on hold may be revoked
 * again with a permanent reason. invalidity_date 0: none. Returns 0 (counts
 * filled); 1 refused, nothing changed, err says which serial and why
 * (CA_E_NOT_FOUND unknown/not issued, CA_E_CONFLICT already revoked); -1
 * store error, nothing changed. */
int db_revoke(db_store *st, const char *const *serials, size_t n, int reason,
	      time_t invalidity_date, const char *actor, const char *protocol,
	      enum db_revoke_mode mode, struct db_revoke_counts *counts, struct ca_err *err)
	__attribute__((warn_unused_result));

/* Release a certificateHold: the revocation is removed (a delta CRL then
 * lists the serial as removeFromCRL), audited, and OCSP notified. 0 released,
 * 1 refused (unknown, or not on hold: err says which), -1 store error. */
int db_release_hold(db_store *st, const char *serial_hex, const char *actor,
		    const char *protocol, struct ca_err *err) __attribute__((warn_unused_result));

/* Serials of issued, not yet revoked certificates of profile (and of CA ca
 * when not NULL) issued in [from, to). *out is a malloc'd array of malloc'd
 * strings (free with db_serials_free). At most max. 0 or -1. */
int db_serials_matching(db_store *st, const char *ca, const char *profile, time_t from,
			time_t to, size_t max, char ***out, size_t *n, struct ca_err *err)
	__attribute__((warn_unused_result));
void db_serials_free(char **serials, size_t n);

/* One audit row for an action that changes no certificate (e.g. a CRL
 * published over the operator API). detail_json: a JSON object or NULL.
 * 0 or -1. */
int db_audit_note(db_store *st, const char *action, const char *ca, const char *actor,
		  const char *protocol, const char *detail_json, struct ca_err *err);

/* --- CRLs (db/crl.c) ---------------------------------------------------- */

/* One row read for a CRL. Valid during the callback only. */
struct db_crl_entry {
	const char *serial_hex;   /* lower-case hex, NUL-terminated */
	time_t revoked_at;        /* a released hold (reason 8): when it was released */
	int reason;               /* RFC 5280 §5.3.1; 8 removeFromCRL: a released hold */
	time_t invalidity_date;   /* 0: none */
	time_t not_after;         /* the certificate's; 0: unknown */
};

/* What db_crl_publish() decided once it holds the CA's CRL counter. */
struct db_crl_plan {
	long long number;         /* this CRL's number (the counter, incremented) */
	long long base_number;    /* delta: the latest complete CRL of the scope */
	time_t base_this_update;
};

/* The signed CRL to store, filled by the finish callback; der is the
 * callback's (it stays valid until db_crl_publish returns). */
struct db_crl_out {
	const unsigned char *der;
	size_t der_len;
	time_t this_update, next_update;
	size_t entries;
};

/* Who turns rows into a CRL: entry() for each row as it streams in, then
 * finish() once. Each returns 0, or -1 with err set (the transaction is
 * rolled back). */
struct db_crl_sink {
	int (*entry)(void *arg, const struct db_crl_entry *e, struct ca_err *err);
	int (*finish)(void *arg, const struct db_crl_plan *plan, struct db_crl_out *out,
		      struct ca_err *err);
	void *arg;
};

struct db_crl_job {
	const char *ca;
	unsigned shard;           /* 0: every revocation of the CA; k: those with crl_shard = k */
	int delta;                /* revocations since the base, and released holds */
	time_t now;               /* the due check and the retention are measured from it */
	unsigned min_age_s;       /* 0: always; else only if this scope has no CRL or its
				   * latest this_update <= now - min_age_s */
	time_t expired_before;    /* leave out rows whose not_after is before this */
	unsigned delta_margin_s;  /* delta: rows since the base's this_update minus this */
};

struct db_crl_times {
	double lock_s, read_s, finish_s, store_s;  /* CLOCK_MONOTONIC seconds */
};

/* Publish one CRL in one transaction on this thread's session: take the
 * CA's next CRL number (UPDATE cas ... RETURNING: the row lock orders every
 * process publishing for this CA until the commit), check min_age_s (and,
 * for a delta, find the base), stream the rows to sink->entry (COPY ... TO
 * STDOUT, binary), call sink->finish, insert the CRL (compressed with lz4
 * when the server has it: SET LOCAL default_toast_compression), delete
 * this scope's CRLs whose next_update is before job->now, commit. Returns 0 stored (plan
 * filled); 1 not due; 2 delta with no complete CRL yet (both: nothing
 * changed); -1 error, nothing stored (CA_E_NOT_FOUND: no such CA in the
 * store). times may be NULL. */
int db_crl_publish(db_store *st, const struct db_crl_job *job, const struct db_crl_sink *sink,
		   struct db_crl_plan *plan, struct db_crl_times *times, struct ca_err *err)
	__attribute__((warn_unused_result));

struct db_crl_meta {
	long long number, delta_of;   /* delta_of 0: a complete CRL */
	time_t this_update, next_update;
	long long entries;
	size_t der_len;
};

/* The latest CRL of a scope (shard, delta or not). 0 found, 1 none, -1. */
int db_crl_latest(db_store *st, const char *ca, unsigned shard, int delta, struct db_crl_meta *m,
		  struct ca_err *err) __attribute__((warn_unused_result));
/* The DER of CRL number of ca: 0 (*der malloc'd, caller frees), 1 none, -1. */
int db_crl_der(db_store *st, const char *ca, long long number, unsigned char **der, size_t *len,
	       struct ca_err *err) __attribute__((warn_unused_result));

/* --- OCSP (db/ocsp.c) --------------------------------------------------- */

/* The channel revocations are announced on, in the revoking transaction:
 * payload a serial (lower-case hex) or "*" (everything may have changed). */
#define DB_OCSP_CHANNEL "mintca_revocation"

struct db_cert_status {
	char ca[64];              /* the CA holding the serial (CA_NAME_MAX) */
	int issued;               /* 0: only reserved, never issued */
	int revoked;
	time_t revoked_at;
	int reason;               /* RFC 5280 §5.3.1 reason code */
};
/* The status of one serial (lower-case hex), read only. 0 found (out
 * filled), 1 no such serial, -1 store unavailable. */
int db_ocsp_status(db_store *st, const char *serial_hex, struct db_cert_status *out,
		   struct ca_err *err) __attribute__((warn_unused_result));

/* The delegated OCSP responder of a CA (table ocsp_responders): 0 found
 * (*der malloc'd, caller frees with free()), 1 none, -1 error. */
int db_ocsp_responder_get(db_store *st, const char *ca, char *key_label, size_t label_len,
			  unsigned char **der, size_t *len, time_t *not_after, struct ca_err *err)
	__attribute__((warn_unused_result));
/* Record (insert or replace) the responder certificate of a CA. 0 or -1. */
int db_ocsp_responder_put(db_store *st, const char *ca, const char *key_label,
			  const unsigned char *der, size_t len, time_t not_after, struct ca_err *err)
	__attribute__((warn_unused_result));

/* A session of its own that LISTENs on DB_OCSP_CHANNEL (not a thread's
 * pooled one). Caller closes with db_listen_close(). NULL on error. */
typedef struct db_listen db_listen;
db_listen *db_listen_open(db_store *st, struct ca_err *err);
/* Wait up to timeout_ms for notifications and call fn(arg, payload) for
 * each one (payloads longer than 64 bytes are passed as "*"). 0 (a timeout
 * or notifications handled), or -1: the session is lost (err set); close it
 * and open another, the notifications meanwhile are lost. */
int db_listen_wait(db_listen *l, int timeout_ms, void (*fn)(void *arg, const char *payload),
		   void *arg, struct ca_err *err) __attribute__((warn_unused_result));
/* One round trip, to find a silently dead session. 0 or -1 (lost). */
int db_listen_ping(db_listen *l, struct ca_err *err) __attribute__((warn_unused_result));
void db_listen_close(db_listen *l);

/* --- Listing (db/certs_list.c) ------------------------------------------ */

/* A serial reserved and never issued: signing or its commit did not happen
 * (a crash, the store or HSM failing in between). Never counted as issued. */
struct db_reserved {
	char *serial_hex;
	char *ca;
	char *site;
	time_t reserved_at;       /* on the database clock */
};
#define DB_RESERVED_MAX 1000000
#define DB_RESERVED_AGE_MAX (100ULL * 366 * 86400)
/* Reserved rows at least older_than_s seconds old (database clock), oldest
 * first, at most max (1..DB_RESERVED_MAX); *more is set when there are more.
 * *rows is malloc'd (caller frees with db_reserved_free(*rows, *n)). 0 or
 * -1 with err set. */
int db_certs_reserved(db_store *st, unsigned long long older_than_s, size_t max,
		      struct db_reserved **rows, size_t *n, int *more, struct ca_err *err)
	__attribute__((warn_unused_result));
void db_reserved_free(struct db_reserved *rows, size_t n);

#endif
