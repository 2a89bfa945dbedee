/* The cache of signed OCSP responses. Entries are keyed by the DER of the
 * request's CertID (the response echoes it byte for byte) and placed by a
 * hash of the serial, so that every entry of one serial (any hash
 * algorithm) sits in one bucket and an invalidation finds them at once.
 * 64 shards, each under its own read-write lock: a hit takes one read lock
 * and copies the response out; nothing is signed under a lock. Each shard
 * has an invalidation generation, so a response signed from a status read
 * before a revocation is never cached after the revocation was announced. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ocsp_int.h"

#define SHARDS 64
#define DEFAULT_MAX_ENTRIES (1u << 18)
#define CLAIM_TIMEOUT_S 10  /* a refresher that did not come back is replaced */

struct entry {
	struct entry *next;          /* bucket chain */
	struct entry *older, *newer; /* the shard's insertion order (eviction) */
	uint32_t hash;
	char serial[41];
	unsigned char *key;
	size_t klen;
	unsigned char *der;
	size_t len;
	time_t this_update, next_update, refresh_at;
	_Atomic long long claimed;   /* time a refresher was chosen, 0 none */
	char etag[44];
	char cert_status[12];
};

struct shard {
	pthread_rwlock_t lock;
	struct entry **buckets;
	size_t mask;                 /* buckets - 1 */
	struct entry *oldest, *newest;
	size_t n, max;
	unsigned long gen;           /* written under the write lock */
	_Atomic unsigned long long hits, misses;
	char pad[64];
};

struct ocsp_cache {
	struct shard shards[SHARDS];
	atomic_bool live;
};

static uint32_t hash_serial(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static void entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->key);
	free(e->der);
	free(e);
}

ocsp_cache *ocsp_cache_new(size_t max_entries)
{
	ocsp_cache *c = calloc(1, sizeof(*c));
	size_t per, nb = 1;
	size_t i;

	if (c == NULL)
		return NULL;
	if (max_entries == 0)
		max_entries = DEFAULT_MAX_ENTRIES;
	per = max_entries / SHARDS > 0 ? max_entries / SHARDS : 1;
	while (nb < per)
		nb <<= 1;
	for (i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		if (pthread_rwlock_init(&s->lock, NULL) != 0)
			goto fail;
		s->max = per;
		s->mask = nb - 1;
		if ((s->buckets = calloc(nb, sizeof(*s->buckets))) == NULL) {
			pthread_rwlock_destroy(&s->lock);
			goto fail;
		}
	}
	atomic_init(&c->live, false);
	return c;
fail:
	while (i-- > 0) {
		free(c->shards[i].buckets);
		pthread_rwlock_destroy(&c->shards[i].lock);
	}
	free(c);
	return NULL;
}

/* Unlink e from its bucket and the shard's order; caller holds the write lock. */
static void unlink_entry(struct shard *s, struct entry *e)
{
	struct entry **pp = &s->buckets[(e->hash / SHARDS) & s->mask];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->next;
	if (*pp == e)
		*pp = e->next;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		s->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		s->newest = e->older;
	s->n--;
}

static void shard_clear(struct shard *s)
{
	struct entry *e, *next;

	for (e = s->oldest; e != NULL; e = next) {
		next = e->newer;
		entry_free(e);
	}
	memset(s->buckets, 0, (s->mask + 1) * sizeof(*s->buckets));
	s->oldest = s->newest = NULL;
	s->n = 0;
}

void ocsp_cache_free(ocsp_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < SHARDS; i++) {
		shard_clear(&c->shards[i]);
		free(c->shards[i].buckets);
		pthread_rwlock_destroy(&c->shards[i].lock);
	}
	free(c);
}

void ocsp_cache_flush(ocsp_cache *c)
{
	for (size_t i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_rwlock_wrlock(&s->lock);
		s->gen++;
		shard_clear(s);
		pthread_rwlock_unlock(&s->lock);
	}
}

void ocsp_cache_invalidate(ocsp_cache *c, const char *serial)
{
	uint32_t h;
	struct shard *s;
	struct entry *e, *next;

	if (serial == NULL || strcmp(serial, "*") == 0 || strlen(serial) > 40) {
		ocsp_cache_flush(c);
		return;
	}
	h = hash_serial(serial);
	s = &c->shards[h % SHARDS];
	pthread_rwlock_wrlock(&s->lock);
	s->gen++;
	for (e = s->buckets[(h / SHARDS) & s->mask]; e != NULL; e = next) {
		next = e->next;
		if (strcmp(e->serial, serial) == 0) {
			unlink_entry(s, e);
			entry_free(e);
		}
	}
	pthread_rwlock_unlock(&s->lock);
}

void ocsp_cache_set_live(ocsp_cache *c, bool live)
{
	atomic_store(&c->live, live);
}

