/* Private to the HTTP front door (server/http*.c): one request's state and
 * the helpers every route uses to answer. */
#ifndef MINTCA_HTTP_INT_H
#define MINTCA_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <microhttpd.h>
#include <openssl/x509.h>
#include "http.h"
#include "workpool.h"

struct req_state {
	const struct srv_state *st; /* one request sees one state */
	char id[17];
	struct timespec start;
	unsigned char *body;        /* the request body, at most cfg->max_body_bytes */
	size_t len, cap;
	bool too_large;             /* more came than the limit: body is cut */
	bool plain;                 /* on the plain-HTTP listener (OCSP and CRLs only) */
	bool relying_party;         /* an OCSP or CRL request: logged at debug level when answered */
	/* A request answered on a pool thread (server/workpool.c) while its
	 * connection is suspended: srv_send() keeps the answer here, and the
	 * HTTP thread queues it when the connection is resumed. */
	struct srv_job job;
	struct MHD_Connection *conn;
	const char *method, *url;
	enum MHD_Result (*route)(struct MHD_Connection *c, struct req_state *s, const char *method,
				 const char *url);
	srv_workpool *pool;
	bool deferred, answered;
	struct MHD_Response *answer;
	unsigned answer_status;
};

/* A response header; entries with a NULL value are skipped. */
struct srv_hdr {
	const char *name, *value;
};

/* Queue the answer (body copied) with its headers and log the request line.
 * ctype may be NULL. */
enum MHD_Result srv_send(struct MHD_Connection *c, struct req_state *s, const char *method,
			 const char *url, unsigned status, const char *ctype,
			 const struct srv_hdr *hdrs, size_t n_hdrs, const void *body, size_t len);
/* Answer with route(c, s, method, url) on a pool thread (s->deferred set
 * there): for requests that wait on the HSM or the store. */
enum MHD_Result srv_defer(struct MHD_Connection *c, struct req_state *s, const char *method,
			  const char *url,
			  enum MHD_Result (*route)(struct MHD_Connection *c, struct req_state *s,
						   const char *method, const char *url));
/* A text/plain answer. */
enum MHD_Result srv_send_text(struct MHD_Connection *c, struct req_state *s, const char *method,
			      const char *url, unsigned status, const char *text);

/* The verified TLS client certificate of this connection (caller frees with
 * X509_free) and the anchor that verified it; NULL when none or it does not
 * verify (logged). */
X509 *srv_peer_identity(struct MHD_Connection *c, struct req_state *s, char anchor[CA_NAME_MAX]);

/* HTTP Basic (RFC 7617) credentials of this request, if any, checked against
 * cfg's users: on a match who becomes that user; an Authorization header that
 * is unreadable, names no user or has the wrong password sets *failed.
 * (server/http.c; also driven by tests/fuzz/fuzz_basic.c) */
void srv_basic_identity(const struct cfg *cfg, struct MHD_Connection *c, struct ca_requester *who,
			bool *failed);

/* Routes, each in its own file. */
enum MHD_Result srv_http_ocsp(struct MHD_Connection *c, struct req_state *s, const char *method,
			      const char *url);   /* /ocsp, /ocsp/<base64> (server/http_ocsp.c) */
enum MHD_Result srv_http_crl(struct MHD_Connection *c, struct req_state *s, const char *method,
			     const char *url);    /* /crl/<ca>.crl (server/http_crl.c) */
enum MHD_Result srv_http_ca(struct MHD_Connection *c, struct req_state *s, const char *method,
			    const char *url);     /* /ca/<ca>.crt (server/http_ca.c) */
enum MHD_Result srv_http_api(struct MHD_Connection *c, struct req_state *s, const char *method,
			     const char *url);    /* /api/v1/... operator API (server/http_api.c) */
/* An RFC 9457 problem document from the operator API (with Retry-After on
 * a 503); detail is shown to the operator. */
enum MHD_Result srv_api_problem(struct MHD_Connection *c, struct req_state *s, const char *method,
				const char *url, unsigned status, const char *title, const char *detail);

#endif
