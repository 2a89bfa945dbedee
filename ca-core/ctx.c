/* The CA context: issuing key and certificate, profiles, store, and the
 * injected clock and randomness. */
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "ca_int.h"

static time_t system_clock(void *arg)
{
	(void)arg;
	return time(NULL);
}

static int system_rand(unsigned char *buf, size_t len, void *arg)
{
	(void)arg;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

ca_ctx *ca_ctx_new(const char *name, sig_key *issuing_key, X509 *issuing_cert,
		   X509 *root_cert, db_store *store, struct ca_err *err)
{
	ca_ctx *ctx;
	struct tm tm;

	if (strlen(name) >= CA_NAME_MAX) {
		ca_err_set(err, CA_E_CONFIG, "CA name '%s' longer than %d characters", name,
			   CA_NAME_MAX - 1);
		return NULL;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(issuing_cert), sig_pubkey(issuing_key)) != 1) {
		ca_err_ssl(err, CA_E_CONFIG, "CA '%s': certificate does not match its signing key", name);
		return NULL;
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(issuing_cert), &tm) != 1) {
		ca_err_set(err, CA_E_CONFIG, "CA '%s': unreadable notAfter", name);
		return NULL;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL || (ctx->serials = ca_serial_pool_new(ctx)) == NULL) {
		free(ctx);
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	strcpy(ctx->name, name);
	ctx->not_after = timegm(&tm);
	ctx->key = issuing_key;
	ctx->cert = issuing_cert;
	ctx->root = root_cert;
	ctx->store = store;
	ctx->clock = system_clock;
	ctx->rand = system_rand;
	return ctx;
}

void ca_ctx_free(ca_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ca_serial_pool_free(ctx);
	for (size_t i = 0; i < ctx->n_profiles; i++)
		ca_profile_free_lists(&ctx->profiles[i]);
	free(ctx->profiles);
	for (size_t i = 0; i < ctx->n_creds; i++)
		ca_credential_free(&ctx->creds[i]);
	free(ctx->creds);
	sig_close(ctx->key);
	sk_X509_pop_free(ctx->chain, X509_free);
	sk_X509_pop_free(ctx->pred, X509_free);
	free(ctx->pred_names);
	X509_free(ctx->cert);
	X509_free(ctx->root);
	free(ctx);
}

