/* Client certificate trust: libmicrohttpd (GnuTLS) asks for a certificate but
 * does not verify it against our anchors, so every chain is verified here with
 * OpenSSL before a request may use it. */
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include "srv_int.h"

struct srv_trust {
	X509_STORE *store;
	STACK_OF(X509) *untrusted;  /* our issuing CAs and intermediates, as chain links */
	/* which anchor a trusted certificate belongs to (configured anchors) */
	X509 **certs;
	char (*names)[CA_NAME_MAX];
	size_t n;
	/* our issuing CAs: a certificate one of them issued authenticates as its name */
	X509 **own;
	char (*own_names)[CA_NAME_MAX];
	size_t n_own;
	char *pem;
};

static int add_trusted(srv_trust *t, X509 *x, const char *name)
{
	X509 **c = realloc(t->certs, (t->n + 1) * sizeof(*c));
	char (*n)[CA_NAME_MAX];

	if (c == NULL)
		return -1;
	t->certs = c;
	if ((n = realloc(t->names, (t->n + 1) * sizeof(*n))) == NULL)
		return -1;
	t->names = n;
	if (!X509_STORE_add_cert(t->store, x) || !X509_up_ref(x))
		return -1;
	t->certs[t->n] = x;
	snprintf(t->names[t->n], CA_NAME_MAX, "%s", name);
	t->n++;
	return 0;
}

static int append_pem(BIO *b, X509 *x)
{
	return PEM_write_bio_X509(b, x) == 1 ? 0 : -1;
}

/* Our CAs: each root trusted once, each issuing CA and intermediate a link. */
static int add_own(srv_trust *t, BIO *pem, const srv_cas *cas)
{
	size_t n = srv_cas_count(cas);

	if ((t->own = calloc(n, sizeof(*t->own))) == NULL ||
	    (t->own_names = calloc(n, sizeof(*t->own_names))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		ca_ctx *ca = srv_cas_at(cas, i);
		X509 *chain[8];
		size_t k = ca_chain(ca, chain, 8);
		X509 *top = chain[k - 1];
		if (X509_STORE_add_cert(t->store, top) != 1) {
			/* the same root under several CAs is added once */
			unsigned long e = ERR_peek_last_error();
			if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
				return -1;
			ERR_clear_error();
		} else if (append_pem(pem, top) != 0) {
			return -1;
		}
		for (size_t j = 0; j + 1 < k; j++)
			if (!X509_add_cert(t->untrusted, chain[j], X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP))
				return -1;
		if (k == 1 && append_pem(pem, top) != 0)
			return -1;
		if (!X509_up_ref(chain[0]))
			return -1;
		t->own[t->n_own] = chain[0];
		snprintf(t->own_names[t->n_own++], CA_NAME_MAX, "%s", ca_name(ca));
	}
	return 0;
}

srv_trust *srv_trust_new(const struct cfg *c, const srv_cas *cas, struct ca_err *err)
{
	srv_trust *t = calloc(1, sizeof(*t));
	BIO *pem = BIO_new(BIO_s_mem());
	char *data;
	long len;

	if (t == NULL || pem == NULL || (t->store = X509_STORE_new()) == NULL ||
	    (t->untrusted = sk_X509_new_null()) == NULL)
		goto oom;
	if (add_own(t, pem, cas) != 0)
		goto oom;
	for (size_t i = 0; i < c->n_anchors; i++) {
		FILE *f = fopen(c->anchors[i].ca_file, "r");
		X509 *x;
		size_t before = t->n;
		if (f == NULL) {
			ca_err_set(err, CA_E_CONFIG, "%s: client_cert_anchors[%zu].ca_file: cannot open %s",
				   c->path, i, c->anchors[i].ca_file);
			goto fail;
		}
		while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
			int bad = add_trusted(t, x, c->anchors[i].name) != 0 || append_pem(pem, x) != 0;
			X509_free(x);
			if (bad) {
				fclose(f);
				goto oom;
			}
		}
		ERR_clear_error();
		fclose(f);
		if (t->n == before) {
			ca_err_set(err, CA_E_CONFIG, "%s: client_cert_anchors[%zu].ca_file: no PEM certificate in %s",
				   c->path, i, c->anchors[i].ca_file);
			goto fail;
		}
	}
	len = BIO_get_mem_data(pem, &data);
	if ((t->pem = malloc((size_t)len + 1)) == NULL)
		goto oom;
	memcpy(t->pem, data, (size_t)len);
	t->pem[len] = '\0';
	BIO_free(pem);
	return t;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory building the client certificate trust store");
fail:
	BIO_free(pem);
	srv_trust_free(t);
	return NULL;
}

