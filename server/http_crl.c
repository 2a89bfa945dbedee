/* GET/HEAD /crl/<name>.crl (RFC 5280 §4.2.1.13, served over HTTPS and the
 * plain-HTTP listener): the latest stored CRL of a scope, DER, with
 * validators and cache lifetimes taken from the CRL itself so that caches
 * in front of us keep it until its nextUpdate.
 *
 * The CRLs live in the database (several servers, one store). Each scope's
 * latest is kept in memory, keyed by its number, and revalidated with one
 * small query at most once a second, by one request thread: the others keep
 * sending the copy they have if it was checked in the last 5 seconds, or
 * wait for that refresh. A CRL of 40 MB is sent from that one copy by every
 * request, never copied per request. */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mintca/log.h"
#include "http_int.h"
#include "mintcad_crl_int.h"

#define REVALIDATE_S 1.0
#define STALE_SERVE_S 5.0   /* while one request refreshes, others send a copy this recent */
#define CRL_CTYPE "application/pkix-crl"   /* RFC 2585 §4.2 */
#define NAME_MAX_LEN (CA_NAME_MAX + 24)    /* "<ca>-<k>-delta" */
#define RETRY_AFTER_S "60"

/* One stored CRL, shared by its slot and the responses sending it. */
struct crl_cached {
	atomic_uint refs;
	long long number;
	time_t this_update, next_update;
	unsigned char *der;
	size_t len;
};

struct crl_slot {
	char ca[CA_NAME_MAX];
	struct crl_scope scope;
	struct crl_cached *cur;   /* NULL: none seen yet */
	double checked;           /* CLOCK_MONOTONIC of the last answer from the store */
	bool refreshing;          /* a request is asking the store */
	struct crl_slot *next;
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct crl_cached *ref(struct crl_cached *e)
{
	if (e != NULL)
		atomic_fetch_add(&e->refs, 1);
	return e;
}

static void unref(struct crl_cached *e)
{
	if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1) {
		free(e->der);
		free(e);
	}
}

/* libmicrohttpd is done with a response body. */
static void unref_cb(void *cls)
{
	unref(cls);
}

void srv_crl_cache_free(struct srv_crl *c)
{
	for (size_t i = 0; i < SRV_CRL_BUCKETS; i++) {
		struct crl_slot *s = c->buckets[i], *next;
		for (; s != NULL; s = next) {
			next = s->next;
			unref(s->cur);
			free(s);
		}
		c->buckets[i] = NULL;
	}
}

static unsigned bucket_of(const char *ca, const struct crl_scope *scope)
{
	unsigned h = 2166136261u;  /* FNV-1a */

	for (const char *p = ca; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ scope->shard) * 16777619u;
	h = (h ^ (scope->delta ? 1u : 0u)) * 16777619u;
	return h % SRV_CRL_BUCKETS;
}

/* Under cache_mu. NULL when out of memory. */
static struct crl_slot *slot_get(struct srv_crl *c, const char *ca, const struct crl_scope *scope)
{
	unsigned b = bucket_of(ca, scope);
	struct crl_slot *s;

	for (s = c->buckets[b]; s != NULL; s = s->next)
		if (s->scope.shard == scope->shard && s->scope.delta == scope->delta && strcmp(s->ca, ca) == 0)
			return s;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	snprintf(s->ca, sizeof(s->ca), "%s", ca);
	s->scope = *scope;
	s->next = c->buckets[b];
	c->buckets[b] = s;
	return s;
}

/* The store's latest CRL of a scope, from memory when checked within the
 * last second. Returns a reference (caller unrefs), or NULL: *status 404
 * none published, 503 store unavailable and nothing in memory. */
