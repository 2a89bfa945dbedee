/* Private to protocols/ocsp: what the responder asks of the cache. */
#ifndef MINTCA_OCSP_INT_H
#define MINTCA_OCSP_INT_H

#include <stddef.h>
#include <time.h>
#include "mintca/ocsp.h"

enum ocsp_cache_result {
	OCSP_CACHE_MISS,    /* nothing usable: sign */
	OCSP_CACHE_HIT,     /* a copy in the answer: send it */
	OCSP_CACHE_REFRESH, /* a copy in the answer, and this caller was chosen to
			     * sign a fresh one (the copy is the fallback) */
};

/* Look up the response for a CertID (key: its DER) of serial (lower-case
 * hex). On HIT and REFRESH the answer's der (malloc'd), times, etag and
 * cert_status are filled. *gen receives the shard's invalidation
 * generation, to hand to ocsp_cache_put() after the status was read. */
enum ocsp_cache_result ocsp_cache_get(ocsp_cache *c, const char *serial, const unsigned char *key,
				      size_t klen, time_t now, struct ocsp_answer *a,
				      unsigned long *gen);
/* Keep a signed response (copied) until a->next_update, to be re-signed
 * from refresh_at on. Dropped when the serial was invalidated since gen was
 * read, or while the cache is not live. */
void ocsp_cache_put(ocsp_cache *c, const char *serial, const unsigned char *key, size_t klen,
		    const struct ocsp_answer *a, time_t refresh_at, unsigned long gen);

#endif
