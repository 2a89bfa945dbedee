/* Private to mintcad: CRLs, published on a schedule (server/mintcad_crl.c)
 * and served from an in-memory cache of the stored ones
 * (server/http_crl.c). One srv_crl lives as long as the process; every
 * srv_state points at it. */
#ifndef MINTCA_MINTCAD_CRL_INT_H
#define MINTCA_MINTCAD_CRL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include "mintca/crl.h"
#include "http.h"

#define SRV_CRL_BUCKETS 256

struct crl_slot;  /* the cached CRL of one scope (http_crl.c) */

struct srv_crl {
	db_store *store;
	/* cache: guarded by cache_mu (http_crl.c); cache_cv: a refresh ended */
	pthread_mutex_t cache_mu;
	pthread_cond_t cache_cv;
	struct crl_slot *buckets[SRV_CRL_BUCKETS];
	/* schedule: state and stop guarded by mu (mintcad_crl.c) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started, stop;
	struct srv_state *state;  /* the current one; see srv_crl_set_state */
};

/* Start the schedule: a thread that publishes every CRL of every CA of the
 * current state that is due (none yet, or the latest older than
 * revocation.crl_period / delta_crl_period), checking a few times per
 * period. state is borrowed until the next srv_crl_set_state(). Caller stops
 * and frees with srv_crl_stop(), before closing the store. NULL on error. */
struct srv_crl *srv_crl_start(db_store *st, struct srv_state *state, struct ca_err *err);
/* After a reload: publish for next's CAs from the next round on. The
 * previous state may still be in use by a round already running, like by
 * requests in flight: free it only after the reload grace period. */
void srv_crl_set_state(struct srv_crl *c, struct srv_state *next);
/* Stop the thread (after the CRL it may be writing), free the cache and c.
 * Safe on NULL. */
void srv_crl_stop(struct srv_crl *c);

/* The cache's part of srv_crl_stop (http_crl.c). */
void srv_crl_cache_free(struct srv_crl *c);

/* Which CRL a request names: "<ca>", "<ca>-delta", "<ca>-<k>",
 * "<ca>-<k>-delta" (the part of /crl/<name>.crl), for a CA of cas; an exact
 * CA name wins. 0, or -1 when it names no CRL this configuration has.
 * *ca points into cas. */
int srv_crl_scope_of(const srv_cas *cas, const struct cfg *cfg, const char *name, ca_ctx **ca,
		     struct crl_scope *scope);

#endif
