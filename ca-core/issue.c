/* ca_issue: the one path every certificate takes, in a fixed order:
 *   1. profile        2. who may ask        3. CSR (decode, proof of possession, key)
 *   4. names          5. build TBS          6. lint
 *   7. reserve serial 8. sign               9. commit, then return
 * Nothing is signed before the store knows the serial, and nothing is
 * returned before the store holds the certificate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509v3.h>
#include "mintca/log.h"
#include "ca_int.h"

#define SERIAL_TRIES 4

static bool in_list(char *const *l, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i], s) == 0)
			return true;
	return false;
}

static void serial_text(const ASN1_INTEGER *serial, char out[41])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;
	size_t i = 0;

	for (; h != NULL && h[i] && i < 40; i++)
		out[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] + 32 : h[i]);
	out[i] = '\0';
	OPENSSL_free(h);
	BN_free(bn);
}

/* A certificate is renewed under the profile it was issued under, so that
 * re-enrollment never turns a 14-day certificate into a 1-year one. */
static int same_profile(const ca_ctx *ctx, const struct ca_profile *p, X509 *old,
			struct ca_err *err)
{
	char serial[41], was[CA_NAME_MAX];
	int r;

	if (ctx->store == NULL)
		return 0;
	serial_text(X509_get0_serialNumber(old), serial);
	r = db_cert_profile(ctx->store, ctx->name, serial, was, sizeof(was), err);
	if (r < 0)
		return -1;
	if (r > 0) {
		ca_err_set(err, CA_E_FORBIDDEN, "certificate %s to renew is not in the store of CA '%s'",
			   serial, ctx->name);
		return -1;
	}
	if (strcmp(was, p->name) != 0) {
		ca_err_set(err, CA_E_FORBIDDEN,
			   "certificate %s was issued under profile '%s': renew it under that profile's label",
			   serial, was);
		return -1;
	}
	return 0;
}

/* Step 2: the requester's credential must be bound to the profile. */
static int authorize(const ca_ctx *ctx, const struct ca_profile *p,
		     const struct ca_issue_req *req, struct ca_err *err)
{
	const struct ca_requester *who = req->who;

	if (who == NULL || who->kind == CA_AUTH_NONE) {
		ca_err_set(err, CA_E_UNAUTHENTICATED, "profile '%s' requires authentication", p->name);
		return -1;
	}
	if (req->renew_of != NULL) {
		if (!p->allow_reenroll) {
			ca_err_set(err, CA_E_FORBIDDEN, "profile '%s' does not allow re-enrollment", p->name);
			return -1;
		}
		/* The certificate being renewed must be ours, whatever the transport checked. */
		if (X509_check_issued(ctx->cert, req->renew_of) != X509_V_OK ||
		    X509_verify(req->renew_of, X509_get0_pubkey(ctx->cert)) != 1) {
			ca_err_ssl(err, CA_E_FORBIDDEN, "certificate to renew was not issued by CA '%s'",
				   ctx->name);
			return -1;
		}
		/* An expired certificate cannot renew itself (RFC 7030 §3.3.2). */
		time_t now = ctx->clock(ctx->clock_arg);
		if (X509_cmp_time(X509_get0_notAfter(req->renew_of), &now) <= 0 ||
		    X509_cmp_time(X509_get0_notBefore(req->renew_of), &now) > 0) {
			ca_err_set(err, CA_E_FORBIDDEN, "certificate to renew is not valid now");
			return -1;
		}
		return same_profile(ctx, p, req->renew_of, err);
	}
	switch (who->kind) {
	case CA_AUTH_BASIC:
		if (in_list(p->basic_users, p->n_basic_users, who->id))
			return 0;
		ca_err_set(err, CA_E_FORBIDDEN, "user '%s' may not use profile '%s'", who->id, p->name);
		return -1;
	case CA_AUTH_CLIENT_CERT:
		if (in_list(p->cert_anchors, p->n_cert_anchors, who->anchor))
			return 0;
		ca_err_set(err, CA_E_FORBIDDEN,
			   "client certificates from '%s' may not use profile '%s'", who->anchor, p->name);
		return -1;
	case CA_AUTH_OPERATOR:
		if (p->operator_allowed)
			return 0;
		ca_err_set(err, CA_E_FORBIDDEN, "operators may not use profile '%s'", p->name);
		return -1;
	default:
		break;
	}
	ca_err_set(err, CA_E_UNAUTHENTICATED, "profile '%s' requires authentication", p->name);
	return -1;
}