int ca_ctx_add_profile(ca_ctx *ctx, struct ca_profile *p, struct ca_err *err)
{
	struct ca_profile *n;

	if (ca_profile_find(ctx, p->name) != NULL) {
		ca_err_set(err, CA_E_CONFIG, "profile '%s' defined twice", p->name);
		return -1;
	}
	if (p->built == NULL && ca_profile_prepare(p, err) != 0)
		return -1;
	n = realloc(ctx->profiles, (ctx->n_profiles + 1) * sizeof(*n));
	if (n == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	ctx->profiles = n;
	ctx->profiles[ctx->n_profiles++] = *p;
	memset(p, 0, sizeof(*p));
	return 0;
}

int ca_ctx_add_credential(ca_ctx *ctx, struct ca_credential *c, struct ca_err *err)
{
	struct ca_credential *n;

	if (ca_credential_find(ctx, c->key) != NULL) {
		ca_err_set(err, CA_E_CONFIG, "credential '%s' defined twice", c->key);
		return -1;
	}
	if (c->built == NULL && ca_credential_prepare(c, err) != 0)
		return -1;
	if ((n = realloc(ctx->creds, (ctx->n_creds + 1) * sizeof(*n))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	ctx->creds = n;
	ctx->creds[ctx->n_creds++] = *c;
	memset(c, 0, sizeof(*c));
	return 0;
}

const struct ca_credential *ca_credential_find(const ca_ctx *ctx, const char *key)
{
	for (size_t i = 0; i < ctx->n_creds; i++)
		if (strcmp(ctx->creds[i].key, key) == 0)
			return &ctx->creds[i];
	return NULL;
}

const struct ca_profile *ca_profile_find(const ca_ctx *ctx, const char *name)
{
	for (size_t i = 0; i < ctx->n_profiles; i++)
		if (strcmp(ctx->profiles[i].name, name) == 0)
			return &ctx->profiles[i];
	return NULL;
}

const char *ca_first_profile(const ca_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_profiles; i++)
		if (!ctx->profiles[i].internal)
			return ctx->profiles[i].name;
	return NULL;
}

void ca_ctx_set_clock(ca_ctx *ctx, ca_clock_fn fn, void *arg)
{
	ctx->clock = fn;
	ctx->clock_arg = arg;
}

void ca_ctx_set_rand(ca_ctx *ctx, ca_rand_fn fn, void *arg)
{
	ctx->rand = fn;
	ctx->rand_arg = arg;
}

int ca_ctx_add_chain(ca_ctx *ctx, X509 *intermediate, struct ca_err *err)
{
	if ((ctx->chain == NULL && (ctx->chain = sk_X509_new_null()) == NULL) ||
	    !sk_X509_push(ctx->chain, intermediate)) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	return 0;
}

int ca_ctx_add_predecessor(ca_ctx *ctx, const char *name, X509 *cert, struct ca_err *err)
{
	int n = sk_X509_num(ctx->pred) > 0 ? sk_X509_num(ctx->pred) : 0;
	char (*names)[CA_NAME_MAX];

	if (strlen(name) >= CA_NAME_MAX ||
	    (names = realloc(ctx->pred_names, ((size_t)n + 1) * sizeof(*names))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	ctx->pred_names = names;
	if ((ctx->pred == NULL && (ctx->pred = sk_X509_new_null()) == NULL) || !sk_X509_push(ctx->pred, cert)) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	snprintf(ctx->pred_names[n], CA_NAME_MAX, "%s", name);
	return 0;
}

size_t ca_chain(const ca_ctx *ctx, X509 **out, size_t max)
{
	size_t n = 0;

	if (n < max)
		out[n++] = ctx->cert;
	for (int i = 0; i < sk_X509_num(ctx->chain) && n < max; i++)
		out[n++] = sk_X509_value(ctx->chain, i);
	if (ctx->root != NULL && n < max)
		out[n++] = ctx->root;
	return n;
}

const char *ca_name(const ca_ctx *ctx) { return ctx->name; }
X509 *ca_issuing_cert(const ca_ctx *ctx) { return ctx->cert; }
X509 *ca_root_cert(const ca_ctx *ctx) { return ctx->root; }

int ca_serial_new(ca_ctx *ctx, ASN1_INTEGER **out, char hex[41], struct ca_err *err)
{
	return ca_serial_new_len(ctx, 16, out, hex, err);
}

int ca_serial_new_len(ca_ctx *ctx, size_t nbytes, ASN1_INTEGER **out, char hex[41], struct ca_err *err)
{
	unsigned char b[20];
	BIGNUM *bn = NULL;
	int rc = -1;

	if (nbytes < 9 || nbytes > sizeof(b)) {
		ca_err_set(err, CA_E_INTERNAL, "serial length %zu outside 9-20 octets", nbytes);
		goto out;
	}
	if (ctx->rand(b, nbytes, ctx->rand_arg) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "random generator failed");
		goto out;
	}
	/* Positive (RFC 5280 §4.1.2.2), nbytes*8-1 random bits at most: a zero
	 * first octet is replaced so the DER is always nbytes octets long. */
	b[0] &= 0x7f;
	if (b[0] == 0)
		b[0] = 0x01;
	if ((bn = BN_bin2bn(b, (int)nbytes, NULL)) == NULL ||
	    (*out = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		ca_err_ssl(err, CA_E_INTERNAL, "serial number");
		goto out;
	}
	for (size_t i = 0; i < nbytes; i++) {
		static const char digits[] = "0123456789abcdef";
		hex[2 * i] = digits[b[i] >> 4];
		hex[2 * i + 1] = digits[b[i] & 15];
	}
	hex[2 * nbytes] = '\0';
	rc = 0;
out:
	BN_free(bn);
	return rc;
}
