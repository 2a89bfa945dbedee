/* The operator API for automation: the same revoke, release and CRL publish
 * actions as mintctl, over HTTPS only, for client certificates verified by an
 * anchor listed in "operators" (mutual TLS; never open without it). JSON in,
 * JSON out; refusals as RFC 9457 problem documents. Every call is audited by
 * the actions it runs, with the operator's certificate subject as actor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "mintca/ca.h"
#include "mintca/crl.h"
#include "mintca/db.h"
#include "mintca/log.h"
#include "http_int.h"

#define API_PREFIX "/api/v1/"
#define API_MAX_SERIALS 100000

/* Seconds a client should wait after a 503 (store or signer unavailable). */
#define API_RETRY_AFTER "5"

static enum MHD_Result send_json(struct MHD_Connection *c, struct req_state *s, const char *method,
				 const char *url, unsigned status, const char *ctype, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	struct srv_hdr retry = { MHD_HTTP_HEADER_RETRY_AFTER, status == 503 ? API_RETRY_AFTER : NULL };
	enum MHD_Result r;

	json_decref(doc);
	if (text == NULL)
		return srv_send_text(c, s, method, url, 500, "internal error\n");
	r = srv_send(c, s, method, url, status, ctype, &retry, 1, text, strlen(text));
	free(text);
	return r;
}

/* RFC 9457 problem document. detail is safe to show the operator. */
static enum MHD_Result problem(struct MHD_Connection *c, struct req_state *s, const char *method,
			       const char *url, unsigned status, const char *title, const char *detail)
{
	return send_json(c, s, method, url, status, "application/problem+json",
			 json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title", title,
				   "status", (int)status, "detail", detail));
}

enum MHD_Result srv_api_problem(struct MHD_Connection *c, struct req_state *s, const char *method,
				const char *url, unsigned status, const char *title, const char *detail)
{
	return problem(c, s, method, url, status, title, detail);
}

static unsigned status_for(enum ca_code code)
{
	switch (code) {
	case CA_E_BAD_REQUEST: return 400;
	case CA_E_NOT_FOUND: return 404;
	case CA_E_CONFLICT: return 409;
	case CA_E_STORE: case CA_E_SIGNER: return 503;
	default: return 500;
	}
}

static enum MHD_Result refused(struct MHD_Connection *c, struct req_state *s, const char *method,
			       const char *url, const struct ca_err *err)
{
	unsigned st = status_for(err->code);

	/* Internal detail stays in the log on a 5xx. */
	if (st >= 500) {
		log_kv(LOG_ERROR, "api.failed", "req", s->id, "code", ca_code_str(err->code),
		       "detail", err->detail, NULL);
		return problem(c, s, method, url, st, ca_code_str(err->code), ca_code_str(err->code));
	}
	return problem(c, s, method, url, st, ca_code_str(err->code), err->detail);
}

/* The operator: a client certificate verified by an "operators" anchor.
 * Writes "api:<subject>" into actor. */
static bool operator_of(struct MHD_Connection *c, struct req_state *s, char *actor, size_t len)
{
	char anchor[CA_NAME_MAX] = "", subject[200];
	X509 *peer = srv_peer_identity(c, s, anchor);
	bool ok = false;

	if (peer == NULL)
		return false;
	for (size_t i = 0; i < s->st->cfg->n_operator_anchors && !ok; i++)
		ok = strcmp(s->st->cfg->operator_anchors[i], anchor) == 0;
	if (ok) {
		X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof(subject));
		snprintf(actor, len, "api:%s", subject);
	}
	X509_free(peer);
	return ok;
}