static bool clean_string(const ASN1_STRING *s, bool dns)
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);

	if (len <= 0 || len > 255)
		return false;
	for (int i = 0; i < len; i++) {
		unsigned char c = d[i];
		if (c < 0x20 || c > 0x7e)
			return false;
		if (dns && !(c == '-' || c == '.' || c == '*' || c == '_' ||
			     (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

/* Step 4: subject and SANs the profile allows; re-enrollment keeps both. */
static int check_names(const struct ca_profile *p, const struct ca_issue_req *req,
		       X509_REQ *csr, GENERAL_NAMES **sans_out, struct ca_err *err)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
	GENERAL_NAMES *sans = NULL, *old = NULL;
	const X509_NAME *subj = X509_REQ_get_subject_name(csr);
	int crit = -1, n, rc = -1;

	sans = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (sans == NULL && crit != -1) {
		ca_err_set(err, CA_E_BAD_CSR, "RFC 5280 §4.2.1.6: subjectAltName requested twice or unreadable");
		goto out;
	}
	n = sans ? sk_GENERAL_NAME_num(sans) : 0;
	if ((unsigned)n > p->max_sans) {
		ca_err_set(err, CA_E_NAME_REFUSED, "profile '%s' allows at most %u subjectAltNames, request has %d",
			   p->name, p->max_sans, n);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		bool ok;
		switch (g->type) {
		case GEN_DNS: ok = clean_string(g->d.dNSName, true); break;
		case GEN_EMAIL: ok = clean_string(g->d.rfc822Name, false); break;
		case GEN_URI: ok = clean_string(g->d.uniformResourceIdentifier, false); break;
		case GEN_IPADD: ok = g->d.iPAddress->length == 4 || g->d.iPAddress->length == 16; break;
		default:
			ca_err_set(err, CA_E_NAME_REFUSED, "profile '%s' does not allow this subjectAltName type", p->name);
			goto out;
		}
		if (!ok) {
			ca_err_set(err, CA_E_NAME_REFUSED, "subjectAltName %d is empty, too long or has characters RFC 5280 does not allow", i + 1);
			goto out;
		}
	}
	for (int i = 0; i < X509_NAME_entry_count(subj); i++) {
		const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		if (memchr(ASN1_STRING_get0_data(v), 0, (size_t)ASN1_STRING_length(v)) != NULL) {
			ca_err_set(err, CA_E_NAME_REFUSED, "subject attribute %d contains a NUL byte", i + 1);
			goto out;
		}
	}
	if (X509_NAME_entry_count(subj) == 0 && n == 0) {
		ca_err_set(err, CA_E_NAME_REFUSED, "RFC 5280 §4.1.2.6: request has neither subject nor subjectAltName");
		goto out;
	}
	if (req->renew_of != NULL) {
		unsigned char *a = NULL, *b = NULL;
		int la, lb;
		bool same;
		if (X509_NAME_cmp(subj, X509_get_subject_name(req->renew_of)) != 0) {
			ca_err_set(err, CA_E_NAME_REFUSED, "RFC 7030 §4.2.2: re-enrollment must keep the subject of the current certificate");
			goto out;
		}
		old = X509_get_ext_d2i(req->renew_of, NID_subject_alt_name, NULL, NULL);
		la = old ? i2d_GENERAL_NAMES(old, &a) : 0;
		lb = sans ? i2d_GENERAL_NAMES(sans, &b) : 0;
		same = la == lb && (la == 0 || memcmp(a, b, (size_t)la) == 0);
		OPENSSL_free(a);
		OPENSSL_free(b);
		if (!same) {
			ca_err_set(err, CA_E_NAME_REFUSED, "RFC 7030 §4.2.2: re-enrollment must keep the subjectAltNames of the current certificate");
			goto out;
		}
	}
	*sans_out = sans;
	sans = NULL;
	rc = 0;
out:
	GENERAL_NAMES_free(sans);
	GENERAL_NAMES_free(old);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

/* Copy the CSR's SubjectPublicKeyInfo as it is: re-encoding through an
 * EVP_PKEY costs several signatures' worth of provider round trips. */
static int copy_spki(X509 *x, X509_REQ *csr)
{
	ASN1_OBJECT *alg;
	const unsigned char *bits;
	int len, ptype;
	const void *pval;
	X509_ALGOR *palg;
	void *pdup = NULL;
	unsigned char *bdup;

	if (!X509_PUBKEY_get0_param(&alg, &bits, &len, &palg, X509_REQ_get_X509_PUBKEY(csr)))
		return -1;
	X509_ALGOR_get0(NULL, &ptype, &pval, palg);
	if (ptype == V_ASN1_OBJECT)
		pdup = OBJ_dup(pval);
	else if (ptype == V_ASN1_SEQUENCE)
		pdup = ASN1_STRING_dup(pval);
	else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
		return -1;
	if ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && pdup == NULL)
		return -1;
	if ((bdup = OPENSSL_memdup(bits, (size_t)len)) == NULL)
		goto fail;
	if (!X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_dup(alg), ptype, pdup, bdup, len)) {
		OPENSSL_free(bdup);
		goto fail;
	}
	return 0;
fail:
	if (ptype == V_ASN1_OBJECT)
		ASN1_OBJECT_free(pdup);
	else
		ASN1_STRING_free(pdup);
	return -1;
}

static int add_ee_exts(const ca_ctx *ctx, const struct ca_profile *p, X509 *x, X509_REQ *csr,
		       GENERAL_NAMES *sans, struct ca_err *err)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	int rc = -1;

	if (bc == NULL || ku == NULL || eku == NULL)
		goto oom;
	if (ca_add_ext(x, NID_basic_constraints, 1, bc, err) != 0)
		goto out;
	/* digitalSignature; RSA keys may also carry keys (keyEncipherment). */
	if (!ASN1_BIT_STRING_set_bit(ku, 0, 1))
		goto oom;
	if (EVP_PKEY_get_base_id(X509_REQ_get0_pubkey(csr)) == EVP_PKEY_RSA &&
	    !ASN1_BIT_STRING_set_bit(ku, 2, 1))
		goto oom;
	if (ca_add_ext(x, NID_key_usage, 1, ku, err) != 0)
		goto out;
	if ((p->eku & CA_EKU_SERVER_AUTH) && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)))
		goto oom;
	if ((p->eku & CA_EKU_CLIENT_AUTH) && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		goto oom;
	if (sk_ASN1_OBJECT_num(eku) > 0 && ca_add_ext(x, NID_ext_key_usage, 0, eku, err) != 0)
		goto out;
	if (sans != NULL && sk_GENERAL_NAME_num(sans) > 0 &&
	    ca_add_ext(x, NID_subject_alt_name,
		       X509_NAME_entry_count(X509_get_subject_name(x)) == 0, sans, err) != 0)
		goto out;
	if (ca_add_key_ids(x, ctx->cert, err) != 0)
		goto out;
	rc = 0;
	goto out;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory");
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	sk_ASN1_OBJECT_free(eku); /* the objects are OpenSSL's static ones */
	return rc;
}

