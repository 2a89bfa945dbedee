/* Private to mintcad: the HTTPS front door on libmicrohttpd. */
#ifndef MINTCA_HTTP_H
#define MINTCA_HTTP_H

#include "mintca/ca.h"
#include "mintca/cfg.h"
#include "srv_int.h"

typedef struct srv_http srv_http;

/* Start listening (worker threads of its own). Reads the TLS files named in
 * the config. Caller stops with srv_http_stop(). NULL on error. */
srv_http *srv_http_start(const struct cfg *c, ca_ctx *ca, const srv_trust *trust,
			 struct ca_err *err);
/* Stop accepting, let requests in flight finish, free. Safe on NULL. */
void srv_http_stop(srv_http *h);

#endif
