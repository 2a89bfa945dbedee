/* Private to mintcad: the HTTPS front door on libmicrohttpd. */
#ifndef MINTCA_HTTP_H
#define MINTCA_HTTP_H

#include "mintca/ca.h"
#include "mintca/cfg.h"
#include "srv_int.h"

typedef struct srv_http srv_http;

/* What requests are answered from: the config (users, limits), the CAs with
 * their profiles, the client-certificate trust. Replaced whole on reload. */
struct srv_state {
	db_store *store;     /* borrowed: lives as long as the process */
	struct cfg *cfg;
	srv_cas *cas;
	srv_trust *trust;
	struct srv_ocsp *ocsp; /* OCSP responders of these CAs (server/mintcad_ocsp.c), or NULL */
	struct srv_crl *crl;   /* CRL schedule and cache, shared by every state (server/mintcad_crl.c), or NULL */
};
void srv_state_free(struct srv_state *st);

/* Start listening (worker threads of its own) on st's address with st's TLS
 * files. st is borrowed until swapped out or stopped. NULL on error. */
srv_http *srv_http_start(struct srv_state *st, struct ca_err *err);
/* Answer new requests from next; returns the previous state. Requests in
 * flight finish with the state they started with, so the caller frees the
 * previous one only after a grace period (or after srv_http_stop()). */
struct srv_state *srv_http_swap(srv_http *h, struct srv_state *next);
/* Stop accepting, let requests in flight finish, free. Safe on NULL. */
void srv_http_stop(srv_http *h);

#endif
