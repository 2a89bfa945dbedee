/* Serials reserved ahead: with a store, ca_issue() takes a serial whose
 * reservation is already committed, so the reservation (step 7) costs no
 * database round trip per certificate. A pool per serial length is filled
 * POOL_FILL at a time, one serial_blocks row per fill, by a filler thread of
 * the pool when a taker finds it low; the takers go on taking, and one that
 * finds it empty waits at most FILL_WAIT_MS (a frozen database then costs a
 * 503, not a hung request). A serial goes back to the pool only if nothing
 * was signed with it.
 *
 * Blocks are settled (db_settle_serial_blocks) so that the table holds only
 * what an operator must look at: once none of a block's serials is in the
 * pool or in a request, and SETTLE_AFTER_S has passed (every commit under way
 * has ended by then), the filler deletes it if each serial has its
 * certificate; if not, it stays (a serial perhaps signed, never committed)
 * and is no longer followed. When the context is freed the serials left in
 * the pool are given back and every block followed is settled. After a
 * crash the blocks stay, their serials are never counted as issued, and
 * `mintctl certs reserved` lists them, like any serial whose certificate was
 * never committed. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/asn1.h>
#include "mintca/db.h"
#include "mintca/log.h"
#include "ca_int.h"

#define POOL_FILL 64
#define POOL_LOW 16    /* below this, the next taker refills while others go on taking */
#define POOL_CAP (POOL_FILL + POOL_LOW)
#define FILL_WAIT_MS 5000
#define STORE_RETRY_AFTER_S 3
#define SETTLE_AFTER_S 10 /* > the group commit's deadline (db/group.c) */
#define SETTLE_MAX 256    /* blocks settled in one statement by the filler */
#define MIN_OCTETS 9
#define MAX_OCTETS 20

/* One fill's serial_blocks row, followed until it is settled. */
struct ca_serial_block {
	char id[37];
	unsigned in_pool;       /* its serials in a free list */
	unsigned taken;         /* taken, neither signed nor given back yet */
	time_t idle_since;      /* monotonic s when both became 0; 0: not idle */
	bool settled;           /* to be dropped from the list */
	struct ca_serial_block *next;
};

struct pool_serial {
	ASN1_INTEGER *serial;
	char hex[41];
	struct ca_serial_block *block;
};

struct pool_len {
	struct pool_serial free[POOL_CAP];
	size_t n;
	bool wanted;            /* the filler is asked for (or filling) this length */
	unsigned long fills;    /* fills done, successful or not */
	struct ca_err fill_err; /* of the last fill, code CA_OK if it worked */
};

struct ca_serial_pool {
	pthread_mutex_t mu;
	pthread_cond_t filled, want;
	pthread_t filler;
	bool filler_running, stopping;
	ca_ctx *ctx;
	struct ca_serial_block *blocks; /* followed, newest first */
	struct pool_len len[MAX_OCTETS - MIN_OCTETS + 1];
};

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1; /* never 0 */
}

/* Under p->mu: b has nothing in the pool or in a request any more. */
static void block_check_idle(struct ca_serial_block *b)
{
	if (b->in_pool == 0 && b->taken == 0 && b->idle_since == 0)
		b->idle_since = mono_s();
}

/* Draw POOL_FILL serials of nbytes octets and reserve them as one block (one
 * statement, without the pool's lock). NULL with err set on failure. */
static struct ca_serial_block *draw(ca_ctx *ctx, size_t nbytes, struct pool_serial drawn[POOL_FILL],
				    struct ca_err *err)
{
	struct ca_serial_block *b = calloc(1, sizeof(*b));
	const char *hexes[POOL_FILL];

	memset(drawn, 0, POOL_FILL * sizeof(*drawn));
	if (b == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory for a serial block");
		return NULL;
	}
	for (size_t i = 0; i < POOL_FILL; i++) {
		if (ca_serial_new_len(ctx, nbytes, &drawn[i].serial, drawn[i].hex, err) != 0)
			goto fail;
		drawn[i].block = b;
		hexes[i] = drawn[i].hex;
	}
	if (db_reserve_serials(ctx->store, ctx->name, hexes, POOL_FILL, b->id, err) == 0)
		return b;
fail:
	for (size_t i = 0; i < POOL_FILL; i++)
		ASN1_INTEGER_free(drawn[i].serial);
	free(b);
	return NULL;
}

/* The filler, after a fill: settle the blocks idle for SETTLE_AFTER_S. Those
 * the store deleted, and those it kept (they hold a serial perhaps signed and
 * never committed: an operator's matter now), are no longer followed; after
 * a store failure they are tried again after the next fill. Under p->mu,
 * released while the store works. */
