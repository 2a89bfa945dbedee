/* OCSP in ca-core: the delegated responder certificate (its internal profile
 * and its issuance through ca_issue), and signing BasicOCSPResponses. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include "mintca/ocsp.h"
#include "ca_int.h"

/* RFC 6960 §4.2.2.2: id-kp-OCSPSigning. */
#define OID_KP_OCSP_SIGNING "1.3.6.1.5.5.7.3.9"
/* RFC 6960 §4.2.2.2.1: id-pkix-ocsp-nocheck, value NULL. */
#define OID_OCSP_NOCHECK "1.3.6.1.5.5.7.48.1.5"

int ocsp_responder_profile(struct ca_profile *p, long long validity_s, struct ca_err *err)
{
	static const unsigned char der_null[] = { 0x05, 0x00 };
	int rc = -1;

	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", OCSP_RESPONDER_PROFILE);
	p->key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA;
	p->rsa_min_bits = 2048;
	p->rsa_max_bits = 4096;
	p->validity_seconds = validity_s;
	p->backdate_seconds = 60;
	p->operator_allowed = true;
	p->internal = true;
	p->key_usage = 1u;           /* digitalSignature only */
	p->max_sans = 0;
	if ((p->eku_oids = calloc(2, sizeof(*p->eku_oids))) == NULL ||
	    (p->eku_oids[0] = strdup(OID_KP_OCSP_SIGNING)) == NULL)
		goto oom;
	p->n_eku_oids = 1;
	if ((p->custom = calloc(1, sizeof(*p->custom))) == NULL)
		goto oom;
	p->n_custom = 1;
	if ((p->custom[0].oid = strdup(OID_OCSP_NOCHECK)) == NULL ||
	    (p->custom[0].der = malloc(sizeof(der_null))) == NULL)
		goto oom;
	memcpy(p->custom[0].der, der_null, sizeof(der_null));
	p->custom[0].der_len = sizeof(der_null);
	p->custom[0].critical = false;
	rc = 0;
	goto out;
oom:
	ca_err_set(err, CA_E_INTERNAL, "out of memory");
	ca_profile_free_lists(p);
out:
	return rc;
}

/* A PKCS#10 request for key (signed by it: proof of possession). */
static X509_REQ *responder_csr(const char *ca, EVP_PKEY *key, struct ca_err *err)
{
	X509_REQ *r = X509_REQ_new();
	char cn[CA_NAME_MAX + 32];
	const EVP_MD *md = sig_digest_for(key);

	snprintf(cn, sizeof(cn), "%s OCSP Responder", ca);
	if (r == NULL ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(r, key) || X509_REQ_sign(r, key, md) <= 0) {
		ca_err_ssl(err, CA_E_SIGNER, "cannot sign the OCSP responder's certificate request");
		X509_REQ_free(r);
		return NULL;
	}
	return r;
}

struct csr_job {
	const char *ca;
	X509_REQ *csr;
	struct ca_err *err;
};

/* sig_with_privkey() callbacks: 1 on success, as OpenSSL. */
static int csr_with_key(EVP_PKEY *pk, void *arg)
{
	struct csr_job *j = arg;

	return (j->csr = responder_csr(j->ca, pk, j->err)) != NULL ? 1 : 0;
}

int ocsp_issue_responder(ca_ctx *ca, sig_key *key, struct ca_issue_res *res, struct ca_err *err)
{
	struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "mintcad" };
	struct csr_job job = { .ca = ca_name(ca), .err = err };
	X509_REQ *csr = NULL;
	unsigned char *der = NULL;
	int len, rc = -1;

	memset(res, 0, sizeof(*res));
	/* Through the signer: a token session re-opened meanwhile is used. */
	if (sig_with_privkey(key, csr_with_key, &job, err) != 0)
		goto out;
	csr = job.csr;
	if ((len = i2d_X509_REQ(csr, &der)) <= 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the OCSP responder's certificate request");
		goto out;
	}
	struct ca_issue_req req = {
		.csr_der = der, .csr_len = (size_t)len, .profile = OCSP_RESPONDER_PROFILE,
		.who = &who, .protocol = "ocsp",
	};
	if (ca_issue(ca, &req, res, err) != 0)
		goto out;
	rc = 0;
out:
	OPENSSL_free(der);
	X509_REQ_free(csr);
	return rc;
}

