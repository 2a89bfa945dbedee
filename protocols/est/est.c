/* EST (RFC 7030): cacerts, simpleenroll, simplereenroll, csrattrs. Decodes the
 * wire format, hands the CSR to ca_issue() and encodes its answer; never
 * builds, signs or stores a certificate itself. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include "mintca/est.h"
#include "mintca/log.h"

#define CT_PKCS7 "application/pkcs7-mime; smime-type=certs-only"
#define CT_CSRATTRS "application/csrattrs"
#define CT_TEXT "text/plain; charset=utf-8"

/* One table maps every ca-core code to EST's answer (RFC 7030 §4.2.3). */
static const unsigned est_status[CA_CODE_COUNT] = {
	[CA_OK] = 200,
	[CA_E_BAD_REQUEST] = 400,
	[CA_E_BAD_CSR] = 400,
	[CA_E_BAD_SIGNATURE] = 400,
	[CA_E_KEY_REFUSED] = 400,
	[CA_E_NAME_REFUSED] = 400,
	[CA_E_UNKNOWN_PROFILE] = 404,
	[CA_E_UNAUTHENTICATED] = 401,
	[CA_E_FORBIDDEN] = 403,
	[CA_E_NOT_FOUND] = 404,
	[CA_E_CONFLICT] = 409,
	/* RFC 6585 §4, with Retry-After: a factory client backs off. */
	[CA_E_RATE_LIMITED] = 429,
	[CA_E_STORE] = 503,
	[CA_E_SIGNER] = 503,
	[CA_E_CONFIG] = 500,
	[CA_E_INTERNAL] = 500,
};

unsigned est_status_for(enum ca_code code)
{
	return (unsigned)code < CA_CODE_COUNT && est_status[code] != 0 ? est_status[code] : 500;
}

void est_response_free(struct est_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

static void set_text(struct est_response *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_text(struct est_response *r, unsigned status, const char *fmt, ...)
{
	va_list ap;
	int n;

	free(r->body);
	r->status = status;
	r->content_type = CT_TEXT;
	r->base64_transfer = false;
	r->body = malloc(400);
	r->body_len = 0;
	if (r->body == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->body, 399, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > 398)
		n = 398;
	r->body[n] = '\n';
	r->body_len = (size_t)n + 1;
}

/* Answer a ca_err: refusals keep their reason; a 5xx never shows internal detail. */
static void set_error(struct est_response *r, const struct est_request *req, const struct ca_err *err)
{
	unsigned status = est_status_for(err->code);

	log_kv(status >= 500 ? LOG_ERROR : LOG_INFO, "est.refused", "req", req->reqid, "op", req->op,
	       "code", ca_code_str(err->code), "detail", err->detail, NULL);
	if (status >= 500)
		set_text(r, status, "%s (request id %s)", ca_code_str(err->code), req->reqid);
	else
		set_text(r, status, "%s: %s", ca_code_str(err->code), err->detail);
	r->ask_basic_auth = status == 401;
	r->retry_after = err->retry_after;
}

/* Base64 with 64-character lines, as EVP_Encode* writes it. */
static char *b64(const unsigned char *in, size_t len, size_t *out_len)
{
	EVP_ENCODE_CTX *e = EVP_ENCODE_CTX_new();
	size_t cap = 4 * ((len + 2) / 3) + len / 48 + 4;
	char *out = malloc(cap);
	int n = 0, total = 0;

	if (e == NULL || out == NULL || len > 16 * 1024 * 1024)
		goto fail;
	EVP_EncodeInit(e);
	if (!EVP_EncodeUpdate(e, (unsigned char *)out, &n, in, (int)len))
		goto fail;
	total = n;
	EVP_EncodeFinal(e, (unsigned char *)out + total, &n);
	total += n;
	EVP_ENCODE_CTX_free(e);
	*out_len = (size_t)total;
	return out;
fail:
	EVP_ENCODE_CTX_free(e);
	free(out);
	return NULL;
}

/* The body of simpleenroll: base64 DER (RFC 7030 §4.2.1), PEM tolerated. */
static unsigned char *decode_csr_body(const struct est_request *req, size_t *len, struct ca_err *err)
{
	EVP_ENCODE_CTX *d = NULL;
	unsigned char *out = NULL;
	int n = 0, m = 0;

	if (req->body_len >= 10 && memcmp(req->body, "-----BEGIN", 10) == 0) {
		BIO *b = BIO_new_mem_buf(req->body, (int)req->body_len);
		X509_REQ *x = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
		int l = x ? i2d_X509_REQ(x, &out) : -1;
		X509_REQ_free(x);
		BIO_free(b);
		if (l <= 0) {
			ca_err_ssl(err, CA_E_BAD_CSR, "body is PEM but not a certificate request");
			return NULL;
		}
		*len = (size_t)l;
		return out;
	}
	if ((d = EVP_ENCODE_CTX_new()) == NULL || (out = OPENSSL_malloc(req->body_len + 4)) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto fail;
	}
	EVP_DecodeInit(d);
	if (EVP_DecodeUpdate(d, out, &n, req->body, (int)req->body_len) < 0 ||
	    EVP_DecodeFinal(d, out + n, &m) < 0 || n + m == 0) {
		ca_err_set(err, CA_E_BAD_REQUEST, "RFC 7030 §4.2.1: body must be a base64-encoded PKCS#10 request");
		goto fail;
	}
	EVP_ENCODE_CTX_free(d);
	*len = (size_t)(n + m);
	return out;
fail:
	EVP_ENCODE_CTX_free(d);
	OPENSSL_free(out);
	return NULL;
}

/* A certs-only CMS SignedData (RFC 7030 §4.1.3, §4.2.3) in base64. */
static int certs_only(struct est_response *r, X509 *const *certs, size_t n)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	int len = -1, rc = -1;

	if (p7 == NULL || !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data))
		goto out;
	for (size_t i = 0; i < n; i++)
		if (certs[i] != NULL && !PKCS7_add_certificate(p7, certs[i]))
			goto out;
	if ((len = i2d_PKCS7(p7, &der)) <= 0)
		goto out;
	if ((r->body = b64(der, (size_t)len, &r->body_len)) == NULL)
		goto out;
	r->status = 200;
	r->content_type = CT_PKCS7;
	r->base64_transfer = true;
	rc = 0;
out:
	OPENSSL_free(der);
	PKCS7_free(p7);
	return rc;
}

