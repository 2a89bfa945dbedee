/* Serials reserved ahead: with a store, ca_issue() takes a serial that is
 * already a committed 'reserved' row, so the reservation (step 7) costs no
 * database round trip per certificate. A pool per serial length is filled
 * POOL_FILL at a time in one statement, by a filler thread of the pool when
 * a taker finds it low; the takers go on taking, and one that finds it empty
 * waits at most FILL_WAIT_MS (a frozen database then costs a 503, not a
 * hung request). A serial goes back to the pool only
 * if nothing was signed with it; the ones left when the context is freed
 * are deleted again. After a crash they stay 'reserved', never counted as
 * issued, and `mintctl certs reserved` lists them, like any serial whose
 * certificate was never committed. */
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
#define MIN_OCTETS 9
#define MAX_OCTETS 20

struct pool_serial {
	ASN1_INTEGER *serial;
	char hex[41];
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
	struct pool_len len[MAX_OCTETS - MIN_OCTETS + 1];
};

/* Draw POOL_FILL serials of nbytes octets and reserve them (one statement,
 * without the pool's lock); drawn[0..*n) are the ones the store took. */
static int draw(ca_ctx *ctx, size_t nbytes, struct pool_serial drawn[POOL_FILL], size_t *n,
		struct ca_err *err)
{
	const char *hexes[POOL_FILL];
	unsigned char taken[POOL_FILL];
	int rc = -1;

	*n = 0;
	memset(drawn, 0, POOL_FILL * sizeof(*drawn));
	for (size_t i = 0; i < POOL_FILL; i++) {
		if (ca_serial_new_len(ctx, nbytes, &drawn[i].serial, drawn[i].hex, err) != 0)
			goto out;
		hexes[i] = drawn[i].hex;
	}
	if (db_reserve_serials(ctx->store, ctx->name, hexes, POOL_FILL, NULL, taken, err) != 0)
		goto out;
	for (size_t i = 0; i < POOL_FILL; i++) {
		if (taken[i]) {
			struct pool_serial t = drawn[*n];
			drawn[(*n)++] = drawn[i];
			drawn[i] = t;
		} else {
			log_kv(LOG_WARN, "ca.serial_collision", "ca", ctx->name, "serial", drawn[i].hex, NULL);
		}
	}
	rc = 0;
out:
	for (size_t i = *n; i < POOL_FILL; i++)
		ASN1_INTEGER_free(drawn[i].serial);
	return rc;
}

static void *filler_main(void *arg)
{
	struct ca_serial_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct pool_serial drawn[POOL_FILL];
		struct ca_err err = { 0 };
		struct pool_len *pl = NULL;
		size_t nbytes = 0, n;

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
		(void)draw(p->ctx, nbytes, drawn, &n, &err);
		pthread_mutex_lock(&p->mu);
		for (size_t i = 0; i < n; i++) {
			if (pl->n < POOL_CAP)
				pl->free[pl->n++] = drawn[i];
			else /* given-back serials filled it: this one stays 'reserved' */
				ASN1_INTEGER_free(drawn[i].serial);
		}
		pl->fill_err = err;
		pl->fills++;
		pl->wanted = false;
		pthread_cond_broadcast(&p->filled);
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

int ca_serial_take(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER **out, char hex[41], struct ca_err *err)
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
	rc = 0;
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void ca_serial_unused(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER *serial, const char hex[41])
{
	struct ca_serial_pool *p = ctx->serials;
	struct pool_len *pl = &p->len[nbytes - MIN_OCTETS];

	pthread_mutex_lock(&p->mu);
	if (pl->n < POOL_CAP) {
		pl->free[pl->n].serial = serial;
		memcpy(pl->free[pl->n].hex, hex, 41);
		pl->n++;
		serial = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	ASN1_INTEGER_free(serial); /* pool full: it stays 'reserved' in the store */
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
	for (size_t len = 0; len <= MAX_OCTETS - MIN_OCTETS; len++) {
		struct pool_len *pl = &p->len[len];
		const char *hexes[POOL_CAP];
		struct ca_err err = { 0 };

		for (size_t i = 0; i < pl->n; i++)
			hexes[i] = pl->free[i].hex;
		if (pl->n > 0 && ctx->store != NULL &&
		    db_release_serials(ctx->store, ctx->name, hexes, pl->n, &err) != 0)
			log_kv(LOG_WARN, "ca.serials_not_released", "ca", ctx->name, "why", err.detail, NULL);
		for (size_t i = 0; i < pl->n; i++)
			ASN1_INTEGER_free(pl->free[i].serial);
	}
	pthread_cond_destroy(&p->filled);
	pthread_cond_destroy(&p->want);
	pthread_mutex_destroy(&p->mu);
	free(p);
	ctx->serials = NULL;
}
