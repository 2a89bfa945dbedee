/* crl_publish: one CRL of a CA from the store's revocations to a stored,
 * signed CRL, in one transaction (db_crl_publish drives it; this file turns
 * its rows into the CRL). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "mintca/crl.h"
#include "ca_int.h"

/* A delta CRL lists what was revoked since its base's thisUpdate, less
 * this: a revocation whose transaction began before the base read its rows
 * but committed after carries a revoked_at before that thisUpdate. Listing
 * an entry the base has too is harmless (RFC 5280 §5.2.4). */
#define DELTA_MARGIN_S 300

struct publish {
	ca_ctx *ca;
	const struct cfg *cfg;
	struct crl_scope scope;
	crl_builder *b;
	time_t now;
	unsigned char *der;
	size_t der_len;
	struct crl_result *res;
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* nextUpdate: cfg->crl_next_update_s after thisUpdate; a delta CRL is
 * replaced every delta_crl_period_s, so twice that (never longer). */
static time_t next_update_of(const struct cfg *cfg, const struct crl_scope *scope, time_t now)
{
	unsigned long long d = 2ull * cfg->delta_crl_period_s;

	if (scope->delta && d > 0 && d < cfg->crl_next_update_s)
		return now + (time_t)d;
	return now + (time_t)cfg->crl_next_update_s;
}

static int on_entry(void *arg, const struct db_crl_entry *row, struct ca_err *err)
{
	struct publish *pb = arg;
	struct crl_entry e = {
		.serial_hex = row->serial_hex, .revoked_at = row->revoked_at, .reason = row->reason,
		.invalidity_date = row->invalidity_date, .not_after = row->not_after,
	};

	return crl_builder_add(pb->b, &e, err);
}

static int on_finish(void *arg, const struct db_crl_plan *plan, struct db_crl_out *out,
		     struct ca_err *err)
{
	struct publish *pb = arg;
	const struct cfg *cfg = pb->cfg;
	struct crl_scope delta = { .shard = pb->scope.shard, .delta = true };
	struct crl_scope full = { .shard = pb->scope.shard, .delta = false };
	char idp[1024], fresh[1024];
	struct crl_params p = { .number = plan->number };
	struct crl_build_stats stats;

	/* Read the clock again: we may have waited for another publisher's
	 * commit, and a higher number should not carry an earlier thisUpdate. */
	pb->now = pb->ca->clock(pb->ca->clock_arg);
	p.this_update = pb->now;
	p.next_update = next_update_of(cfg, &pb->scope, pb->now);

	if (pb->scope.delta)
		p.delta_of = plan->base_number;
	/* RFC 5280 §5.2.5: a shard (and its delta) says which partition it is. */
	if (pb->scope.shard > 0) {
		if (crl_url(cfg, ca_name(pb->ca), &full, idp, sizeof(idp)) != 0) {
			ca_err_set(err, CA_E_CONFIG, "CRL URL of CA '%s' too long", ca_name(pb->ca));
			return -1;
		}
		p.idp_url = idp;
	}
	/* §5.2.6: a complete CRL points at its delta when there are deltas. */
	if (!pb->scope.delta && cfg->delta_crl_period_s > 0) {
		if (crl_url(cfg, ca_name(pb->ca), &delta, fresh, sizeof(fresh)) != 0) {
			ca_err_set(err, CA_E_CONFIG, "CRL URL of CA '%s' too long", ca_name(pb->ca));
			return -1;
		}
		p.freshest_url = fresh;
	}
	if (crl_builder_finish(pb->b, &p, &pb->der, &pb->der_len, err) != 0)
		return -1;
	crl_builder_stats(pb->b, &stats);
	pb->res->sign_s = stats.assemble_s + stats.sign_s;
	out->der = pb->der;
	out->der_len = pb->der_len;
	out->this_update = p.this_update;
	out->next_update = p.next_update;
	out->entries = stats.entries;
	return 0;
}

int crl_publish(ca_ctx *ca, const struct cfg *cfg, const struct crl_scope *scope,
		unsigned min_age_s, struct crl_result *res, struct ca_err *err)
{
	struct publish pb = { .ca = ca, .cfg = cfg, .scope = *scope, .res = res };
	struct db_crl_sink sink = { .entry = on_entry, .finish = on_finish, .arg = &pb };
	struct db_crl_plan plan;
	struct db_crl_times t;
	struct db_crl_job job;
	struct crl_build_stats stats;
	double t0 = mono_s();
	int rc = -1, r;

	memset(res, 0, sizeof(*res));
	res->shard = scope->shard;
	if (ca->store == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "CA '%s' has no store to publish CRLs from", ca->name);
		goto out;
	}
	if (scope->shard > cfg->crl_shards) {
		ca_err_set(err, CA_E_NOT_FOUND, "CA '%s' has %u CRL shards, not %u", ca->name,
			   cfg->crl_shards, scope->shard);
		goto out;
	}
	if (scope->delta && cfg->delta_crl_period_s == 0) {
		ca_err_set(err, CA_E_CONFIG, "delta CRLs are off (revocation.delta_crl_period)");
		goto out;
	}
	pb.now = ca->clock(ca->clock_arg);
	job = (struct db_crl_job){
		.ca = ca->name, .shard = scope->shard, .delta = scope->delta, .now = pb.now,
		.min_age_s = min_age_s,
		.expired_before = pb.now - (time_t)cfg->crl_retention_s,
		.delta_margin_s = DELTA_MARGIN_S,
	};
	if ((pb.b = crl_builder_new(ca, job.expired_before, scope->delta, err)) == NULL)
		goto out;
	if ((r = db_crl_publish(ca->store, &job, &sink, &plan, &t, err)) < 0)
		goto out;
	if (r == 0) {
		crl_builder_stats(pb.b, &stats);
		res->published = true;
		res->number = plan.number;
		res->delta_of = scope->delta ? plan.base_number : 0;
		res->entries = stats.entries;
		res->der_len = pb.der_len;
		res->this_update = pb.now;
		res->next_update = next_update_of(cfg, scope, pb.now);
		res->lock_s = t.lock_s;
		res->read_s = t.read_s;
		res->store_s = t.store_s;
	}
	rc = 0;
out:
	res->total_s = mono_s() - t0;
	free(pb.der);
	crl_builder_free(pb.b);
	return rc;
}