void ocsp_cache_sweep(ocsp_cache *c, time_t now)
{
	for (size_t i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		struct entry *e, *next;
		pthread_rwlock_wrlock(&s->lock);
		for (e = s->oldest; e != NULL; e = next) {
			next = e->newer;
			if (e->next_update <= now) {
				unlink_entry(s, e);
				entry_free(e);
			}
		}
		pthread_rwlock_unlock(&s->lock);
	}
}

void ocsp_cache_stats(ocsp_cache *c, struct ocsp_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		out->hits += atomic_load_explicit(&s->hits, memory_order_relaxed);
		out->misses += atomic_load_explicit(&s->misses, memory_order_relaxed);
		pthread_rwlock_rdlock(&s->lock);
		out->entries += s->n;
		pthread_rwlock_unlock(&s->lock);
	}
}

static struct entry *find(struct shard *s, uint32_t h, const unsigned char *key, size_t klen)
{
	struct entry *e;

	for (e = s->buckets[(h / SHARDS) & s->mask]; e != NULL; e = e->next)
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	return NULL;
}

enum ocsp_cache_result ocsp_cache_get(ocsp_cache *c, const char *serial, const unsigned char *key,
				      size_t klen, time_t now, struct ocsp_answer *a,
				      unsigned long *gen)
{
	uint32_t h = hash_serial(serial);
	struct shard *s = &c->shards[h % SHARDS];
	enum ocsp_cache_result r = OCSP_CACHE_MISS;
	struct entry *e;

	pthread_rwlock_rdlock(&s->lock);
	*gen = s->gen;
	e = find(s, h, key, klen);
	if (e != NULL && now < e->next_update && now >= e->this_update - 300 &&
	    (a->der = malloc(e->len)) != NULL) {
		memcpy(a->der, e->der, e->len);
		a->len = e->len;
		a->this_update = e->this_update;
		a->next_update = e->next_update;
		memcpy(a->etag, e->etag, sizeof(a->etag));
		memcpy(a->cert_status, e->cert_status, sizeof(a->cert_status));
		r = OCSP_CACHE_HIT;
		if (now >= e->refresh_at) {
			/* One caller re-signs; the others keep sending this copy. */
			long long seen = atomic_load(&e->claimed);
			if ((seen == 0 || now - seen > CLAIM_TIMEOUT_S) &&
			    atomic_compare_exchange_strong(&e->claimed, &seen, (long long)now))
				r = OCSP_CACHE_REFRESH;
		}
	}
	pthread_rwlock_unlock(&s->lock);
	atomic_fetch_add_explicit(r == OCSP_CACHE_HIT ? &s->hits : &s->misses, 1, memory_order_relaxed);
	return r;
}

void ocsp_cache_put(ocsp_cache *c, const char *serial, const unsigned char *key, size_t klen,
		    const struct ocsp_answer *a, time_t refresh_at, unsigned long gen)
{
	uint32_t h = hash_serial(serial);
	struct shard *s = &c->shards[h % SHARDS];
	struct entry *e = calloc(1, sizeof(*e)), *old;

	if (e == NULL || strlen(serial) >= sizeof(e->serial) || !atomic_load(&c->live) ||
	    (e->key = malloc(klen)) == NULL || (e->der = malloc(a->len)) == NULL) {
		entry_free(e);
		return;
	}
	e->hash = h;
	memcpy(e->serial, serial, strlen(serial) + 1);
	memcpy(e->key, key, klen);
	e->klen = klen;
	memcpy(e->der, a->der, a->len);
	e->len = a->len;
	e->this_update = a->this_update;
	e->next_update = a->next_update;
	e->refresh_at = refresh_at;
	atomic_init(&e->claimed, 0);
	memcpy(e->etag, a->etag, sizeof(e->etag));
	memcpy(e->cert_status, a->cert_status, sizeof(e->cert_status));

	pthread_rwlock_wrlock(&s->lock);
	/* Invalidated (or flushed) since the status was read: the response
	 * may predate a revocation. Send it once, never keep it. */
	if (s->gen != gen || !atomic_load(&c->live)) {
		pthread_rwlock_unlock(&s->lock);
		entry_free(e);
		return;
	}
	if ((old = find(s, h, key, klen)) != NULL) {
		unlink_entry(s, old);
		entry_free(old);
	}
	while (s->n >= s->max && s->oldest != NULL) {
		old = s->oldest;
		unlink_entry(s, old);
		entry_free(old);
	}
	{
		struct entry **b = &s->buckets[(h / SHARDS) & s->mask];
		e->next = *b;
		*b = e;
	}
	e->older = s->newest;
	if (s->newest != NULL)
		s->newest->newer = e;
	else
		s->oldest = e;
	s->newest = e;
	s->n++;
	pthread_rwlock_unlock(&s->lock);
}
