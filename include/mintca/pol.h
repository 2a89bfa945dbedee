/* The policy engine: one decision for every protocol. ca_issue() calls it;
 * `mintctl policy explain` calls it with a trace and issues nothing. */
#ifndef MINTCA_POL_H
#define MINTCA_POL_H

#include <stdbool.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"

/* Every rule that led to a decision, one line each (capped). */
struct pol_trace {
	char *text;      /* NUL-terminated; free with pol_trace_free() */
	size_t len, cap;
};
void pol_trace_free(struct pol_trace *t);

/* What the certificate will say, once allowed. */
struct pol_decision {
	X509_NAME *subject;     /* the subject after the profile's rules */
	GENERAL_NAMES *sans;    /* the SANs, or NULL for none */
	const struct ca_credential *cred; /* the requester's credential entry, or NULL */
};
void pol_decision_free(struct pol_decision *d);

/* Step 2 of issuance: may this requester use this profile (and renew this
 * certificate)? 0 allow, -1 deny with err. trace may be NULL. */
int pol_authorize(const ca_ctx *ctx, const struct ca_profile *p, const struct ca_requester *who,
		  X509 *renew_of, struct pol_trace *trace, struct ca_err *err)
	__attribute__((warn_unused_result));

/* Step 4: the key, the subject and the SANs of a decoded, verified CSR under
 * the profile and the requester's credential. Fills d on allow. */
int pol_check(const ca_ctx *ctx, const struct ca_profile *p, const struct ca_requester *who,
	      X509_REQ *csr, X509 *renew_of, struct pol_decision *d, struct pol_trace *trace,
	      struct ca_err *err) __attribute__((warn_unused_result));

#endif
