/* CRLs (RFC 5280 §5) per issuing CA: built, signed with the CA's key and
 * stored in the database, whence the server serves them. One function,
 * crl_publish(), is used by the server's schedule, `mintctl crl publish`
 * and the operator API alike.
 *
 * Scopes. Each CA has a complete CRL (shard 0, every revocation of the CA,
 * no issuingDistributionPoint). With cfg->crl_shards = N > 0 it also has N
 * partitioned CRLs: shard k in 1..N lists the revocations whose certificate
 * was given crl_shard = k at issuance (crl_shard_of()), and carries a
 * critical issuingDistributionPoint naming its own URL, which is the URL
 * the certificate's CRL Distribution Point names. With
 * cfg->delta_crl_period_s > 0 each of these scopes also has a delta CRL
 * (RFC 5280 §5.2.4) on its latest complete CRL, and the complete CRLs carry
 * freshestCRL pointing at it. Every CRL of a CA (complete, shard, delta)
 * takes its cRLNumber from one counter in the database. */
#ifndef MINTCA_CRL_H
#define MINTCA_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"

/* RFC 5280 §5.3.1 reason codes that need a name here. */
#define CRL_REASON_UNSPECIFIED 0  /* listed without a reasonCode extension */
#define CRL_REASON_REMOVE 8       /* removeFromCRL: released holds, delta CRLs only */

/* Which CRL of a CA. */
struct crl_scope {
	unsigned shard;  /* 0: the CA's complete CRL; 1..cfg->crl_shards: that shard */
	bool delta;      /* the delta CRL of that scope */
};

/* The shard a certificate's revocation is listed in: 0 when n_shards is 0,
 * else 1 + (the first 8 hex digits of the serial, as a uint32) % n_shards.
 * Shorter serials use all their digits; a serial that is not hex gives 1
 * (n_shards > 0) so that it is still listed somewhere. */
unsigned crl_shard_of(const char *serial_hex, unsigned n_shards);

/* The URL a CRL is served at, for CRL Distribution Points and the CRLs'
 * own issuingDistributionPoint / freshestCRL:
 *   <base>/crl/<ca>.crl  <base>/crl/<ca>-<k>.crl  (-delta before ".crl")
 * base is cfg->public_base_url (without a trailing '/'); when unset,
 * http://<server.public_name>:<server.http_port>, or https://...:<port>
 * when there is no plain-HTTP listener. Returns 0, or -1 when it does not
 * fit in buf[len]. */
int crl_url(const struct cfg *cfg, const char *ca, const struct crl_scope *scope, char *buf,
	     size_t len) __attribute__((warn_unused_result));

/* ---- Publishing ---------------------------------------------------------- */

struct crl_result {
	bool published;        /* false: not due (min_age_s), or a delta with no
				* complete CRL to apply to yet; nothing changed */
	long long number;      /* cRLNumber */
	long long delta_of;    /* delta CRL: the base CRL's number; else 0 */
	unsigned shard;
	size_t entries;        /* revokedCertificates listed */
	size_t der_len;
	time_t this_update, next_update;
	/* Seconds (CLOCK_MONOTONIC): taking the CA's CRL counter, reading the
	 * revocations (entries are encoded while they stream in, so this holds
	 * the encoding too), assembling and signing, storing and committing,
	 * and all of it. */
	double lock_s, read_s, sign_s, store_s, total_s;
};

/* Publish one CRL of ca in one database transaction:
 *   1. take the next CRL number (UPDATE cas ... RETURNING; the row lock
 *      orders every process publishing for this CA until commit);
 *   2. min_age_s > 0: publish only when this scope has no CRL or its latest
 *      thisUpdate is at least min_age_s old (the schedule passes
 *      cfg->crl_period_s, so several servers do not each publish);
 *   3. read the CA's revocations (COPY), leaving out certificates whose
 *      notAfter + cfg->crl_retention_s is past; a delta CRL reads those
 *      revoked since its base's thisUpdate (less 5 minutes, for
 *      transactions that committed late) and the holds released since
 *      (removeFromCRL);
 *   4. build: v2, issuer = the CA's subject, thisUpdate = now (the CA
 *      context's clock), nextUpdate = now + cfg->crl_next_update_s (delta:
 *      now + 2 * cfg->delta_crl_period_s, at most that), cRLNumber,
 *      authorityKeyIdentifier, and per scope deltaCRLIndicator,
 *      issuingDistributionPoint, freshestCRL; sign with the CA's key;
 *   5. store it in crls (and delete this scope's CRLs whose nextUpdate has
 *      passed), commit.
 * The CA must be in the store (ca has a store). A failure at any step
 * leaves nothing behind (the number may be skipped: numbers only increase).
 * Returns 0 (res->published says whether a CRL was made) or -1 with err. */
int crl_publish(ca_ctx *ca, const struct cfg *cfg, const struct crl_scope *scope,
		unsigned min_age_s, struct crl_result *res, struct ca_err *err)
	__attribute__((warn_unused_result));

/* ---- Building (crl_publish uses it; tests and tools may too) ------------- */

typedef struct crl_builder crl_builder;

/* One revoked certificate. */
struct crl_entry {
	const char *serial_hex;  /* 1-40 hex digits, NUL-terminated */
	time_t revoked_at;
	int reason;              /* RFC 5280 §5.3.1: 0-6, 9, 10; 8 in delta CRLs only */
	time_t invalidity_date;  /* 0: none; else the invalidityDate entry extension */
	time_t not_after;        /* the certificate's notAfter; 0: unknown (listed) */
};

/* What goes around the entries. */
struct crl_params {
	long long number;            /* cRLNumber, >= 0 */
	long long delta_of;          /* > 0: a delta CRL on the base CRL of this number */
	time_t this_update, next_update;
	const char *idp_url;         /* shard CRLs: issuingDistributionPoint fullName (critical) */
	const char *freshest_url;    /* complete CRLs with deltas: freshestCRL */
};

struct crl_build_stats {
	size_t entries;              /* listed */
	size_t expired;              /* left out: notAfter + retention in the past */
	double assemble_s, sign_s;   /* crl_builder_finish: TBS, then the signature */
};

/* A builder for one CRL of ca (borrowed; its key signs). Entries whose
 * not_after is before list_expired_since are left out (0: none are). delta:
 * removeFromCRL entries are allowed. Each entry is DER-encoded as it is
 * added, so memory is about 45 bytes per entry. Caller frees with
 * crl_builder_free(). NULL on error. */
crl_builder *crl_builder_new(ca_ctx *ca, time_t list_expired_since, bool delta, struct ca_err *err);
/* Add one entry. Entries are listed in the order added (RFC 5280 asks for
 * none). 0, or -1 (CA_E_BAD_REQUEST: bad serial or reason). */
int crl_builder_add(crl_builder *b, const struct crl_entry *e, struct ca_err *err)
	__attribute__((warn_unused_result));
/* Build the CRL and sign it. *der is malloc'd: caller frees with free().
 * Call once. 0 or -1. */
int crl_builder_finish(crl_builder *b, const struct crl_params *p, unsigned char **der,
		       size_t *len, struct ca_err *err) __attribute__((warn_unused_result));
void crl_builder_stats(const crl_builder *b, struct crl_build_stats *out);
void crl_builder_free(crl_builder *b);  /* safe on NULL */

#endif
