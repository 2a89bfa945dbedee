/* EST (RFC 7030) wire format: turns one HTTP request under /.well-known/est/
 * into an issuance request and the result into the RFC's answer. Knows nothing
 * of sockets or TLS: the server hands in the body and the authenticated
 * requester. */
#ifndef MINTCA_EST_H
#define MINTCA_EST_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/x509.h>
#include "mintca/ca.h"

struct est_request {
	const char *method;        /* "GET" / "POST" */
	const char *label;         /* RFC 7030 §3.2.2 label (profile or CA name) or NULL */
	const char *op;            /* "cacerts", "simpleenroll", ... */
	const char *content_type;  /* may be NULL */
	const unsigned char *body;
	size_t body_len;
	bool body_too_large;       /* the server cut the body at its limit */
	const struct ca_requester *who;
	bool auth_failed;          /* credentials were offered and were wrong */
	X509 *peer_cert;           /* verified client certificate, or NULL */
	const char *reqid;         /* for logs */
};

struct est_response {
	unsigned status;
	const char *content_type;      /* static string */
	bool base64_transfer;          /* add Content-Transfer-Encoding: base64 */
	bool ask_basic_auth;           /* add WWW-Authenticate: Basic */
	unsigned retry_after;          /* add Retry-After (seconds) when not 0 */
	char *body;                    /* malloc'd; free with est_response_free() */
	size_t body_len;
};

/* Handle one request for the CA and profile its label leads to (the server
 * resolves labels; ca NULL: the label leads nowhere, 404; profile NULL: the
 * CA answers cacerts only). Always
 * fills resp (errors become an HTTP status with a plain-text reason that
 * cites the rule). */
void est_handle(ca_ctx *ca, const char *profile,
		const struct est_request *req, struct est_response *resp);
void est_response_free(struct est_response *resp);

/* Map a ca_code to the HTTP status EST answers with. */
unsigned est_status_for(enum ca_code code);

#endif