static struct crl_cached *latest(struct srv_crl *c, const char *ca, const struct crl_scope *scope,
				 unsigned *status)
{
	struct crl_cached *e = NULL, *fresh = NULL;
	struct crl_slot *slot;
	struct db_crl_meta m;
	struct ca_err err = { 0 };
	double t = mono_s();
	long long have;
	int r;

	pthread_mutex_lock(&c->cache_mu);
	if ((slot = slot_get(c, ca, scope)) == NULL) {
		pthread_mutex_unlock(&c->cache_mu);
		*status = 503;
		return NULL;
	}
	/* No copy, or one not checked for a while (it may be far behind): wait
	 * for the refresh under way rather than send it or fetch our own. */
	while (slot->refreshing && (slot->cur == NULL || t - slot->checked >= STALE_SERVE_S))
		pthread_cond_wait(&c->cache_cv, &c->cache_mu);
	if (slot->cur != NULL && (t - slot->checked < REVALIDATE_S || slot->refreshing)) {
		e = ref(slot->cur);
		pthread_mutex_unlock(&c->cache_mu);
		return e;
	}
	slot->refreshing = true;
	have = slot->cur ? slot->cur->number : -1;
	pthread_mutex_unlock(&c->cache_mu);

	/* Outside the lock: this thread's own session. */
	r = db_crl_latest(c->store, ca, scope->shard, scope->delta, &m, &err);
	if (r == 0 && m.number != have) {
		if ((fresh = calloc(1, sizeof(*fresh))) == NULL) {
			r = -1;
		} else {
			atomic_init(&fresh->refs, 1);
			fresh->number = m.number;
			fresh->this_update = m.this_update;
			fresh->next_update = m.next_update;
			if ((r = db_crl_der(c->store, ca, m.number, &fresh->der, &fresh->len, &err)) != 0) {
				free(fresh);
				fresh = NULL;
				r = r > 0 ? 1 : -1;  /* pruned meanwhile: as if none */
			}
		}
	}
	if (r < 0)
		log_kv(LOG_WARN, "crl.cache_refresh_failed", "ca", ca, "detail", err.detail, NULL);

	pthread_mutex_lock(&c->cache_mu);
	slot->refreshing = false;
	pthread_cond_broadcast(&c->cache_cv);
	if (r >= 0)
		slot->checked = t;
	if (fresh != NULL) {
		unref(slot->cur);
		slot->cur = fresh;
	}
	e = ref(slot->cur);
	pthread_mutex_unlock(&c->cache_mu);
	if (e == NULL)
		*status = r < 0 ? 503 : 404;
	return e;
}

/* RFC 7231 §7.1.1.1 IMF-fixdate. */
static void http_date(time_t t, char out[40])
{
	static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(out, 40, "Thu, 01 Jan 1970 00:00:00 GMT");
		return;
	}
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday % 7], tm.tm_mday,
		 mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* RFC 7232 §3.2: does an If-None-Match list name etag (weakly)? */
static bool etag_matches(const char *list, const char *etag)
{
	size_t n = strlen(etag);

	while (*list != '\0') {
		const char *end;
		size_t len;
		list += strspn(list, " \t,");
		if (*list == '\0')
			break;
		end = list + strcspn(list, ",");
		len = (size_t)(end - list);
		while (len > 0 && (list[len - 1] == ' ' || list[len - 1] == '\t'))
			len--;
		if (len == 1 && list[0] == '*')
			return true;
		if (len > 2 && strncmp(list, "W/", 2) == 0) {
			list += 2;
			len -= 2;
		}
		if (len == n && memcmp(list, etag, n) == 0)
			return true;
		list = end;
	}
	return false;
}

/* RFC 7232 §3.3: not modified since the date given? An unreadable date is
 * ignored. */
static bool not_modified_since(const char *ims, time_t this_update)
{
	struct tm tm = { 0 };
	const char *end = strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &tm);

	return end != NULL && *end == '\0' && this_update <= timegm(&tm);
}

