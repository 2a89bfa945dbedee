/* PKCS#11 signer through libp11: the CA private key stays on the token; OpenSSL
 * calls the token through the EVP_PKEY libp11 hands back. Several threads may
 * sign with one key (libp11 takes a session per operation). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <libp11.h>
#include "mintca/log.h"
#include "sig_int.h"

/* One PKCS11_CTX per module, shared by every token opened from it: a second
 * C_Initialize/C_Finalize of the same module would tear down the first's
 * sessions. Touched only when tokens are opened or closed, never per request. */
struct p11_module {
	char *path;
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	int refs;
};

#define MAX_MODULES 8
static struct p11_module modules[MAX_MODULES];
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;

struct p11_key {
	struct sig_key base;
	EVP_PKEY *priv;
	EVP_PKEY *pub;
};

struct sig_p11 {
	struct p11_module *mod;
	PKCS11_SLOT *slot; /* the slot holding our token, logged in */
};

static void module_release(struct p11_module *m)
{
	pthread_mutex_lock(&modules_mu);
	if (--m->refs == 0) {
		if (m->slots != NULL)
			PKCS11_release_all_slots(m->ctx, m->slots, m->nslots);
		PKCS11_CTX_unload(m->ctx);
		PKCS11_CTX_free(m->ctx);
		free(m->path);
		memset(m, 0, sizeof(*m));
	}
	pthread_mutex_unlock(&modules_mu);
}

static struct p11_module *module_get(const char *path, struct ca_err *err)
{
	struct p11_module *m = NULL, *free_slot = NULL;

	pthread_mutex_lock(&modules_mu);
	for (int i = 0; i < MAX_MODULES && m == NULL; i++) {
		if (modules[i].refs > 0 && strcmp(modules[i].path, path) == 0)
			m = &modules[i];
		else if (modules[i].refs == 0 && free_slot == NULL)
			free_slot = &modules[i];
	}
	if (m == NULL && free_slot == NULL)
		ca_err_set(err, CA_E_SIGNER, "more than %d PKCS#11 modules", MAX_MODULES);
	if (m == NULL && free_slot != NULL) {
		m = free_slot;
		if ((m->path = strdup(path)) == NULL || (m->ctx = PKCS11_CTX_new()) == NULL ||
		    PKCS11_CTX_load(m->ctx, path) != 0) {
			ca_err_ssl(err, CA_E_SIGNER, "cannot load PKCS#11 module %s", path);
			if (m->ctx != NULL)
				PKCS11_CTX_free(m->ctx);
			free(m->path);
			memset(m, 0, sizeof(*m));
			m = NULL;
		} else if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
			ca_err_ssl(err, CA_E_SIGNER, "cannot list PKCS#11 slots of %s", path);
			PKCS11_CTX_unload(m->ctx);
			PKCS11_CTX_free(m->ctx);
			free(m->path);
			memset(m, 0, sizeof(*m));
			m = NULL;
		}
	}
	if (m != NULL)
		m->refs++;
	pthread_mutex_unlock(&modules_mu);
	return m;
}

void sig_p11_close(sig_p11 *p)
{
	if (p == NULL)
		return;
	if (p->mod != NULL)
		module_release(p->mod);
	free(p);
}

sig_p11 *sig_p11_open(const char *module, const char *token_label,
		      const sec_str *pin, struct ca_err *err)
{
	sig_p11 *p;
	unsigned int i;
	int logged = 0;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	if ((p->mod = module_get(module, err)) == NULL)
		goto fail;
	for (i = 0; i < p->mod->nslots; i++) {
		PKCS11_TOKEN *t = p->mod->slots[i].token;
		if (t != NULL && t->label != NULL && strcmp(t->label, token_label) == 0) {
			p->slot = &p->mod->slots[i];
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
	/* Two CAs on one token share its login. */
	if (PKCS11_is_logged_in(p->slot, 0, &logged) != 0)
		logged = 0;
	if (!logged && PKCS11_login(p->slot, 0, pin->buf) != 0) {
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
