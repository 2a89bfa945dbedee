/* Private to the signer backends: every sig_key starts with its ops table. */
#ifndef MINTCA_SIG_INT_H
#define MINTCA_SIG_INT_H

#include "mintca/sig.h"

struct sig_key {
	const struct sig_ops *ops;
};

/* X509_sign with the digest sig_digest_for() picks. 0 or -1. */
int sig_sign_with_pkey(EVP_PKEY *pk, X509 *x, struct ca_err *err);

#endif
