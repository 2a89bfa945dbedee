/* ca_issue: the one path every certificate takes, in a fixed order:
 *   1. profile        2. who may ask        3. CSR (decode, proof of possession, key)
 *   4. names          5. build TBS          6. lint
 *   7. reserve serial 8. sign               9. commit, then return
 * Nothing is signed before the store knows the serial (it is reserved ahead,
 * with step 5), and nothing is returned before the store holds the
 * certificate. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509v3.h>
#include "mintca/crl.h"
#include "mintca/log.h"
#include "ca_int.h"

/* Copy the CSR's SubjectPublicKeyInfo as it is: re-encoding through an
 * EVP_PKEY costs several signatures' worth of provider round trips. */
static int copy_spki(X509 *x, X509_REQ *csr)
{
	const unsigned char *bits;
	X509_ALGOR *palg;
	int len;

	if (!X509_PUBKEY_get0_param(NULL, &bits, &len, &palg, X509_REQ_get_X509_PUBKEY(csr)))
		return -1;
	return ca_pubkey_set(X509_get_X509_PUBKEY(x), palg, bits, len);
}

unsigned ca_crl_shard(const char *serial_hex, unsigned n_shards)
{
	return crl_shard_of(serial_hex, n_shards);
}

/* Partitioned CRLs: the CDP names the CRL of this serial's shard. */
static int add_shard_cdp(const struct ca_profile *p, X509 *x)
{
	const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
	const unsigned char *o = ASN1_STRING_get0_data(sn);
	char hex[9] = "", url[512];
	const char *urls[1] = { url };
	X509_EXTENSION *e;
	int n = ASN1_STRING_length(sn), rc;

	for (int i = 0; i < n && i < 4; i++)
		snprintf(hex + 2 * i, 3, "%02x", o[i]);
	snprintf(url, sizeof(url), "%s%u.crl", p->crl_shard_url, ca_crl_shard(hex, p->crl_shards));
	if ((e = ca_cdp_ext(urls, 1)) == NULL)
		return -1;
	rc = X509_add_ext(x, e, -1) ? 0 : -1;
	X509_EXTENSION_free(e);
	return rc;
}

static int add_ee_exts(const ca_ctx *ctx, const struct ca_profile *p, X509 *x, X509_REQ *csr,
		       const struct pol_decision *d, struct ca_err *err)
{
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	STACK_OF(X509_EXTENSION) *fixed = p->built->fixed;
	unsigned bits = p->key_usage;
	int rc = -1;

	if (ku == NULL)
		goto oom;
	if (!p->no_basic_constraints) {
		if ((bc = BASIC_CONSTRAINTS_new()) == NULL)
			goto oom;
		if (ca_add_ext(x, NID_basic_constraints, 1, bc, err) != 0)
			goto out;
	}
	/* By key type: digitalSignature; RSA keys may also carry keys. */
	if (bits == 0)
		bits = 1u | (ca_csr_key_type(csr) == EVP_PKEY_RSA ? 1u << 2 : 0);
	for (int i = 0; i < 9; i++)
		if ((bits & (1u << i)) && !ASN1_BIT_STRING_set_bit(ku, i, 1))
			goto oom;
	if (ca_add_ext(x, NID_key_usage, 1, ku, err) != 0)
		goto out;
	for (int i = 0; i < sk_X509_EXTENSION_num(fixed); i++)
		if (!X509_add_ext(x, sk_X509_EXTENSION_value(fixed, i), -1))
			goto oom;
	if (p->crl_shards > 0 && add_shard_cdp(p, x) != 0)
		goto oom;
	if (d->sans != NULL && sk_GENERAL_NAME_num(d->sans) > 0 &&
	    ca_add_ext(x, NID_subject_alt_name,
		       X509_NAME_entry_count(X509_get_subject_name(x)) == 0, d->sans, err) != 0)
		goto out;
	if ((p->no_subject_key_id ? ca_add_akid(x, ctx->cert, err) : ca_add_key_ids(x, ctx->cert, err)) != 0)
		goto out;
	rc = 0;
	goto out;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory");
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	return rc;
}

