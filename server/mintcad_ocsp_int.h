/* Private to mintcad: the OCSP responders (server/mintcad_ocsp.c). */
#ifndef MINTCA_MINTCAD_OCSP_INT_H
#define MINTCA_MINTCAD_OCSP_INT_H

#include "mintca/ocsp.h"
#include "http.h"

/* Process-wide, outliving reloads: the cache of signed responses and the
 * thread whose own PostgreSQL session LISTENs for revocations (and flushes
 * the cache whenever that session is lost). Caller stops it with
 * srv_ocsp_svc_stop() after the HTTP listeners. NULL on error. */
typedef struct srv_ocsp_svc srv_ocsp_svc;
srv_ocsp_svc *srv_ocsp_svc_start(db_store *st, struct ca_err *err);
void srv_ocsp_svc_stop(srv_ocsp_svc *svc);

/* The responders of one state's CAs: for each CA a key (on its PKCS#11
 * token, label "<issuing key label>-ocsp", generated there on first use; a
 * key in memory for a file-signer CA) and a delegated responder certificate
 * issued through ca_issue() (profile "ocsp.responder", added to each CA
 * here: call before st answers requests), recorded in ocsp_responders and
 * reused by the next start while valid. A thread renews each certificate at
 * half its life. A CA whose responder cannot be set up is logged and tried
 * again by that thread; its requests get tryLater meanwhile. NULL on error
 * (out of memory). */
struct srv_ocsp *srv_ocsp_new(struct srv_state *st, srv_ocsp_svc *svc, struct ca_err *err);
/* Stop renewing (the state was swapped out); requests may still answer. */
void srv_ocsp_quiesce(struct srv_ocsp *o);
/* Quiesce and free. Before the state's CAs are freed. Safe on NULL. */
void srv_ocsp_free(struct srv_ocsp *o);
/* The responder requests use (borrowed). */
ocsp_responder *srv_ocsp_responder(const struct srv_ocsp *o);

#endif
