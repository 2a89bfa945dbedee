/* The CAs of one server: the default CA and the "issuing_cas", each with its
 * own signer (token and key label, or dev file) and the profiles naming it.
 * Read-only once built; requests only look things up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>
#include "mintca/log.h"
#include "srv_int.h"

#define MAX_DEPTH 8

struct srv_ca {
	ca_ctx *ctx;
	sig_p11 *p11;
};

struct srv_cas {
	struct srv_ca *v;
	size_t n;
};

static X509 *load_cert(db_store *st, const char *name, char *parent, size_t plen, struct ca_err *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509 *x = NULL;
	int r = db_ca_get_parent(st, name, &der, &len, parent, plen, err);

	if (r > 0)
		ca_err_set(err, CA_E_CONFIG, "CA '%s' is not in the store: create it with mintctl ca init / create / import", name);
	if (r != 0)
		return NULL;
	p = der;
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL)
		ca_err_ssl(err, CA_E_STORE, "CA certificate '%s' in the store is not DER", name);
	free(der);
	return x;
}

int srv_load_chain(db_store *st, const char *name, X509 **root, STACK_OF(X509) *mids, struct ca_err *err)
{
	char parent[CA_NAME_MAX] = "", cur[CA_NAME_MAX];
	X509 *x = load_cert(st, name, parent, sizeof(parent), err);
	int depth = 0;

	*root = NULL;
	if (x == NULL)
		return -1;
	X509_free(x); /* the CA itself: its caller has it */
	while (parent[0] != '\0') {
		if (++depth > MAX_DEPTH) {
			ca_err_set(err, CA_E_CONFIG, "CA '%s': chain longer than %d", name, MAX_DEPTH);
			return -1;
		}
		snprintf(cur, sizeof(cur), "%s", parent);
		if ((x = load_cert(st, cur, parent, sizeof(parent), err)) == NULL)
			return -1;
		if (parent[0] == '\0') {
			*root = x;
		} else if (!sk_X509_push(mids, x)) {
			X509_free(x);
			ca_err_set(err, CA_E_INTERNAL, "out of memory");
			return -1;
		}
	}
	return 0;
}

ca_ctx *srv_open_issuing_ca(const struct cfg_ca *cc, db_store *st, sig_p11 **p11, struct ca_err *err)
{
	sig_key *key = NULL;
	X509 *cert = NULL, *root = NULL;
	STACK_OF(X509) *mids = sk_X509_new_null();
	ca_ctx *ca = NULL;
	sec_str pin = { 0 };
	char parent[CA_NAME_MAX];

	*p11 = NULL;
	if (mids == NULL)
		goto fail;
	if (cc->signer == CFG_SIGNER_FILE) {
		key = sig_file_key(cc->key_file, err);
	} else {
		if (sec_read_file(&pin, cc->pin_file) != 0) {
			ca_err_set(err, CA_E_CONFIG, "issuing CA '%s': cannot read PIN file %s: %s", cc->name,
				   cc->pin_file, strerror(errno));
			goto fail;
		}
		*p11 = sig_p11_open(cc->module, cc->token_label, &pin, err);
		sec_clear(&pin);
		key = *p11 ? sig_p11_key(*p11, cc->key_label, err) : NULL;
	}
	if (key == NULL || (cert = load_cert(st, cc->name, parent, sizeof(parent), err)) == NULL ||
	    srv_load_chain(st, cc->name, &root, mids, err) != 0)
		goto fail;
	if ((ca = ca_ctx_new(cc->name, key, cert, root, st, err)) == NULL)
		goto fail;
	key = NULL;
	cert = root = NULL;
	while (sk_X509_num(mids) > 0) {
		X509 *m = sk_X509_shift(mids);
		if (ca_ctx_add_chain(ca, m, err) != 0) {
			X509_free(m);
			goto fail;
		}
	}
	sk_X509_free(mids);
	/* Rollover: the predecessors' certificates renew here. */
	for (size_t i = 0; i < cc->n_replaces; i++) {
		char pp[CA_NAME_MAX];
		X509 *old = load_cert(st, cc->replaces[i], pp, sizeof(pp), err);
		if (old == NULL || ca_ctx_add_predecessor(ca, cc->replaces[i], old, err) != 0) {
			X509_free(old);
			mids = NULL;
			goto fail;
		}
	}
	return ca;
fail:
	ca_ctx_free(ca);
	sig_close(key);
	X509_free(cert);
	X509_free(root);
	sk_X509_pop_free(mids, X509_free);
	sig_p11_close(*p11);
	*p11 = NULL;
	return NULL;
}