/* Step 5: the to-be-signed certificate. */
static X509 *build_tbs(ca_ctx *ctx, const struct ca_profile *p, X509_REQ *csr,
		       GENERAL_NAMES *sans, ASN1_INTEGER *serial, struct ca_err *err)
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
	    !X509_set_subject_name(x, X509_REQ_get_subject_name(csr)) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    copy_spki(x, csr) != 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot build certificate");
		goto fail;
	}
	if (add_ee_exts(ctx, p, x, csr, sans, err) != 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static void requester_text(const struct ca_requester *who, char *buf, size_t len)
{
	static const char *const kinds[] = { "anonymous", "basic", "cert", "operator" };

	if (who->kind == CA_AUTH_CLIENT_CERT)
		snprintf(buf, len, "cert:%s:%s", who->anchor, who->id);
	else
		snprintf(buf, len, "%s:%s", kinds[who->kind], who->id);
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
		serial_text(X509_get0_serialNumber(req->renew_of), renewed);
	requester_text(req->who, requester, sizeof(requester));
	row = (struct db_cert_row){
		.serial_hex = res->serial_hex, .ca = ctx->name, .subject = subject,
		.sans = (const char *const *)san_txt, .n_sans = n_san,
		.not_before = asn1_to_time(X509_get0_notBefore(x)),
		.not_after = asn1_to_time(X509_get0_notAfter(x)),
		.profile = p->name, .requester = requester, .protocol = req->protocol,
		.der = res->der, .der_len = res->der_len,
		.renewed_serial = renewed[0] ? renewed : NULL,
	};
	rc = db_commit_cert(ctx->store, &row, err);
out:
	free(subject);
	ca_text_sans_free(san_txt, n_san);
	return rc;
}

int ca_issue(ca_ctx *ctx, const struct ca_issue_req *req, struct ca_issue_res *res,
	     struct ca_err *err)
{
	const struct ca_profile *p;
	X509_REQ *csr = NULL;
	GENERAL_NAMES *sans = NULL;
	ASN1_INTEGER *serial = NULL;
	X509 *x = NULL;
	int rc = -1, tries, len;

	memset(res, 0, sizeof(*res));
	/* 1. profile */
	if ((p = ca_profile_find(ctx, req->profile ? req->profile : "")) == NULL) {
		ca_err_set(err, CA_E_UNKNOWN_PROFILE, "no profile named '%s'", req->profile ? req->profile : "");
		goto out;
	}
	/* 2. who may ask: decided before anything they sent is parsed */
	if (authorize(ctx, p, req, err) != 0)
		goto out;
	/* 3. CSR: decode, proof of possession, key */
	if ((csr = ca_csr_decode(req->csr_der, req->csr_len, err)) == NULL ||
	    ca_csr_check_key(csr, p, err) != 0)
		goto out;
	/* 4. names */
	if (check_names(p, req, csr, &sans, err) != 0)
		goto out;
	for (tries = 0;; tries++) {
		int r;
		/* 5. build the TBS around a fresh serial */
		if (ca_serial_new(ctx, &serial, res->serial_hex, err) != 0 ||
		    (x = build_tbs(ctx, p, csr, sans, serial, err)) == NULL)
			goto out;
		/* 6. lint */
		if (ca_lint(ctx, x, err) != 0)
			goto out;
		/* 7. reserve the serial: the database enforces uniqueness */
		if (ctx->store == NULL)
			break;
		r = db_reserve_serial(ctx->store, ctx->name, res->serial_hex, NULL, err);
		if (r == 0)
			break;
		if (r < 0)
			goto out;
		if (tries + 1 >= SERIAL_TRIES) {
			ca_err_set(err, CA_E_INTERNAL, "no unused serial after %d tries", SERIAL_TRIES);
			goto out;
		}
		log_kv(LOG_WARN, "ca.serial_collision", "ca", ctx->name, "serial", res->serial_hex, NULL);
		X509_free(x);
		x = NULL;
		ASN1_INTEGER_free(serial);
		serial = NULL;
	}
	/* 8. sign */
	if (sig_sign_x509(ctx->key, x, err) != 0)
		goto out;
	if ((len = i2d_X509(x, &res->der)) <= 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the certificate");
		goto out;
	}
	res->der_len = (size_t)len;
	/* 9. commit */
	if (ctx->store != NULL && commit(ctx, p, req, x, sans, res, err) != 0)
		goto out;
	res->cert = x;
	x = NULL;
	rc = 0;
out:
	if (rc != 0)
		ca_issue_res_free(res);
	X509_free(x);
	ASN1_INTEGER_free(serial);
	GENERAL_NAMES_free(sans);
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