static void settle_idle(struct ca_serial_pool *p)
{
	struct ca_serial_block *cand[SETTLE_MAX], **link;
	const char *ids[SETTLE_MAX];
	unsigned char deleted[SETTLE_MAX];
	struct ca_err err = { 0 };
	time_t now = mono_s();
	size_t n = 0;
	int rc;

	for (struct ca_serial_block *b = p->blocks; b != NULL && n < SETTLE_MAX; b = b->next)
		if (b->idle_since != 0 && now - b->idle_since >= SETTLE_AFTER_S) {
			cand[n] = b;
			ids[n++] = b->id;
		}
	if (n == 0)
		return;
	/* Idle blocks stay idle: nothing takes from them or gives back to them. */
	pthread_mutex_unlock(&p->mu);
	rc = db_settle_serial_blocks(p->ctx->store, ids, n, NULL, 0, deleted, &err);
	pthread_mutex_lock(&p->mu);
	if (rc != 0) {
		log_kv(LOG_WARN, "ca.serial_blocks_not_settled", "ca", p->ctx->name, "why", err.detail, NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!deleted[i])
			log_kv(LOG_WARN, "ca.serials_never_committed", "ca", p->ctx->name, "block", cand[i]->id,
			       "see", "mintctl certs reserved", NULL);
		cand[i]->settled = true;
	}
	/* One pass over the list, however many were settled. */
	for (link = &p->blocks; *link != NULL;) {
		struct ca_serial_block *b = *link;
		if (b->settled) {
			*link = b->next;
			free(b);
		} else {
			link = &b->next;
		}
	}
}