void srv_trust_free(srv_trust *t)
{
	if (t == NULL)
		return;
	X509_STORE_free(t->store);
	sk_X509_pop_free(t->untrusted, X509_free);
	for (size_t i = 0; i < t->n; i++)
		X509_free(t->certs[i]);
	free(t->certs);
	free(t->names);
	for (size_t i = 0; i < t->n_own; i++)
		X509_free(t->own[i]);
	free(t->own);
	free(t->own_names);
	free(t->pem);
	free(t);
}

const char *srv_trust_pem(const srv_trust *t)
{
	return t->pem;
}

X509 *srv_trust_verify(const srv_trust *t, const unsigned char *const *ders,
		       const size_t *lens, size_t n, char anchor[CA_NAME_MAX], char *why, size_t whylen)
{
	X509_STORE_CTX *vc = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = NULL, *top;
	int ok = 0;

	snprintf(why, whylen, "no client certificate");
	if (n == 0 || n > 8)
		return NULL;
	if ((chain = sk_X509_dup(t->untrusted)) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = ders[i];
		X509 *x = d2i_X509(NULL, &p, (long)lens[i]);
		if (x == NULL || p != ders[i] + lens[i]) {
			X509_free(x);
			snprintf(why, whylen, "client certificate %zu is not valid DER", i);
			goto out;
		}
		if (i == 0)
			leaf = x;
		else if (!sk_X509_push(chain, x)) {
			X509_free(x);
			goto out;
		}
	}
	if ((vc = X509_STORE_CTX_new()) == NULL || !X509_STORE_CTX_init(vc, t->store, leaf, chain))
		goto out;
	X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(vc) != 1) {
		snprintf(why, whylen, "client certificate does not verify: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
		goto out;
	}
	/* Issued by one of our CAs: that CA is the anchor. */
	if (sk_X509_num(X509_STORE_CTX_get0_chain(vc)) > 1) {
		X509 *issuer = sk_X509_value(X509_STORE_CTX_get0_chain(vc), 1);
		for (size_t i = 0; i < t->n_own && !ok; i++)
			if (X509_cmp(issuer, t->own[i]) == 0) {
				snprintf(anchor, CA_NAME_MAX, "%s", t->own_names[i]);
				ok = 1;
			}
	}
	top = sk_X509_value(X509_STORE_CTX_get0_chain(vc), sk_X509_num(X509_STORE_CTX_get0_chain(vc)) - 1);
	for (size_t i = 0; i < t->n && !ok; i++)
		if (X509_cmp(top, t->certs[i]) == 0) {
			snprintf(anchor, CA_NAME_MAX, "%s", t->names[i]);
			ok = 1;
		}
	if (!ok)
		snprintf(why, whylen, "client certificate chains to one of our roots but not through a CA this server serves");
out:
	X509_STORE_CTX_free(vc);
	/* chain holds our up-ref'd issuing cert (from dup: not up-ref'd) and the
	 * client's extra certificates: free only the latter. */
	if (chain != NULL) {
		for (int i = sk_X509_num(t->untrusted); i < sk_X509_num(chain); i++)
			X509_free(sk_X509_value(chain, i));
		sk_X509_free(chain);
	}
	if (!ok) {
		X509_free(leaf);
		return NULL;
	}
	return leaf;
}
