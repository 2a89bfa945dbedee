/* Software signers: the development-only PEM file key, and an in-memory key
 * for tests and benchmarks. Neither is fit for a production CA. */
#include <stdio.h>
#include <stdlib.h>
#include <openssl/pem.h>
#include "mintca/log.h"
#include "sig_int.h"

struct soft_key {
	struct sig_key base;
	EVP_PKEY *pk;
};

static int soft_sign(sig_key *k, X509 *x, struct ca_err *err)
{
	return sig_sign_with_pkey(((struct soft_key *)k)->pk, x, err);
}

static EVP_PKEY *soft_pkey(sig_key *k)
{
	return ((struct soft_key *)k)->pk;
}

static void soft_close(sig_key *k)
{
	struct soft_key *s = (struct soft_key *)k;

	EVP_PKEY_free(s->pk);
	free(s);
}

static const struct sig_ops file_ops = {
	.name = "file", .sign_x509 = soft_sign, .pubkey = soft_pkey,
	.privkey = soft_pkey, .close = soft_close,
};
static const struct sig_ops mem_ops = {
	.name = "memory", .sign_x509 = soft_sign, .pubkey = soft_pkey,
	.privkey = soft_pkey, .close = soft_close,
};

static sig_key *soft_new(EVP_PKEY *pk, const struct sig_ops *ops)
{
	struct soft_key *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	s->base.ops = ops;
	s->pk = pk;
	return &s->base;
}

sig_key *sig_mem_key(EVP_PKEY *pk)
{
	return soft_new(pk, &mem_ops);
}

sig_key *sig_file_key(const char *pem_path, struct ca_err *err)
{
	FILE *f;
	EVP_PKEY *pk;
	sig_key *k;

	log_kv(LOG_WARN, "signer.unsafe_file_key", "path", pem_path, "why",
	       "DEVELOPMENT ONLY: the CA private key is in a file, not in an HSM", NULL);
	if ((f = fopen(pem_path, "r")) == NULL) {
		ca_err_set(err, CA_E_SIGNER, "cannot open CA key file %s", pem_path);
		return NULL;
	}
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pk == NULL) {
		ca_err_ssl(err, CA_E_SIGNER, "no private key in %s", pem_path);
		return NULL;
	}
	if ((k = soft_new(pk, &file_ops)) == NULL)
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
	return k;
}
