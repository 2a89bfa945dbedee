/* The OCSP route (RFC 6960 Appendix A, RFC 5019 §5-6), on the HTTPS and the
 * plain-HTTP listener alike:
 *   GET  /ocsp/<base64 DER request, URL-encoded>
 *   POST /ocsp (or /ocsp/), Content-Type application/ocsp-request
 * Every OCSP answer, refusals included, is an OCSPResponse with HTTP 200
 * (malformedRequest, unauthorized, tryLater...). Transport problems get an
 * HTTP status: 405 another method, 415 another Content-Type, 413 a request
 * above OCSP_REQ_MAX (4 KiB of DER; for GET, its base64 form). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mintca/log.h"
#include "mintca/ocsp.h"
#include "http_int.h"
#include "mintcad_ocsp_int.h"

#define CTYPE_REQUEST "application/ocsp-request"
#define CTYPE_RESPONSE "application/ocsp-response"
/* base64 of OCSP_REQ_MAX octets, with padding */
#define GET_PATH_MAX ((OCSP_REQ_MAX + 2) / 3 * 4)

static void http_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		buf[0] = '\0';
}

static bool content_type_ok(const char *ct)
{
	size_t n = strlen(CTYPE_REQUEST);

	/* RFC 6960 A.1.1; a client that sends none is given the benefit of the doubt */
	if (ct == NULL)
		return true;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, CTYPE_REQUEST, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static const char *status_text(int s)
{
	switch (s) {
	case OCSP_RESPONSE_STATUS_SUCCESSFUL: return "successful";
	case OCSP_RESPONSE_STATUS_MALFORMEDREQUEST: return "malformedRequest";
	case OCSP_RESPONSE_STATUS_INTERNALERROR: return "internalError";
	case OCSP_RESPONSE_STATUS_TRYLATER: return "tryLater";
	case OCSP_RESPONSE_STATUS_SIGREQUIRED: return "sigRequired";
	case OCSP_RESPONSE_STATUS_UNAUTHORIZED: return "unauthorized";
	default: return "?";
	}
}

enum MHD_Result srv_http_ocsp(struct MHD_Connection *c, struct req_state *s, const char *method,
			      const char *url)
{
	ocsp_responder *r = srv_ocsp_responder(s->st->ocsp);
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	const char *path = url[5] == '/' ? url + 6 : "";
	unsigned char req[OCSP_REQ_MAX];
	const unsigned char *der = NULL;
	size_t len = 0;
	struct ocsp_answer a = { 0 };
	char last_mod[40], expires[40], cache_control[96];
	struct srv_hdr h[4] = { { NULL, NULL } };
	size_t nh = 0;
	enum MHD_Result ret;

	if (!get && !post) {
		static const char why[] = "RFC 6960 A.1: OCSP takes GET or POST\n";
		struct srv_hdr allow = { "Allow", "GET, POST" };
		return srv_send(c, s, method, url, 405, "text/plain; charset=utf-8", &allow, 1, why,
				sizeof(why) - 1);
	}
	if (r == NULL)
		return srv_send_text(c, s, method, url, 503, "OCSP responder unavailable\n");
	if (post) {
		if (*path != '\0')
			return srv_send_text(c, s, method, url, 404, "RFC 6960 A.1: POST to /ocsp\n");
		if (!content_type_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
			return srv_send_text(c, s, method, url, 415,
					     "RFC 6960 A.1: Content-Type must be application/ocsp-request\n");
		if (s->too_large || s->len > OCSP_REQ_MAX)
			return srv_send_text(c, s, method, url, 413, "OCSP request larger than 4096 bytes\n");
		der = s->body;
		len = s->len;
	} else {
		if (strlen(path) > GET_PATH_MAX + 3)
			return srv_send_text(c, s, method, url, 413, "OCSP request larger than 4096 bytes\n");
		/* Not base64: an empty "request", answered malformedRequest. */
		if (ocsp_decode_get(path, req, sizeof(req), &len) == 0)
			der = req;
		else
			len = 0;
	}
	if (!der)
		der = (const unsigned char *)"";
	/* A cached answer right here; a store read and a signature on a pool
	 * thread, so a slow token never holds up the HTTP threads. */
	if (s->deferred)
		ocsp_respond(r, der, len, &a);
	else if (!ocsp_respond_cached(r, der, len, &a))
		return srv_defer(c, s, method, url, srv_http_ocsp);
	if (a.response_status != OCSP_RESPONSE_STATUS_SUCCESSFUL)
		log_kv(a.response_status == OCSP_RESPONSE_STATUS_TRYLATER ? LOG_WARN : LOG_INFO, "ocsp.refused",
		       "req", s->id, "status", status_text(a.response_status), "why", a.why, NULL);
	/* RFC 5019 §6.2: caching headers on GET answers that carry no nonce. */
	if (get && a.cacheable && a.response_status == OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		time_t now = time(NULL);
		long long max_age = a.next_update > now ? (long long)(a.next_update - now) : 0;
		http_date(a.this_update, last_mod, sizeof(last_mod));
		http_date(a.next_update, expires, sizeof(expires));
		snprintf(cache_control, sizeof(cache_control),
			 "max-age=%lld, public, no-transform, must-revalidate", max_age);
		h[nh++] = (struct srv_hdr){ "Last-Modified", last_mod[0] ? last_mod : NULL };
		h[nh++] = (struct srv_hdr){ "Expires", expires[0] ? expires : NULL };
		h[nh++] = (struct srv_hdr){ "Cache-Control", cache_control };
		h[nh++] = (struct srv_hdr){ "ETag", a.etag[0] ? a.etag : NULL };
	}
	if (a.der == NULL)
		ret = srv_send_text(c, s, method, url, 500, "internal error\n");
	else
		ret = srv_send(c, s, method, url, 200, CTYPE_RESPONSE, h, nh, a.der, a.len);
	ocsp_answer_free(&a);
	return ret;
}