/* Step 5: the to-be-signed certificate. */
static X509 *build_tbs(ca_ctx *ctx, const struct ca_profile *p, X509_REQ *csr,
		       const struct pol_decision *d, ASN1_INTEGER *serial, struct ca_err *err)
{
	X509 *x = X509_new();
	time_t now = ctx->clock(ctx->clock_arg);
	time_t nb = now - (time_t)p->backdate_seconds;
	time_t na = now + (time_t)p->validity_seconds;

	/* Never past the issuing CA's own notAfter (RFC 5280 §6 path validation). */
	if (na > ctx->not_after)
		na = ctx->not_after;
	if (na <= now) {
		ca_err_set(err, CA_E_FORBIDDEN, "issuing CA '%s' has expired", ctx->name);
		goto fail;
	}
	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_serialNumber(x, serial) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ctx->cert)) ||
	    !X509_set_subject_name(x, d->subject) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    copy_spki(x, csr) != 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot build certificate");
		goto fail;
	}
	if (add_ee_exts(ctx, p, x, csr, d, err) != 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* Who asked, for the store: the credential and, for certificates, the subject. */
static void requester_text(const struct ca_requester *who, char *buf, size_t len)
{
	char key[CA_NAME_MAX + 16];

	ca_requester_key(who, key, sizeof(key));
	if (who->kind == CA_AUTH_OPERATOR || who->kind == CA_AUTH_CLIENT_CERT)
		snprintf(buf, len, "%s:%s", key, who->id);
	else
		snprintf(buf, len, "%s", key);
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

/* Step 9: the store holds the certificate before anyone else sees it. */
static int commit(ca_ctx *ctx, const struct ca_profile *p, const struct ca_issue_req *req,
		  X509 *x, const GENERAL_NAMES *sans, const struct ca_issue_res *res, struct ca_err *err)
{
	char *subject = NULL, **san_txt = NULL, requester[400], renewed[41] = "";
	size_t n_san = 0;
	int rc = -1;
	struct db_cert_row row;

	if (ca_text_subject(X509_get_subject_name(x), &subject) != 0 ||
	    ca_text_sans(sans, &san_txt, &n_san) != 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot encode certificate");
		goto out;
	}
	if (req->renew_of != NULL)
		pol_serial_text(X509_get0_serialNumber(req->renew_of), renewed);
	requester_text(req->who, requester, sizeof(requester));
	row = (struct db_cert_row){
		.serial_hex = res->serial_hex, .ca = ctx->name, .subject = subject,
		.sans = (const char *const *)san_txt, .n_sans = n_san,
		.not_before = asn1_to_time(X509_get0_notBefore(x)),
		.not_after = asn1_to_time(X509_get0_notAfter(x)),
		.profile = p->name, .requester = requester, .protocol = req->protocol,
		.der = res->der, .der_len = res->der_len,
		.renewed_serial = renewed[0] ? renewed : NULL,
		.crl_shard = ca_crl_shard(res->serial_hex, p->crl_shards),
	};
	rc = db_commit_cert(ctx->store, &row, err);
out:
	free(subject);
	ca_text_sans_free(san_txt, n_san);
	return rc;
}

/* Step 5b: the rate limits of the profile and of the credential, counted in
 * the store so that they hold across server processes. */
static int take_rate(ca_ctx *ctx, const struct ca_profile *p, const struct pol_decision *d,
		     const struct ca_requester *who, struct ca_err *err)
{
	struct db_rate rates[2];
	char pkey[CA_NAME_MAX + 16], ckey[2 * CA_NAME_MAX + 16], cred[CA_NAME_MAX + 16];
	size_t n = 0, which = 0;
	unsigned retry = 0;
	int r;

	if (ctx->store == NULL)
		return 0;
	if (p->rate_count > 0) {
		snprintf(pkey, sizeof(pkey), "profile:%s", p->name);
		rates[n++] = (struct db_rate){ pkey, p->rate_count, p->rate_window_s };
	}
	if (d->cred != NULL && d->cred->rate_count > 0) {
		ca_requester_key(who, cred, sizeof(cred));
		snprintf(ckey, sizeof(ckey), "credential:%s", cred);
		rates[n++] = (struct db_rate){ ckey, d->cred->rate_count, d->cred->rate_window_s };
	}
	if (n == 0)
		return 0;
	if ((r = db_rate_take(ctx->store, rates, n, &which, &retry, err)) <= 0)
		return r;
	ca_err_set(err, CA_E_RATE_LIMITED, "%s allows %u certificates per %u s; retry in %u s",
		   rates[which].key, rates[which].limit, rates[which].window_s, retry);
	err->retry_after = retry;
	return -1;
}

int ca_issue(ca_ctx *ctx, const struct ca_issue_req *req, struct ca_issue_res *res,
	     struct ca_err *err)
{
	const struct ca_profile *p;
	X509_REQ *csr = NULL;
	struct pol_decision d = { 0 };
	ASN1_INTEGER *serial = NULL;
	struct ca_serial_block *block = NULL;
	X509 *x = NULL;
	size_t nbytes = 16;
	bool reserved = false;
	int rc = -1, len;

	memset(res, 0, sizeof(*res));
	/* 1. profile */
	if ((p = ca_profile_find(ctx, req->profile ? req->profile : "")) == NULL) {
		ca_err_set(err, CA_E_UNKNOWN_PROFILE, "no profile named '%s'", req->profile ? req->profile : "");
		goto out;
	}
	/* 2. who may ask: decided before anything they sent is parsed */
	if (pol_authorize(ctx, p, req->who, req->renew_of, NULL, err) != 0)
		goto out;
	/* 3. CSR: decode, proof of possession */
	if ((csr = ca_csr_decode(req->csr_der, req->csr_len, err)) == NULL)
		goto out;
	/* 4. policy: key, subject, SANs, the credential's name bindings */
	if (pol_check(ctx, p, req->who, csr, req->renew_of, &d, NULL, err) != 0)
		goto out;
	/* 4b. rate limits */
	if (take_rate(ctx, p, &d, req->who, err) != 0)
		goto out;
	nbytes = p->serial_bytes ? p->serial_bytes : 16;
	/* 5. a serial; with a store, one whose reservation is committed (step
	 * 7, done ahead: ca-core/serial_pool.c). The database enforces
	 * uniqueness. */
	if ((ctx->store != NULL ? ca_serial_take(ctx, nbytes, &serial, res->serial_hex, &block, err)
				: ca_serial_new_len(ctx, nbytes, &serial, res->serial_hex, err)) != 0)
		goto out;
	reserved = ctx->store != NULL;
	/* 5b. build the TBS around it, 6. lint */
	if ((x = build_tbs(ctx, p, csr, &d, serial, err)) == NULL || ca_lint(ctx, x, csr, err) != 0)
		goto out;
	/* 8. sign: from here on, the serial is never used again, whatever happens */
	if (reserved)
		ca_serial_signed(ctx, block);
	reserved = false;
	if (sig_sign_x509(ctx->key, x, err) != 0)
		goto out;
	if ((len = i2d_X509(x, &res->der)) <= 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the certificate");
		goto out;
	}
	res->der_len = (size_t)len;
	/* 9. commit */
	if (ctx->store != NULL && commit(ctx, p, req, x, d.sans, res, err) != 0)
		goto out;
	res->cert = x;
	x = NULL;
	rc = 0;
out:
	if (rc != 0)
		ca_issue_res_free(res);
	X509_free(x);
	if (reserved) /* refused before signing: nothing was signed with it */
		ca_serial_unused(ctx, nbytes, serial, res->serial_hex, block);
	else
		ASN1_INTEGER_free(serial);
	pol_decision_free(&d);
	X509_REQ_free(csr);
	return rc;
}

void ca_issue_res_free(struct ca_issue_res *res)
{
	if (res == NULL)
		return;
	X509_free(res->cert);
	OPENSSL_free(res->der);
	res->cert = NULL;
	res->der = NULL;
	res->der_len = 0;
}