/* An ASN1_GENERALIZEDTIME for t (OCSP times are GeneralizedTime). */
static ASN1_GENERALIZEDTIME *gtime(time_t t)
{
	return ASN1_GENERALIZEDTIME_set(NULL, t);
}

/* Shared by the requester and the signer thread (sig_submit): whoever lets
 * go last frees it, so a signature that comes after the deadline lands in
 * memory nobody else reads any more. */
struct sign_job {
	atomic_int refs;
	OCSP_BASICRESP *bs;
	X509 *signer;
};

static void sign_job_unref(void *arg)
{
	struct sign_job *j = arg;

	if (atomic_fetch_sub(&j->refs, 1) == 1) {
		OCSP_BASICRESP_free(j->bs);
		X509_free(j->signer);
		free(j);
	}
}

static int sign_with_key(EVP_PKEY *key, void *arg)
{
	struct sign_job *j = arg;
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	int rc = 0;

	/* RFC 5019 §2.2.3: responderID byKey; the delegated responder's
	 * certificate travels in the response (RFC 6960 §4.2.2.2). */
	if (mctx != NULL && EVP_DigestSignInit(mctx, NULL, sig_digest_for(key), NULL, key) == 1 &&
	    OCSP_basic_sign_ctx(j->bs, j->signer, mctx, NULL, OCSP_RESPID_KEY) == 1)
		rc = 1;
	EVP_MD_CTX_free(mctx);
	return rc;
}

int ocsp_sign(X509 *signer, sig_key *key, const struct ocsp_single *s, size_t n,
	      OCSP_REQUEST *nonce_from, unsigned char **der, size_t *len, struct ca_err *err)
{
	struct sign_job *job = calloc(1, sizeof(*job));
	OCSP_BASICRESP *bs = NULL;
	OCSP_RESPONSE *resp = NULL;
	ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL, *rt = NULL;
	unsigned char *out = NULL;
	int l, rc = -1;

	*der = NULL;
	*len = 0;
	if (job == NULL)
		goto ssl;
	atomic_init(&job->refs, 1);
	if ((bs = job->bs = OCSP_BASICRESP_new()) == NULL || !X509_up_ref(signer))
		goto ssl;
	job->signer = signer;
	for (size_t i = 0; i < n; i++) {
		bool revoked = s[i].status == V_OCSP_CERTSTATUS_REVOKED;
		ASN1_GENERALIZEDTIME_free(tu);
		ASN1_GENERALIZEDTIME_free(nu);
		ASN1_GENERALIZEDTIME_free(rt);
		tu = gtime(s[i].this_update);
		nu = gtime(s[i].next_update);
		rt = revoked ? gtime(s[i].revoked_at) : NULL;
		if (tu == NULL || nu == NULL || (revoked && rt == NULL))
			goto ssl;
		if (OCSP_basic_add1_status(bs, s[i].id, s[i].status,
					   revoked ? (s[i].reason >= 0 ? s[i].reason : OCSP_REVOKED_STATUS_NOSTATUS) : 0,
					   rt, tu, nu) == NULL)
			goto ssl;
	}
	/* RFC 6960 §4.4.1: the nonce of the request, copied as it came. */
	if (nonce_from != NULL && OCSP_copy_nonce(bs, nonce_from) <= 0)
		goto ssl;
	/* On a signer thread, with its deadline: a stalled token answers
	 * tryLater instead of holding the request. */
	atomic_fetch_add(&job->refs, 1);
	if (sig_submit(key, sign_with_key, job, sign_job_unref, err) != 0) {
		if (err->code == CA_OK)
			ca_err_ssl(err, CA_E_SIGNER, "cannot sign the OCSP response");
		goto out;
	}
	if ((resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs)) == NULL ||
	    (l = i2d_OCSP_RESPONSE(resp, &out)) <= 0)
		goto ssl;
	*der = out;
	*len = (size_t)l;
	out = NULL;
	rc = 0;
	goto out;
ssl:
	ca_err_ssl(err, CA_E_SIGNER, "cannot sign the OCSP response");
out:
	OPENSSL_free(out);
	ASN1_GENERALIZEDTIME_free(tu);
	ASN1_GENERALIZEDTIME_free(nu);
	ASN1_GENERALIZEDTIME_free(rt);
	OCSP_RESPONSE_free(resp);
	if (job != NULL)
		sign_job_unref(job);
	return rc;
}
