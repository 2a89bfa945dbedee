/* The CRL schedule: a thread that keeps every CRL of every CA fresh. Each
 * round asks the store, per scope, whether the latest CRL is older than its
 * period, and publishes through crl_publish() when it is; crl_publish
 * checks again under the CA's row lock, so several servers on one database
 * publish each CRL once per period between them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mintca/log.h"
#include "mintcad_crl_int.h"

#define CHECK_MIN_S 5
#define CHECK_MAX_S 60

/* How long to sleep between rounds: a tenth of the shortest period, within
 * [CHECK_MIN_S, CHECK_MAX_S]. */
static unsigned check_interval(const struct cfg *cfg)
{
	unsigned p = cfg->crl_period_s;

	if (cfg->delta_crl_period_s > 0 && cfg->delta_crl_period_s < p)
		p = cfg->delta_crl_period_s;
	p /= 10;
	return p < CHECK_MIN_S ? CHECK_MIN_S : p > CHECK_MAX_S ? CHECK_MAX_S : p;
}

static bool stopping(struct srv_crl *c)
{
	bool s;

	pthread_mutex_lock(&c->mu);
	s = c->stop;
	pthread_mutex_unlock(&c->mu);
	return s;
}

static void publish_one(ca_ctx *ca, const struct cfg *cfg, unsigned shard, bool delta)
{
	struct crl_scope scope = { .shard = shard, .delta = delta };
	unsigned period = delta ? cfg->delta_crl_period_s : cfg->crl_period_s;
	struct crl_result res;
	struct ca_err err = { 0 };
	char sh[16], num[24], base[24], n[24], ms[32];

	snprintf(sh, sizeof(sh), "%u", shard);
	if (crl_publish(ca, cfg, &scope, period, &res, &err) != 0) {
		log_kv(LOG_ERROR, "crl.publish_failed", "ca", ca_name(ca), "shard", sh, "delta",
		       delta ? "true" : "false", "code", ca_code_str(err.code), "detail", err.detail, NULL);
		return;
	}
	if (!res.published)
		return;
	snprintf(num, sizeof(num), "%lld", res.number);
	snprintf(base, sizeof(base), "%lld", res.delta_of);
	snprintf(n, sizeof(n), "%zu", res.entries);
	snprintf(ms, sizeof(ms), "%.1f", res.total_s * 1e3);
	log_kv(LOG_INFO, "crl.published", "ca", ca_name(ca), "shard", sh, "number", num,
	       "delta_of", delta ? base : NULL, "entries", n, "ms", ms, NULL);
}

/* One round over every CA and scope of state. */
static void round_once(struct srv_crl *c, struct srv_state *s)
{
	const struct cfg *cfg = s->cfg;

	for (size_t i = 0; i < srv_cas_count(s->cas); i++) {
		ca_ctx *ca = srv_cas_at(s->cas, i);
		for (unsigned shard = 0; shard <= cfg->crl_shards; shard++) {
			if (stopping(c))
				return;
			publish_one(ca, cfg, shard, false);
			if (cfg->delta_crl_period_s > 0)
				publish_one(ca, cfg, shard, true);
		}
	}
}

static void *run(void *arg)
{
	struct srv_crl *c = arg;
	struct timespec until;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct srv_state *s = c->state;
		unsigned wait;

		pthread_mutex_unlock(&c->mu);
		round_once(c, s);
		wait = check_interval(s->cfg);
		pthread_mutex_lock(&c->mu);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait;
		while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct srv_crl *srv_crl_start(db_store *st, struct srv_state *state, struct ca_err *err)
{
	struct srv_crl *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	int inits = 0;

	if (c == NULL)
		goto oom;
	c->store = st;
	c->state = state;
	if (pthread_mutex_init(&c->cache_mu, NULL) != 0)
		goto oom;
	inits++;
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		goto oom;
	inits++;
	if (pthread_condattr_init(&ca) != 0)
		goto oom;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&c->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		goto oom;
	}
	pthread_condattr_destroy(&ca);
	inits++;
	if (pthread_cond_init(&c->cache_cv, NULL) != 0)
		goto oom;
	inits++;
	if (pthread_create(&c->thread, NULL, run, c) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "cannot start the CRL schedule thread");
		goto fail;
	}
	c->started = true;
	return c;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory");
fail:
	if (c != NULL) {
		if (inits > 3)
			pthread_cond_destroy(&c->cache_cv);
		if (inits > 2)
			pthread_cond_destroy(&c->cv);
		if (inits > 1)
			pthread_mutex_destroy(&c->mu);
		if (inits > 0)
			pthread_mutex_destroy(&c->cache_mu);
		free(c);
	}
	return NULL;
}

void srv_crl_set_state(struct srv_crl *c, struct srv_state *next)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->state = next;
	pthread_mutex_unlock(&c->mu);
}

void srv_crl_stop(struct srv_crl *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->started)
		pthread_join(c->thread, NULL);
	srv_crl_cache_free(c);
	pthread_cond_destroy(&c->cv);
	pthread_cond_destroy(&c->cache_cv);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->cache_mu);
	free(c);
}

/* "-<k>" at the end of name[0..len): k (1..n), or 0. */
static unsigned shard_suffix(const char *name, size_t *len, unsigned n)
{
	size_t i = *len;
	unsigned long k;
	char *end;

	while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
		i--;
	if (i == *len || i < 2 || name[i - 1] != '-' || name[i] == '0' || *len - i > 5)
		return 0;
	k = strtoul(name + i, &end, 10);
	if (end != name + *len || k == 0 || k > n)
		return 0;
	*len = i - 1;
	return (unsigned)k;
}

int srv_crl_scope_of(const srv_cas *cas, const struct cfg *cfg, const char *name, ca_ctx **ca,
		     struct crl_scope *scope)
{
	char base[CA_NAME_MAX];
	size_t len = strlen(name);
	static const char delta[] = "-delta";

	*scope = (struct crl_scope){ 0 };
	if ((*ca = srv_cas_find(cas, name)) != NULL)
		return 0;
	if (cfg->delta_crl_period_s > 0 && len > sizeof(delta) - 1 &&
	    strcmp(name + len - (sizeof(delta) - 1), delta) == 0) {
		scope->delta = true;
		len -= sizeof(delta) - 1;
	}
	scope->shard = shard_suffix(name, &len, cfg->crl_shards);
	if ((!scope->delta && scope->shard == 0) || len == 0 || len >= sizeof(base))
		return -1;
	memcpy(base, name, len);
	base[len] = '\0';
	return (*ca = srv_cas_find(cas, base)) != NULL ? 0 : -1;
}