static enum MHD_Result api_revoke(struct MHD_Connection *c, struct req_state *s, const char *method,
				  const char *url, json_t *body, const char *actor, bool release)
{
	json_t *serials = json_object_get(body, "serials"), *one = json_object_get(body, "serial");
	const char *reason = json_string_value(json_object_get(body, "reason"));
	json_t *inv = json_object_get(body, "invalidity_date");
	const char **v = NULL;
	struct ca_revoke_req req = { .actor = actor, .protocol = "api", .release = release };
	struct ca_revoke_res res;
	struct ca_err err = { 0 };
	enum MHD_Result r;
	size_t i;
	json_t *e;

	if (one != NULL && serials == NULL) {
		if (!json_is_string(one))
			return problem(c, s, method, url, 400, "malformed request", "\"serial\" must be a string");
		v = calloc(1, sizeof(*v));
		if (v != NULL)
			v[0] = json_string_value(one);
		req.n = 1;
	} else if (json_is_array(serials) && json_array_size(serials) > 0 && one == NULL) {
		if (json_array_size(serials) > API_MAX_SERIALS)
			return problem(c, s, method, url, 400, "malformed request",
				       "more than 100000 serials: split the request");
		v = calloc(json_array_size(serials), sizeof(*v));
		json_array_foreach(serials, i, e) {
			if (v != NULL && !json_is_string(e)) {
				free(v);
				return problem(c, s, method, url, 400, "malformed request",
					       "\"serials\" must hold strings only");
			}
			if (v != NULL)
				v[i] = json_string_value(e);
		}
		req.n = json_array_size(serials);
		req.resume = json_is_true(json_object_get(body, "resume"));
	} else {
		return problem(c, s, method, url, 400, "malformed request",
			       "give \"serial\" (a string) or \"serials\" (a non-empty array of strings)");
	}
	if (v == NULL)
		return srv_send_text(c, s, method, url, 500, "internal error\n");
	req.serials = v;
	if (reason != NULL && (req.reason = ca_reason_from_name(reason)) < 0) {
		free(v);
		return problem(c, s, method, url, 400, "malformed request",
			       "\"reason\": not an RFC 5280 reason a revocation may give");
	}
	if (inv != NULL) {
		struct tm tm = { 0 };
		const char *t = json_string_value(inv), *end = t ? strptime(t, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
		if (end == NULL || *end != '\0') {
			free(v);
			return problem(c, s, method, url, 400, "malformed request",
				       "\"invalidity_date\" must be YYYY-MM-DDTHH:MM:SSZ");
		}
		req.invalidity_date = timegm(&tm);
	}
	if (ca_revoke(s->st->store, &req, &res, &err) != 0)
		r = refused(c, s, method, url, &err);
	else
		r = send_json(c, s, method, url, 200, "application/json",
			      json_pack("{s:I, s:I, s:I}", release ? "released" : "revoked", (json_int_t)res.revoked,
					"already_revoked", (json_int_t)res.already, "transactions", (json_int_t)res.chunks));
	free(v);
	return r;
}

static enum MHD_Result api_crl_publish(struct MHD_Connection *c, struct req_state *s, const char *method,
				       const char *url, json_t *body, const char *actor)
{
	const char *name = json_string_value(json_object_get(body, "ca"));
	json_t *shard = json_object_get(body, "shard");
	ca_ctx *ca = name ? srv_cas_find(s->st->cas, name) : srv_cas_at(s->st->cas, 0);
	struct crl_scope scope = { .delta = json_is_true(json_object_get(body, "delta")) };
	struct crl_result out = { 0 };
	struct ca_err err = { 0 };
	char detail[160];

	if (ca == NULL)
		return problem(c, s, method, url, 404, "not found", "no CA of that name on this server");
	if (shard != NULL && (!json_is_integer(shard) || json_integer_value(shard) < 0 ||
			      json_integer_value(shard) > (json_int_t)s->st->cfg->crl_shards))
		return problem(c, s, method, url, 400, "malformed request",
			       "\"shard\" must be 0 (the complete CRL) up to revocation.crl_shards");
	if (scope.delta && s->st->cfg->delta_crl_period_s == 0)
		return problem(c, s, method, url, 400, "malformed request", "delta CRLs are not configured");
	scope.shard = shard ? (unsigned)json_integer_value(shard) : 0;
	if (crl_publish(ca, s->st->cfg, &scope, 0, &out, &err) != 0)
		return refused(c, s, method, url, &err);
	snprintf(detail, sizeof(detail), "{\"crl_number\": %lld, \"shard\": %u, \"delta\": %s, \"entries\": %zu}",
		 out.number, out.shard, scope.delta ? "true" : "false", out.entries);
	/* The CRL is out; a lost audit note is logged, not an error. */
	if (db_audit_note(s->st->store, "crl_publish", ca_name(ca), actor, "api", detail, &err) != 0)
		log_kv(LOG_ERROR, "api.audit_failed", "req", s->id, "detail", err.detail, NULL);
	return send_json(c, s, method, url, 200, "application/json",
			 json_pack("{s:s, s:I, s:I, s:b, s:I}", "ca", ca_name(ca), "crl_number", (json_int_t)out.number,
				   "shard", (json_int_t)out.shard, "delta", scope.delta,
				   "entries", (json_int_t)out.entries));
}

enum MHD_Result srv_http_api(struct MHD_Connection *c, struct req_state *s, const char *method,
			     const char *url)
{
	char actor[256];
	const char *op = url + strlen(API_PREFIX);
	json_t *body;
	json_error_t jerr;
	enum MHD_Result r;

	if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0)
		return problem(c, s, method, url, 404, "not found", "the operator API is under /api/v1/");
	if (!operator_of(c, s, actor, sizeof(actor)))
		return problem(c, s, method, url, 401, "authentication required",
			       "the operator API needs a client certificate from an \"operators\" anchor");
	if (strcmp(method, "POST") != 0)
		return problem(c, s, method, url, 405, "method not allowed", "use POST");
	if (s->too_large)
		return problem(c, s, method, url, 413, "request too large", "body over server.max_body_bytes");
	if (strcmp(op, "revoke") != 0 && strcmp(op, "release") != 0 && strcmp(op, "crl/publish") != 0)
		return problem(c, s, method, url, 404, "not found", "operations: revoke, release, crl/publish");
	body = s->len > 0 ? json_loadb((const char *)s->body, s->len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
	if (!json_is_object(body)) {
		json_decref(body);
		return problem(c, s, method, url, 400, "malformed request", "the body must be a JSON object");
	}
	log_kv(LOG_INFO, "api.call", "req", s->id, "actor", actor, "op", op, NULL);
	if (strcmp(op, "crl/publish") == 0)
		r = api_crl_publish(c, s, method, url, body, actor);
	else
		r = api_revoke(c, s, method, url, body, actor, strcmp(op, "release") == 0);
	json_decref(body);
	return r;
}