/* CsrAttrs (RFC 7030 §4.5.2): the key the profile wants, when it wants one. */
static void csrattrs(struct est_response *r, const struct ca_profile *p)
{
	ASN1_SEQUENCE_ANY *seq = sk_ASN1_TYPE_new_null();
	X509_ATTRIBUTE *attr = NULL;
	ASN1_TYPE *t = NULL;
	unsigned char *der = NULL, *adr = NULL;
	int len, alen, curve = 0;

	if (p->key_types == CA_KEY_EC_P256)
		curve = NID_X9_62_prime256v1;
	else if (p->key_types == CA_KEY_EC_P384)
		curve = NID_secp384r1;
	if (curve == 0) {
		/* No single key type to ask for: no attributes (§4.5.2, 204). */
		r->status = 204;
		r->content_type = CT_CSRATTRS;
		goto out;
	}
	if (seq == NULL ||
	    (attr = X509_ATTRIBUTE_create(NID_X9_62_id_ecPublicKey, V_ASN1_OBJECT, OBJ_nid2obj(curve))) == NULL ||
	    (alen = i2d_X509_ATTRIBUTE(attr, &adr)) <= 0 || (t = ASN1_TYPE_new()) == NULL)
		goto fail;
	{
		ASN1_STRING *s = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
		if (s == NULL || !ASN1_STRING_set(s, adr, alen)) {
			ASN1_STRING_free(s);
			goto fail;
		}
		ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
	}
	if (!sk_ASN1_TYPE_push(seq, t))
		goto fail;
	t = NULL;
	if ((t = ASN1_TYPE_new()) == NULL)
		goto fail;
	ASN1_TYPE_set(t, V_ASN1_OBJECT, OBJ_nid2obj(curve == NID_secp384r1 ? NID_ecdsa_with_SHA384
									: NID_ecdsa_with_SHA256));
	if (!sk_ASN1_TYPE_push(seq, t))
		goto fail;
	t = NULL;
	if ((len = i2d_ASN1_SEQUENCE_ANY(seq, &der)) <= 0 ||
	    (r->body = b64(der, (size_t)len, &r->body_len)) == NULL)
		goto fail;
	r->status = 200;
	r->content_type = CT_CSRATTRS;
	r->base64_transfer = true;
	goto out;
fail:
	set_text(r, 500, "cannot encode csrattrs");
out:
	ASN1_TYPE_free(t);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	X509_ATTRIBUTE_free(attr);
	OPENSSL_free(adr);
	OPENSSL_free(der);
}

