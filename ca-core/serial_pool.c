/* Serials reserved ahead: with a store, ca_issue() takes a serial that is
 * already a committed 'reserved' row, so the reservation (step 7) costs no
 * database round trip per certificate. A pool per serial length is filled
 * POOL_FILL at a time in one statement. A serial goes back to the pool only
 * if nothing was signed with it; the ones left when the context is freed
 * are deleted again. After a crash they stay 'reserved', never counted as
 * issued, and `mintctl certs reserved` lists them, like any serial whose
 * certificate was never committed. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include "mintca/db.h"
#include "mintca/log.h"
#include "ca_int.h"

#define POOL_FILL 64
#define FILL_TRIES 4
#define MIN_OCTETS 9
#define MAX_OCTETS 20

struct pool_serial {
	ASN1_INTEGER *serial;
	char hex[41];
};

struct ca_serial_pool {
	pthread_mutex_t mu;
	struct pool_serial free[MAX_OCTETS - MIN_OCTETS + 1][POOL_FILL];
	size_t n_free[MAX_OCTETS - MIN_OCTETS + 1];
};

/* Draw POOL_FILL serials of nbytes octets and reserve them; the pool of
 * that length (empty) gets the ones the store took. Under p->mu. */
static int fill(ca_ctx *ctx, struct ca_serial_pool *p, size_t nbytes, struct ca_err *err)
{
	struct pool_serial *slot = p->free[nbytes - MIN_OCTETS];
	struct pool_serial drawn[POOL_FILL] = { 0 };
	const char *hexes[POOL_FILL];
	unsigned char taken[POOL_FILL];
	size_t n = 0;
	int rc = -1;

	for (size_t i = 0; i < POOL_FILL; i++) {
		if (ca_serial_new_len(ctx, nbytes, &drawn[i].serial, drawn[i].hex, err) != 0)
			goto out;
		hexes[i] = drawn[i].hex;
	}
	if (db_reserve_serials(ctx->store, ctx->name, hexes, POOL_FILL, NULL, taken, err) != 0)
		goto out;
	for (size_t i = 0; i < POOL_FILL; i++) {
		if (!taken[i]) {
			log_kv(LOG_WARN, "ca.serial_collision", "ca", ctx->name, "serial", drawn[i].hex, NULL);
			continue;
		}
		slot[n++] = drawn[i];
		drawn[i].serial = NULL;
	}
	p->n_free[nbytes - MIN_OCTETS] = n;
	rc = 0;
out:
	for (size_t i = 0; i < POOL_FILL; i++)
		ASN1_INTEGER_free(drawn[i].serial);
	return rc;
}

int ca_serial_take(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER **out, char hex[41], struct ca_err *err)
{
	struct ca_serial_pool *p = ctx->serials;
	size_t *n;
	int rc = -1;

	if (nbytes < MIN_OCTETS || nbytes > MAX_OCTETS) {
		ca_err_set(err, CA_E_INTERNAL, "serial length %zu outside %d-%d octets", nbytes, MIN_OCTETS,
			   MAX_OCTETS);
		return -1;
	}
	n = &p->n_free[nbytes - MIN_OCTETS];
	pthread_mutex_lock(&p->mu);
	for (int tries = 0; *n == 0; tries++) {
		if (tries == FILL_TRIES) {
			ca_err_set(err, CA_E_INTERNAL, "no unused serial after %d tries", FILL_TRIES);
			goto out;
		}
		if (fill(ctx, p, nbytes, err) != 0)
			goto out;
	}
	(*n)--;
	*out = p->free[nbytes - MIN_OCTETS][*n].serial;
	memcpy(hex, p->free[nbytes - MIN_OCTETS][*n].hex, 41);
	rc = 0;
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void ca_serial_unused(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER *serial, const char hex[41])
{
	struct ca_serial_pool *p = ctx->serials;
	size_t *n = &p->n_free[nbytes - MIN_OCTETS];

	pthread_mutex_lock(&p->mu);
	if (*n < POOL_FILL) {
		p->free[nbytes - MIN_OCTETS][*n].serial = serial;
		memcpy(p->free[nbytes - MIN_OCTETS][*n].hex, hex, 41);
		(*n)++;
		serial = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	ASN1_INTEGER_free(serial); /* pool full: it stays 'reserved' in the store */
}

struct ca_serial_pool *ca_serial_pool_new(void)
{
	struct ca_serial_pool *p = calloc(1, sizeof(*p));

	if (p != NULL)
		pthread_mutex_init(&p->mu, NULL);
	return p;
}

void ca_serial_pool_free(ca_ctx *ctx)
{
	struct ca_serial_pool *p = ctx->serials;

	if (p == NULL)
		return;
	for (size_t len = 0; len <= MAX_OCTETS - MIN_OCTETS; len++) {
		const char *hexes[POOL_FILL];
		struct ca_err err = { 0 };

		for (size_t i = 0; i < p->n_free[len]; i++)
			hexes[i] = p->free[len][i].hex;
		if (p->n_free[len] > 0 && ctx->store != NULL &&
		    db_release_serials(ctx->store, ctx->name, hexes, p->n_free[len], &err) != 0)
			log_kv(LOG_WARN, "ca.serials_not_released", "ca", ctx->name, "why", err.detail, NULL);
		for (size_t i = 0; i < p->n_free[len]; i++)
			ASN1_INTEGER_free(p->free[len][i].serial);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
	ctx->serials = NULL;
}
