/* PKCS#11 signer through libp11: the CA private key stays on the token; OpenSSL
 * calls the token through the EVP_PKEY libp11 hands back. Several threads may
 * sign with one key (libp11 takes a session per operation). */
#include <stdlib.h>
#include <string.h>
#include <libp11.h>
#include "mintca/log.h"
#include "sig_int.h"

struct sig_p11 {
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *slot; /* the slot holding our token, logged in */
};

struct p11_key {
	struct sig_key base;
	EVP_PKEY *priv;
	EVP_PKEY *pub;
};

void sig_p11_close(sig_p11 *p)
{
	if (p == NULL)
		return;
	if (p->slots != NULL)
		PKCS11_release_all_slots(p->ctx, p->slots, p->nslots);
	if (p->ctx != NULL) {
		PKCS11_CTX_unload(p->ctx);
		PKCS11_CTX_free(p->ctx);
	}
	free(p);
}

sig_p11 *sig_p11_open(const char *module, const char *token_label,
		      const sec_str *pin, struct ca_err *err)
{
	sig_p11 *p;
	unsigned int i;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	if ((p->ctx = PKCS11_CTX_new()) == NULL ||
	    PKCS11_CTX_load(p->ctx, module) != 0) {
		ca_err_ssl(err, CA_E_SIGNER, "cannot load PKCS#11 module %s", module);
		goto fail;
	}
	if (PKCS11_enumerate_slots(p->ctx, &p->slots, &p->nslots) != 0) {
		ca_err_ssl(err, CA_E_SIGNER, "cannot list PKCS#11 slots of %s", module);
		goto fail;
	}
	for (i = 0; i < p->nslots; i++) {
		PKCS11_TOKEN *t = p->slots[i].token;
		if (t != NULL && t->label != NULL && strcmp(t->label, token_label) == 0) {
			p->slot = &p->slots[i];
			break;
		}
	}
	if (p->slot == NULL) {
		ca_err_set(err, CA_E_SIGNER, "no PKCS#11 token labelled '%s' in %s",
			   token_label, module);
		goto fail;
	}
	/* Logging in to an uninitialised token can hang some modules. */
	if (!p->slot->token->initialized) {
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token '%s' is not initialised", token_label);
		goto fail;
	}
	if (PKCS11_login(p->slot, 0, pin->buf) != 0) {
		ca_err_ssl(err, CA_E_SIGNER, "PKCS#11 login to token '%s' failed (PIN %s)",
			   token_label, LOG_REDACTED);
		goto fail;
	}
	return p;
fail:
	sig_p11_close(p);
	return NULL;
}

static int p11_sign(sig_key *k, X509 *x, struct ca_err *err)
{
	return sig_sign_with_pkey(((struct p11_key *)k)->priv, x, err);
}

static EVP_PKEY *p11_pub(sig_key *k)
{
	return ((struct p11_key *)k)->pub;
}

static EVP_PKEY *p11_priv(sig_key *k)
{
	return ((struct p11_key *)k)->priv;
}

static void p11_close(sig_key *k)
{
	struct p11_key *pk = (struct p11_key *)k;

	EVP_PKEY_free(pk->priv);
	EVP_PKEY_free(pk->pub);
	free(pk);
}

static const struct sig_ops p11_ops = {
	.name = "pkcs11", .sign_x509 = p11_sign, .pubkey = p11_pub,
	.privkey = p11_priv, .close = p11_close,
};

/* The key labelled `label` among the token's private (priv=1) or public keys. */
static PKCS11_KEY *find_key(PKCS11_TOKEN *t, const char *label, int priv)
{
	PKCS11_KEY *keys = NULL;
	unsigned int n = 0, i;
	int rc = priv ? PKCS11_enumerate_keys(t, &keys, &n)
		      : PKCS11_enumerate_public_keys(t, &keys, &n);

	if (rc != 0)
		return NULL;
	for (i = 0; i < n; i++)
		if (keys[i].label != NULL && strcmp(keys[i].label, label) == 0)
			return &keys[i];
	return NULL;
}

sig_key *sig_p11_key(sig_p11 *p, const char *key_label, struct ca_err *err)
{
	struct p11_key *k;
	PKCS11_KEY *priv, *pub;

	if ((priv = find_key(p->slot->token, key_label, 1)) == NULL) {
		ca_err_ssl(err, CA_E_SIGNER, "no private key labelled '%s' on the token", key_label);
		return NULL;
	}
	if ((pub = find_key(p->slot->token, key_label, 0)) == NULL) {
		ca_err_ssl(err, CA_E_SIGNER, "no public key labelled '%s' on the token", key_label);
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	k->base.ops = &p11_ops;
	k->priv = PKCS11_get_private_key(priv);
	k->pub = PKCS11_get_public_key(pub);
	if (k->priv == NULL || k->pub == NULL) {
		ca_err_ssl(err, CA_E_SIGNER, "cannot use key '%s' on the token", key_label);
		p11_close(&k->base);
		return NULL;
	}
	return &k->base;
}
