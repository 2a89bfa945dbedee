/* Signers: where a CA private key lives. The rest of ca-core only sees a
 * sig_key and never knows which backend holds it (PKCS#11 token, or the
 * development-only PEM file). */
#ifndef MINTCA_SIG_H
#define MINTCA_SIG_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include "mintca/err.h"
#include "mintca/secret.h"

typedef struct sig_key sig_key;
typedef struct sig_p11 sig_p11;

/* The backend table every signer implements. */
struct sig_ops {
	const char *name;
	/* Sign x (a certificate whose TBS is complete) in place. 0 or -1. */
	int (*sign_x509)(sig_key *k, X509 *x, struct ca_err *err);
	/* Run fn(private key, arg) while the key cannot be re-opened under it;
	 * optional (NULL: fn(privkey(k), arg)). 0 or -1. */
	int (*with_privkey)(sig_key *k, int (*fn)(EVP_PKEY *pk, void *arg), void *arg,
			    struct ca_err *err);
	/* Like sign_x509 for any fn(private key, obj): with the signing
	 * deadline; takes one reference to obj, released with obj_free
	 * (perhaps later, on another thread). Optional (NULL: fn runs here). */
	int (*submit)(sig_key *k, int (*fn)(EVP_PKEY *pk, void *obj), void *obj,
		      void (*obj_free)(void *obj), struct ca_err *err);
	/* Public key, borrowed: valid until close. */
	EVP_PKEY *(*pubkey)(sig_key *k);
	/* Private key handle usable with OpenSSL sign calls (X509_sign,
	 * X509_CRL_sign, OCSP_basic_sign); borrowed. For a PKCS#11 key it is
	 * valid only until the signer re-opens a lost session (libp11 frees
	 * what it points to), and calls made with it get neither that re-open
	 * nor the signing deadline: use sig_sign_x509() or sig_with_privkey(). */
	EVP_PKEY *(*privkey)(sig_key *k);
	void (*close)(sig_key *k);
};

/* Open a PKCS#11 module, find the token by label and log in with pin.
 * Caller frees with sig_p11_close() after closing every key from it. */
sig_p11 *sig_p11_open(const char *module, const char *token_label,
		      const sec_str *pin, struct ca_err *err);
void sig_p11_close(sig_p11 *p);
/* The private key labelled key_label on the token (its public key must be
 * on the token too). Caller frees with sig_close(). NULL on error. */
sig_key *sig_p11_key(sig_p11 *p, const char *key_label, struct ca_err *err);

/* Generate a key pair inside the token (never exported: CKA_SENSITIVE,
 * not CKA_EXTRACTABLE, CKA_TOKEN) with both halves labelled key_label and a
 * fresh random CKA_ID. key_type: "ec-p256", "ec-p384", "rsa-2048",
 * "rsa-3072", "rsa-4096". Refuses (CA_E_CONFIG) when a key with that label
 * exists. Talks PKCS#11 directly (libp11 cannot generate EC keys) and
 * finalizes the module before returning, so sig_p11_open() works after it.
 * 0 or -1. */
int sig_p11_generate(const char *module, const char *token_label, const sec_str *pin,
		     const char *key_label, const char *key_type, struct ca_err *err)
	__attribute__((warn_unused_result));

/* DEVELOPMENT ONLY: a private key in a PEM file. Logs a warning on every
 * open. Caller frees with sig_close(). */
sig_key *sig_file_key(const char *pem_path, struct ca_err *err);

/* A software key held in memory (tests, benchmarks). Takes ownership of pk. */
sig_key *sig_mem_key(EVP_PKEY *pk);

/* Sign a certificate whose TBS is complete, in place. With a PKCS#11 key:
 * on a signer thread, waiting at most a deadline (then CA_E_SIGNER, with
 * retry_after set), with one re-open of the token and one retry when its
 * session was lost. x is referenced until the token is done with it: after
 * a failure, do not use x again (a late signature may still be written).
 * 0 or -1. */
int sig_sign_x509(sig_key *k, X509 *x, struct ca_err *err)
	__attribute__((warn_unused_result));
/* Any other signature (CRL, OCSP): fn(pk, arg) returns > 0 on success, as
 * OpenSSL does; pk is valid only during the call. With a PKCS#11 key it
 * runs on the calling thread with no deadline (not for request paths that
 * must answer), with the same re-open and one retry. 0 or -1. */
int sig_with_privkey(sig_key *k, int (*fn)(EVP_PKEY *pk, void *arg), void *arg,
		     struct ca_err *err) __attribute__((warn_unused_result));
/* A signature a request waits for (OCSP responses): fn(pk, obj) as above,
 * but with a PKCS#11 key on a signer thread with sig_sign_x509()'s deadline,
 * re-open and retry. Takes over one reference to obj, released with
 * obj_free once the token is done with it, which may be after this
 * returned a timeout: keep a reference of your own to read obj. 0 or -1. */
int sig_submit(sig_key *k, int (*fn)(EVP_PKEY *pk, void *obj), void *obj, void (*obj_free)(void *obj),
	       struct ca_err *err) __attribute__((warn_unused_result));
EVP_PKEY *sig_pubkey(sig_key *k);   /* borrowed */
EVP_PKEY *sig_privkey(sig_key *k);  /* borrowed */
const char *sig_backend(sig_key *k); /* "pkcs11", "file" or "memory" */
void sig_close(sig_key *k);          /* safe on NULL */

/* The digest to sign with for this key: SHA-384 for P-384, none for
 * Ed25519, SHA-256 otherwise. NULL means "no digest" (Ed25519). */
const EVP_MD *sig_digest_for(EVP_PKEY *pk);

#endif