/* The 200 answer, body shared with the cache (no copy). */
static enum MHD_Result send_crl(struct MHD_Connection *c, struct req_state *s, const char *method,
				const char *url, struct crl_cached *e, const struct srv_hdr *h, size_t nh)
{
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
		e->len, e->der, unref_cb, e);
	struct timespec end;
	char ms[32];
	enum MHD_Result ret;

	if (r == NULL) {
		unref(e);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CRL_CTYPE);
	for (size_t i = 0; i < nh; i++)
		MHD_add_response_header(r, h[i].name, h[i].value);
	MHD_add_response_header(r, "X-Request-Id", s->id);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);  /* e is released with the response */
	clock_gettime(CLOCK_MONOTONIC, &end);
	snprintf(ms, sizeof(ms), "%.1f", (double)(end.tv_sec - s->start.tv_sec) * 1e3 +
		 (double)(end.tv_nsec - s->start.tv_nsec) / 1e6);
	log_kv(LOG_INFO, "http.request", "req", s->id, "method", method, "path", url, "status", "200",
	       "ms", ms, NULL);
	return ret;
}

enum MHD_Result srv_http_crl(struct MHD_Connection *c, struct req_state *s, const char *method,
			     const char *url)
{
	const char *name = url + strlen("/crl/"), *inm, *ims;
	static const char suffix[] = ".crl";
	char base[NAME_MAX_LEN], etag[NAME_MAX_LEN + 32], lm[40], exp[40], cc[64];
	size_t len = strlen(name);
	struct crl_scope scope;
	struct crl_cached *e;
	ca_ctx *ca;
	unsigned status = 404;
	time_t now = time(NULL);
	long long max_age;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		struct srv_hdr allow = { "Allow", "GET, HEAD" };
		return srv_send(c, s, method, url, 405, "text/plain; charset=utf-8", &allow, 1,
				"RFC 5280 §4.2.1.13: CRLs are fetched with GET\n",
				strlen("RFC 5280 §4.2.1.13: CRLs are fetched with GET\n"));
	}
	if (len <= sizeof(suffix) - 1 || len - (sizeof(suffix) - 1) >= sizeof(base) ||
	    strcmp(name + len - (sizeof(suffix) - 1), suffix) != 0)
		return srv_send_text(c, s, method, url, 404, "no such CRL: /crl/<ca>.crl\n");
	memcpy(base, name, len - (sizeof(suffix) - 1));
	base[len - (sizeof(suffix) - 1)] = '\0';
	if (srv_crl_scope_of(s->st->cas, s->st->cfg, base, &ca, &scope) != 0)
		return srv_send_text(c, s, method, url, 404, "no such CRL: unknown CA, shard or delta\n");
	if (s->st->crl == NULL ||
	    (e = latest(s->st->crl, ca_name(ca), &scope, &status)) == NULL) {
		struct srv_hdr retry = { MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S };
		if (status == 404)
			return srv_send_text(c, s, method, url, 404, "no CRL published for this CA yet\n");
		return srv_send(c, s, method, url, 503, "text/plain; charset=utf-8", &retry, 1,
				"CRL store unavailable\n", strlen("CRL store unavailable\n"));
	}
	/* Cache until nextUpdate (RFC 5019 §6.2 does the same for OCSP). */
	max_age = e->next_update > now ? (long long)(e->next_update - now) : 0;
	snprintf(etag, sizeof(etag), "\"%s-%lld\"", ca_name(ca), e->number);
	snprintf(cc, sizeof(cc), "public, max-age=%lld, no-transform", max_age);
	http_date(e->this_update, lm);
	http_date(e->next_update, exp);
	struct srv_hdr h[] = {
		{ MHD_HTTP_HEADER_ETAG, etag },
		{ MHD_HTTP_HEADER_LAST_MODIFIED, lm },
		{ MHD_HTTP_HEADER_CACHE_CONTROL, cc },
		{ MHD_HTTP_HEADER_EXPIRES, exp },
	};
	/* RFC 7232 §6: If-None-Match decides when present. */
	inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	ims = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
	if (inm != NULL ? etag_matches(inm, etag) : ims != NULL && not_modified_since(ims, e->this_update)) {
		unref(e);
		return srv_send(c, s, method, url, 304, NULL, h, sizeof(h) / sizeof(h[0]), "", 0);
	}
	return send_crl(c, s, method, url, e, h, sizeof(h) / sizeof(h[0]));
}