static bool content_type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return ct != NULL && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void enroll(ca_ctx *ca, const struct ca_profile *p, const struct est_request *req,
		   struct est_response *r, bool re)
{
	struct ca_err err = { 0 };
	struct ca_issue_res res = { 0 };
	struct ca_issue_req ir = { 0 };
	unsigned char *der = NULL;
	size_t len = 0;

	if (req->auth_failed) {
		set_text(r, 401, "RFC 7030 §3.2.3: the credentials given were not accepted");
		r->ask_basic_auth = true;
		log_kv(LOG_INFO, "est.auth_failed", "req", req->reqid, "op", req->op, NULL);
		return;
	}
	if (re && req->peer_cert == NULL) {
		set_text(r, 403, "RFC 7030 §4.2.2: re-enrollment needs the TLS client certificate being renewed");
		return;
	}
	if (req->body_too_large) {
		set_text(r, 413, "request body larger than the server accepts");
		return;
	}
	/* Nobody anonymous has the CSR parsed and its signature checked. */
	if (req->who->kind == CA_AUTH_NONE) {
		set_text(r, 401, "RFC 7030 §3.2.3: profile '%s' requires authentication "
			 "(HTTP Basic or a client certificate)", p->name);
		r->ask_basic_auth = true;
		log_kv(LOG_INFO, "est.unauthenticated", "req", req->reqid, "op", req->op, NULL);
		return;
	}
	if (!content_type_is(req->content_type, "application/pkcs10")) {
		set_text(r, 415, "RFC 7030 §4.2.1: Content-Type must be application/pkcs10");
		return;
	}
	if ((der = decode_csr_body(req, &len, &err)) == NULL) {
		set_error(r, req, &err);
		return;
	}
	ir = (struct ca_issue_req){
		.csr_der = der, .csr_len = len, .profile = p->name, .who = req->who,
		.protocol = "est", .renew_of = re ? req->peer_cert : NULL,
	};
	if (ca_issue(ca, &ir, &res, &err) != 0) {
		set_error(r, req, &err);
	} else if (certs_only(r, &res.cert, 1) != 0) {
		/* Committed but not encodable: the client may fetch it again later. */
		set_text(r, 500, "cannot encode the certificate (request id %s)", req->reqid);
	} else {
		log_kv(LOG_INFO, re ? "est.reenrolled" : "est.enrolled", "req", req->reqid,
		       "profile", p->name, "serial", res.serial_hex, "requester", req->who->id, NULL);
	}
	ca_issue_res_free(&res);
	OPENSSL_free(der);
}

void est_handle(ca_ctx *ca, const char *profile, const struct est_request *req,
		struct est_response *r)
{
	const char *pname = profile;
	const struct ca_profile *p = ca && pname ? ca_profile_find(ca, pname) : NULL;
	bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
	X509 *chain[8];
	size_t nchain;

	memset(r, 0, sizeof(*r));
	if (ca == NULL || (p != NULL && p->internal)) {
		set_text(r, 404, "RFC 7030 §3.2.2: no CA label '%s' on this server",
			 req->label ? req->label : pname ? pname : "");
		return;
	}
	/* A CA that issues under no profile (e.g. after a rollover) still
	 * serves its certificates. */
	if (p == NULL && strcmp(req->op, "cacerts") != 0) {
		set_text(r, 404, "RFC 7030 §3.2.2: label '%s' issues no certificates (CA '%s' has no profile)",
			 req->label ? req->label : "", ca_name(ca));
		return;
	}
	if (strcmp(req->op, "cacerts") == 0) {
		if (!get)
			set_text(r, 405, "RFC 7030 §4.1: cacerts takes GET");
		else if (nchain = ca_chain(ca, chain, 8), certs_only(r, chain, nchain) != 0)
			set_text(r, 500, "cannot encode CA certificates");
	} else if (strcmp(req->op, "simpleenroll") == 0 || strcmp(req->op, "simplereenroll") == 0) {
		if (!post)
			set_text(r, 405, "RFC 7030 §4.2: %s takes POST", req->op);
		else
			enroll(ca, p, req, r, req->op[6] == 'r');
	} else if (strcmp(req->op, "csrattrs") == 0) {
		if (!get)
			set_text(r, 405, "RFC 7030 §4.5: csrattrs takes GET");
		else
			csrattrs(r, p);
	} else if (strcmp(req->op, "serverkeygen") == 0 || strcmp(req->op, "fullcmc") == 0) {
		/* A client asking for it is no fault of the server: 404, not 501. */
		set_text(r, 404, "RFC 7030: %s is optional and not offered by this server", req->op);
	} else {
		set_text(r, 404, "RFC 7030 §3.2.2: unknown EST operation '%s'", req->op);
	}
}
