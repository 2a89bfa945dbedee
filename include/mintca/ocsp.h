/* OCSP (RFC 6960, lightweight profile RFC 5019): the responder answers for
 * every CA of the server with one delegated responder certificate per CA.
 *
 * Three parts:
 *   - ca-core/ocsp.c: the responder certificate's internal profile, its
 *     issuance through ca_issue(), and signing a BasicOCSPResponse;
 *   - protocols/ocsp/: decoding a request, finding the CA by the CertID's
 *     issuerNameHash + issuerKeyHash, the status, and the cache of signed
 *     responses (so the HSM is not touched per request);
 *   - db/ocsp.c (declared in mintca/db.h): status lookup, responder rows, and
 *     the LISTEN session that invalidates the cache.
 * The module knows nothing of HTTP: server/http_ocsp.c does the transport. */
#ifndef MINTCA_OCSP_H
#define MINTCA_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/ocsp.h>
#include "mintca/ca.h"
#include "mintca/db.h"

/* Largest request accepted, DER (RFC 5019 requests are about 100 bytes). */
#define OCSP_REQ_MAX 4096
/* At most this many CertIDs in one request (RFC 5019 §2.1.1 asks for one). */
#define OCSP_MAX_CERTIDS 8
/* An 'unknown' answer is cached, and valid, this long only. */
#define OCSP_UNKNOWN_TTL_S 5
/* The internal profile the responder certificates are issued under. */
#define OCSP_RESPONDER_PROFILE "ocsp.responder"

/* --- ca-core/ocsp.c ------------------------------------------------------ */

/* Fill p with the internal responder profile (RFC 6960 §4.2.2.2: EKU
 * id-kp-OCSPSigning, id-pkix-ocsp-nocheck, keyUsage digitalSignature), the
 * given lifetime, operator-only. p's lists are malloc'd (ca_ctx_add_profile
 * takes them). 0 or -1. */
int ocsp_responder_profile(struct ca_profile *p, long long validity_s, struct ca_err *err)
	__attribute__((warn_unused_result));

/* Issue a responder certificate for key (the private half, e.g. on the
 * CA's token) through ca_issue() under OCSP_RESPONDER_PROFILE, which ca must
 * hold. Caller frees res with ca_issue_res_free(). 0 or -1. */
int ocsp_issue_responder(ca_ctx *ca, sig_key *key, struct ca_issue_res *res, struct ca_err *err)
	__attribute__((warn_unused_result));

/* One SingleResponse to sign. */
struct ocsp_single {
	OCSP_CERTID *id;          /* borrowed: echoed as the request had it */
	int status;               /* V_OCSP_CERTSTATUS_GOOD / _REVOKED / _UNKNOWN */
	time_t revoked_at;        /* REVOKED */
	int reason;               /* REVOKED: RFC 5280 reason, -1 for none */
	time_t this_update, next_update;
};

/* Sign a successful OCSPResponse holding s[0..n) with the responder
 * certificate and key (responderID byKey, the certificate included), the
 * nonce of nonce_from copied when it is not NULL. *der is malloc'd (caller
 * frees with OPENSSL_free). 0 or -1 (CA_E_SIGNER). */
int ocsp_sign(X509 *signer, sig_key *key, const struct ocsp_single *s, size_t n,
	      OCSP_REQUEST *nonce_from, unsigned char **der, size_t *len, struct ca_err *err)
	__attribute__((warn_unused_result));

/* --- protocols/ocsp ------------------------------------------------------ */

typedef struct ocsp_cache ocsp_cache;
typedef struct ocsp_responder ocsp_responder;

/* The cache of signed responses, shared by every responder of the process
 * (it outlives reloads): sharded, each shard under its own read-write lock.
 * At most max_entries responses (oldest dropped first); 0 = a default.
 * Caller frees with ocsp_cache_free() once nothing uses it. NULL on error. */
ocsp_cache *ocsp_cache_new(size_t max_entries);
void ocsp_cache_free(ocsp_cache *c);
/* Drop the responses for a serial (lower-case hex, as the store keeps it;
 * "*" drops everything). Safe from any thread. */
void ocsp_cache_invalidate(ocsp_cache *c, const char *serial_hex);
void ocsp_cache_flush(ocsp_cache *c);
/* Whether new responses may be cached: only while the revocation LISTEN
 * session is up (otherwise a revocation could be missed). Off at creation. */