static void *filler_main(void *arg)
{
	struct ca_serial_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct pool_serial drawn[POOL_FILL];
		struct ca_err err = { 0 };
		struct pool_len *pl = NULL;
		struct ca_serial_block *b;
		size_t nbytes = 0;

		for (size_t i = 0; i <= MAX_OCTETS - MIN_OCTETS && pl == NULL; i++)
			if (p->len[i].wanted) {
				pl = &p->len[i];
				nbytes = i + MIN_OCTETS;
			}
		if (pl == NULL) {
			if (p->stopping)
				break;
			pthread_cond_wait(&p->want, &p->mu);
			continue;
		}
		/* The store works without the lock: takers go on taking. */
		pthread_mutex_unlock(&p->mu);
		b = draw(p->ctx, nbytes, drawn, &err);
		pthread_mutex_lock(&p->mu);
		for (size_t i = 0; b != NULL && i < POOL_FILL; i++) {
			if (pl->n < POOL_CAP) {
				pl->free[pl->n++] = drawn[i];
				b->in_pool++;
			} else { /* given-back serials filled it: this one stays reserved */
				ASN1_INTEGER_free(drawn[i].serial);
			}
		}
		if (b != NULL) {
			b->next = p->blocks;
			p->blocks = b;
			block_check_idle(b);
		}
		pl->fill_err = err;
		pl->fills++;
		pl->wanted = false;
		pthread_cond_broadcast(&p->filled);
		settle_idle(p);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Ask the filler for more of pl. Under p->mu. */
static int want_more(struct ca_serial_pool *p, struct pool_len *pl, struct ca_err *err)
{
	if (!pl->wanted) {
		if (!p->filler_running) {
			if (pthread_create(&p->filler, NULL, filler_main, p) != 0) {
				ca_err_set(err, CA_E_INTERNAL, "cannot start the serial filler thread");
				return -1;
			}
			p->filler_running = true;
		}
		pl->wanted = true;
		pthread_cond_signal(&p->want);
	}
	return 0;
}

int ca_serial_take(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER **out, char hex[41],
		   struct ca_serial_block **block, struct ca_err *err)
{
	struct ca_serial_pool *p = ctx->serials;
	struct pool_len *pl;
	struct timespec deadline;
	unsigned long fills;
	int rc = -1;

	if (nbytes < MIN_OCTETS || nbytes > MAX_OCTETS) {
		ca_err_set(err, CA_E_INTERNAL, "serial length %zu outside %d-%d octets", nbytes, MIN_OCTETS,
			   MAX_OCTETS);
		return -1;
	}
	pl = &p->len[nbytes - MIN_OCTETS];
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += FILL_WAIT_MS / 1000;
	pthread_mutex_lock(&p->mu);
	fills = pl->fills;
	while (pl->n < POOL_LOW) {
		if (want_more(p, pl, err) != 0)
			goto out;
		if (pl->n > 0)
			break;
		/* Empty: a fill that ended since we came, and left none, failed. */
		if (pl->fills != fills && pl->fill_err.code != CA_OK) {
			*err = pl->fill_err;
			goto out;
		}
		if (pthread_cond_timedwait(&p->filled, &p->mu, &deadline) == ETIMEDOUT && pl->n == 0) {
			ca_err_set(err, CA_E_STORE, "certificate store unavailable: no serial reserved within %d ms",
				   FILL_WAIT_MS);
			err->retry_after = STORE_RETRY_AFTER_S;
			goto out;
		}
	}
	pl->n--;
	*out = pl->free[pl->n].serial;
	memcpy(hex, pl->free[pl->n].hex, 41);
	*block = pl->free[pl->n].block;
	(*block)->in_pool--;
	(*block)->taken++;
	rc = 0;
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void ca_serial_unused(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER *serial, const char hex[41],
		      struct ca_serial_block *block)
{
	struct ca_serial_pool *p = ctx->serials;
	struct pool_len *pl = &p->len[nbytes - MIN_OCTETS];

	pthread_mutex_lock(&p->mu);
	block->taken--;
	if (pl->n < POOL_CAP) {
		pl->free[pl->n].serial = serial;
		memcpy(pl->free[pl->n].hex, hex, 41);
		pl->free[pl->n].block = block;
		pl->n++;
		block->in_pool++;
		serial = NULL;
	}
	block_check_idle(block);
	pthread_mutex_unlock(&p->mu);
	ASN1_INTEGER_free(serial); /* pool full: it stays reserved in the store */
}

void ca_serial_signed(ca_ctx *ctx, struct ca_serial_block *block)
{
	struct ca_serial_pool *p = ctx->serials;

	pthread_mutex_lock(&p->mu);
	block->taken--;
	block_check_idle(block);
	pthread_mutex_unlock(&p->mu);
}

/* At the end: the serials left in the pool leave their blocks unused, and
 * every block followed is settled. */
static void settle_all(struct ca_serial_pool *p)
{
	size_t n_blocks = 0, n_rel = 0, i = 0;
	const char **ids = NULL, **rel = NULL;
	unsigned char *deleted = NULL;
	struct ca_err err = { 0 };
	struct ca_serial_block *b, *next;

	for (b = p->blocks; b != NULL; b = b->next)
		n_blocks++;
	for (size_t len = 0; len <= MAX_OCTETS - MIN_OCTETS; len++)
		n_rel += p->len[len].n;
	if (n_blocks > 0 && p->ctx->store != NULL) {
		ids = calloc(n_blocks, sizeof(*ids));
		rel = calloc(n_rel + 1, sizeof(*rel));
		deleted = calloc(n_blocks, 1);
		if (ids == NULL || rel == NULL || deleted == NULL) {
			ca_err_set(&err, CA_E_INTERNAL, "out of memory for %zu blocks", n_blocks);
		} else {
			for (b = p->blocks; b != NULL; b = b->next)
				ids[i++] = b->id;
			i = 0;
			for (size_t len = 0; len <= MAX_OCTETS - MIN_OCTETS; len++)
				for (size_t k = 0; k < p->len[len].n; k++)
					rel[i++] = p->len[len].free[k].hex;
			(void)db_settle_serial_blocks(p->ctx->store, ids, n_blocks, rel, n_rel, deleted, &err);
		}
		if (err.code != CA_OK)
			log_kv(LOG_WARN, "ca.serials_not_released", "ca", p->ctx->name, "why", err.detail, NULL);
	}
	free(ids);
	free(rel);
	free(deleted);
	for (size_t len = 0; len <= MAX_OCTETS - MIN_OCTETS; len++)
		for (size_t k = 0; k < p->len[len].n; k++)
			ASN1_INTEGER_free(p->len[len].free[k].serial);
	for (b = p->blocks; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	p->blocks = NULL;
}

struct ca_serial_pool *ca_serial_pool_new(ca_ctx *ctx)
{
	struct ca_serial_pool *p = calloc(1, sizeof(*p));
	pthread_condattr_t mono;

	if (p == NULL)
		return NULL;
	p->ctx = ctx;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&mono);
	pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
	pthread_cond_init(&p->filled, &mono);
	pthread_condattr_destroy(&mono);
	pthread_cond_init(&p->want, NULL);
	return p;
}

void ca_serial_pool_free(ca_ctx *ctx)
{
	struct ca_serial_pool *p = ctx->serials;

	if (p == NULL)
		return;
	/* The filler finishes what it does (a store that does not answer holds
	 * this up: only at stop or after a reload's grace period). */
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	for (size_t len = 0; len <= MAX_OCTETS - MIN_OCTETS; len++)
		p->len[len].wanted = false;
	pthread_cond_signal(&p->want);
	pthread_mutex_unlock(&p->mu);
	if (p->filler_running)
		pthread_join(p->filler, NULL);
	settle_all(p);
	pthread_cond_destroy(&p->filled);
	pthread_cond_destroy(&p->want);
	pthread_mutex_destroy(&p->mu);
	free(p);
	ctx->serials = NULL;
}