void srv_cas_free(srv_cas *cas)
{
	if (cas == NULL)
		return;
	/* every context before any token: a key must not outlive its module */
	for (size_t i = 0; i < cas->n; i++)
		ca_ctx_free(cas->v[i].ctx);
	for (size_t i = 0; i < cas->n; i++)
		sig_p11_close(cas->v[i].p11);
	free(cas->v);
	free(cas);
}

srv_cas *srv_cas_open(struct cfg *c, db_store *st, struct ca_err *err)
{
	srv_cas *cas = calloc(1, sizeof(*cas));

	if (cas == NULL || (cas->v = calloc(c->n_issuing_cas + 1, sizeof(*cas->v))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		free(cas);
		return NULL;
	}
	if ((cas->v[0].ctx = srv_open_ca(c, st, &cas->v[0].p11, err)) == NULL)
		goto fail;
	cas->n = 1;
	for (size_t i = 0; i < c->n_issuing_cas; i++) {
		struct srv_ca *s = &cas->v[cas->n];
		if ((s->ctx = srv_open_issuing_ca(&c->issuing_cas[i], st, &s->p11, err)) == NULL)
			goto fail;
		cas->n++;
		if (c->issuing_cas[i].signer == CFG_SIGNER_FILE)
			log_kv(LOG_WARN, "ca.unsafe", "ca", c->issuing_cas[i].name,
			       "why", "CA key in a file: development only, never production", NULL);
	}
	for (size_t i = 0; i < c->n_profiles; i++) {
		struct ca_profile *p = &c->profiles[i];
		ca_ctx *ca = srv_cas_find(cas, p->ca[0] ? p->ca : c->ca_name);
		if (ca == NULL) {
			ca_err_set(err, CA_E_CONFIG, "profile '%s' names CA '%s', which is not configured", p->name, p->ca);
			goto fail;
		}
		if (ca_ctx_add_profile(ca, p, err) != 0)
			goto fail;
	}
	/* Credential bindings hold for every CA. */
	for (size_t i = 0; i < c->n_creds; i++)
		for (size_t k = 0; k < cas->n; k++) {
			struct ca_credential copy = { 0 };
			memcpy(copy.key, c->creds[i].key, sizeof(copy.key));
			copy.rate_count = c->creds[i].rate_count;
			copy.rate_window_s = c->creds[i].rate_window_s;
			if ((c->creds[i].cn_pattern && (copy.cn_pattern = strdup(c->creds[i].cn_pattern)) == NULL) ||
			    (c->creds[i].san_pattern && (copy.san_pattern = strdup(c->creds[i].san_pattern)) == NULL) ||
			    ca_ctx_add_credential(cas->v[k].ctx, &copy, err) != 0) {
				ca_credential_free(&copy);
				if (err->code == CA_OK)
					ca_err_set(err, CA_E_INTERNAL, "out of memory");
				goto fail;
			}
		}
	return cas;
fail:
	srv_cas_free(cas);
	return NULL;
}

srv_cas *srv_cas_wrap(ca_ctx *ca)
{
	srv_cas *cas = calloc(1, sizeof(*cas));

	if (cas == NULL || (cas->v = calloc(1, sizeof(*cas->v))) == NULL) {
		free(cas);
		return NULL;
	}
	cas->v[0].ctx = ca;
	cas->n = 1;
	return cas;
}

size_t srv_cas_count(const srv_cas *cas) { return cas->n; }
ca_ctx *srv_cas_at(const srv_cas *cas, size_t i) { return i < cas->n ? cas->v[i].ctx : NULL; }
sig_p11 *srv_cas_p11(const srv_cas *cas, size_t i) { return i < cas->n ? cas->v[i].p11 : NULL; }

ca_ctx *srv_cas_find(const srv_cas *cas, const char *name)
{
	for (size_t i = 0; i < cas->n; i++)
		if (strcmp(ca_name(cas->v[i].ctx), name) == 0)
			return cas->v[i].ctx;
	return NULL;
}

int srv_cas_route(const srv_cas *cas, const char *label, const char *default_profile,
		  ca_ctx **ca, const char **profile)
{
	const struct ca_profile *p;
	const char *want = label ? label : default_profile;

	*ca = NULL;
	*profile = NULL;
	if (want == NULL)
		return -1;
	for (size_t i = 0; i < cas->n; i++)
		if ((p = ca_profile_find(cas->v[i].ctx, want)) != NULL && !p->internal) {
			*ca = cas->v[i].ctx;
			*profile = p->name;
			return 0;
		}
	/* A CA's name leads to its first profile open to protocols (none: the
	 * CA still answers cacerts). */
	if (label != NULL && (*ca = srv_cas_find(cas, label)) != NULL) {
		*profile = ca_first_profile(*ca);
		return 0;
	}
	return -1;
}
