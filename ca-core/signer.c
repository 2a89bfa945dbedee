/* Backend-neutral signer calls: dispatch through the key's ops table. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include "sig_int.h"

int sig_sign_x509(sig_key *k, X509 *x, struct ca_err *err)
{
	return k->ops->sign_x509(k, x, err);
}

int sig_with_privkey(sig_key *k, int (*fn)(EVP_PKEY *pk, void *arg), void *arg,
		     struct ca_err *err)
{
	if (k->ops->with_privkey != NULL)
		return k->ops->with_privkey(k, fn, arg, err);
	if (fn(k->ops->privkey(k), arg) <= 0) {
		ca_err_ssl(err, CA_E_SIGNER, "signing failed");
		return -1;
	}
	return 0;
}

int sig_submit(sig_key *k, int (*fn)(EVP_PKEY *pk, void *obj), void *obj, void (*obj_free)(void *obj),
	       struct ca_err *err)
{
	int rc;

	if (k->ops->submit != NULL)
		return k->ops->submit(k, fn, obj, obj_free, err);
	rc = sig_with_privkey(k, fn, obj, err);
	obj_free(obj);
	return rc;
}

EVP_PKEY *sig_pubkey(sig_key *k)
{
	return k->ops->pubkey(k);
}

EVP_PKEY *sig_privkey(sig_key *k)
{
	return k->ops->privkey(k);
}

const char *sig_backend(sig_key *k)
{
	return k->ops->name;
}

void sig_close(sig_key *k)
{
	if (k != NULL)
		k->ops->close(k);
}

const EVP_MD *sig_digest_for(EVP_PKEY *pk)
{
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		return NULL;
	case EVP_PKEY_EC:
		/* Match the digest to the curve's strength (RFC 5758 §3.2). */
		return EVP_PKEY_get_bits(pk) > 256 ? EVP_sha384() : EVP_sha256();
	default:
		return EVP_sha256();
	}
}

/* Shared by the backends whose private key is a plain EVP_PKEY. */
int sig_sign_with_pkey(EVP_PKEY *pk, X509 *x, struct ca_err *err)
{
	if (X509_sign(x, pk, sig_digest_for(pk)) <= 0) {
		ca_err_ssl(err, CA_E_SIGNER, "signing failed");
		return -1;
	}
	return 0;
}