void ocsp_cache_set_live(ocsp_cache *c, bool live);
/* Drop responses past their nextUpdate. */
void ocsp_cache_sweep(ocsp_cache *c, time_t now);
struct ocsp_cache_stats { unsigned long long hits, misses, entries; };
void ocsp_cache_stats(ocsp_cache *c, struct ocsp_cache_stats *out);

/* Where the status of a serial comes from (the store by default; tests
 * inject their own). Returns 0 and fills r, 1 when the store has no such
 * certificate, -1 when the store is unavailable (err set). */
struct ocsp_cert_status {
	char ca[CA_NAME_MAX];     /* the CA that holds the serial */
	bool issued;              /* false: only reserved */
	bool revoked;
	time_t revoked_at;
	int reason;               /* RFC 5280 reason code */
};
typedef int (*ocsp_status_fn)(void *arg, const char *serial_hex, struct ocsp_cert_status *r,
			      struct ca_err *err);
typedef time_t (*ocsp_clock_fn)(void *arg);

/* A responder over a set of CAs. validity_s: nextUpdate - thisUpdate.
 * store may be NULL when a status function is set. cache may be NULL (no
 * caching). Both are borrowed. NULL on error. */
ocsp_responder *ocsp_responder_new(db_store *store, ocsp_cache *cache, unsigned validity_s,
				   struct ca_err *err);
void ocsp_responder_free(ocsp_responder *r);
void ocsp_responder_set_status_fn(ocsp_responder *r, ocsp_status_fn fn, void *arg);
void ocsp_responder_set_clock(ocsp_responder *r, ocsp_clock_fn fn, void *arg);
/* Answer for ca (borrowed; must outlive r). Returns its index, or -1. Call
 * before r answers requests. */
int ocsp_responder_add_ca(ocsp_responder *r, ca_ctx *ca, struct ca_err *err);
size_t ocsp_responder_count(const ocsp_responder *r);
/* Install (or replace) the responder certificate and key of CA i: the
 * certificate is up-referenced, the key borrowed (it must outlive r: signing
 * goes through sig_with_privkey(), so a token session re-opened meanwhile is
 * used); requests signing with the previous pair finish with it. The caller
 * has checked that the key matches the certificate. 0 or -1. */
int ocsp_responder_set_signer(ocsp_responder *r, size_t i, X509 *cert, sig_key *key,
			      struct ca_err *err);
/* notAfter of CA i's responder certificate, 0 when it has none. */
time_t ocsp_responder_signer_expiry(ocsp_responder *r, size_t i);

/* One answer: always an OCSPResponse (DER) to send with HTTP 200. */
struct ocsp_answer {
	unsigned char *der;       /* malloc'd: ocsp_answer_free() */
	size_t len;
	int response_status;      /* OCSP_RESPONSE_STATUS_* */
	bool cacheable;           /* one CertID, no nonce: RFC 5019 §6 HTTP caching applies */
	bool from_cache;
	time_t this_update, next_update;
	char etag[44];            /* "\"<sha1 hex>\"" when cacheable */
	char cert_status[12];     /* "good", "revoked", "unknown", "" (log) */
	char why[160];            /* refusals and failures, for the log */
};
void ocsp_answer_free(struct ocsp_answer *a);

/* Answer one DER request (POST body, or the decoded GET path). Never fails:
 * malformed input gives malformedRequest, an issuer not served here
 * unauthorized, a store or signer failure tryLater. */
void ocsp_respond(ocsp_responder *r, const unsigned char *req, size_t len, struct ocsp_answer *a);
/* The part of ocsp_respond() that never waits: true with the answer when it
 * is a cached response or a refusal; false (a empty) when the status must be
 * read from the store and signed: then call ocsp_respond() where waiting is
 * fine. */
bool ocsp_respond_cached(ocsp_responder *r, const unsigned char *req, size_t len, struct ocsp_answer *a);

/* The DER request of an RFC 5019 §5 GET path: path is the part after
 * "/ocsp/" with percent-escapes already decoded; base64 (the standard
 * alphabet, padding optional). Writes at most cap bytes. 0, or -1 when it
 * is not base64 or longer than cap. */
int ocsp_decode_get(const char *path, unsigned char *out, size_t cap, size_t *len);

#endif
