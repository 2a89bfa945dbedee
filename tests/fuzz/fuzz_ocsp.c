/* libFuzzer target: OCSP requests through ocsp_respond() with a software CA,
 * its delegated responder, the response cache and a status table, no store.
 * The first input byte picks the transport: even = POST body (DER), odd =
 * GET path (base64, through ocsp_decode_get). Every answer must be a DER
 * OCSPResponse. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include "mintca/ca.h"
#include "mintca/log.h"
#include "mintca/ocsp.h"

static ca_ctx *ca;
static ocsp_responder *resp;
static ocsp_cache *cache;

/* A fixed issuing CA key (a throwaway test key, used nowhere else), so the
 * seed corpus's issuerNameHash and issuerKeyHash match this CA. */
static const char issuing_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNQLzLdPvD8LoEkYp\n"
	"oaFDDWdJaNl4RR53yn6kx+COaG6hRANCAAQWw8BxmrkOi4rUG8Xb8SDo5HyzL5zv\n"
	"kBXcgC50ho/FJ+KMMCmc+PApoPy8M+3vdaEaQ2R3jCNlnt//qwh3I0Nx\n"
	"-----END PRIVATE KEY-----\n";
#define ISSUING_SUBJECT "/CN=fuzz ocsp issuing"

static ca_ctx *make_ca(void)
{
	struct ca_err err = { 0 };
	BIO *b = BIO_new_mem_buf(issuing_pem, -1);
	EVP_PKEY *ik = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	sig_key *root = sig_mem_key(EVP_EC_gen("P-256"));
	X509 *rc = ca_make_root(root, "/CN=fuzz ocsp root", 86400LL * 365, &err);
	X509 *ic = ik ? ca_make_intermediate(root, rc, ik, ISSUING_SUBJECT, 86400LL * 365, &err) : NULL;
	ca_ctx *c = ic ? ca_ctx_new("fuzz", sig_mem_key(ik), ic, rc, NULL, &err) : NULL;
	/* For the seed corpus: FUZZ_OCSP_ISSUER=issuer.pem fuzz_ocsp -runs=1 writes
	 * this CA's certificate; `openssl ocsp -issuer issuer.pem -serial 0x0a10
	 * -no_nonce -reqout x.der` then makes a request it serves. Seeds are a
	 * byte 0 then the DER (post-*), or a byte 1 then its base64 (get-*). */
	const char *dump = getenv("FUZZ_OCSP_ISSUER");
	FILE *f;

	BIO_free(b);
	sig_close(root);
	if (c == NULL)
		abort();
	if (dump != NULL && (f = fopen(dump, "w")) != NULL) {
		PEM_write_X509(f, ic);
		fclose(f);
	}
	return c;
}

/* The status follows the serial's last hex digit: 0-3 good, 4-5 revoked,
 * 6 reserved, 7 another CA's, 8 store down, else not in the store. */
static int fake_status(void *arg, const char *serial, struct ocsp_cert_status *r, struct ca_err *err)
{
	size_t n = strlen(serial);
	char d = n > 0 ? serial[n - 1] : '9';
	int v = d >= '0' && d <= '9' ? d - '0' : 10;

	(void)arg;
	memset(r, 0, sizeof(*r));
	strcpy(r->ca, v == 7 ? "elsewhere" : "fuzz");
	if (v == 8) {
		ca_err_set(err, CA_E_STORE, "down");
		return -1;
	}
	if (v > 8)
		return 1;
	r->issued = v != 6;
	r->revoked = v == 4 || v == 5;
	r->revoked_at = 1700000000;
	r->reason = v == 4 ? 1 : 0;
	return 0;
}

static void init(void)
{
	struct ca_err err = { 0 };
	struct ca_profile p;
	struct ca_issue_res res = { 0 };
	/* Kept for the process's life: the responder borrows it. */
	static sig_key *key;
	const unsigned char *d;
	X509 *cert;

	log_set_level(LOG_ERROR);
	ca = make_ca();
	key = sig_mem_key(EVP_EC_gen("P-256"));
	if (key == NULL || ocsp_responder_profile(&p, 86400, &err) != 0 || ca_ctx_add_profile(ca, &p, &err) != 0 ||
	    ocsp_issue_responder(ca, key, &res, &err) != 0)
		abort();
	d = res.der;
	if ((cert = d2i_X509(NULL, &d, (long)res.der_len)) == NULL || (cache = ocsp_cache_new(4096)) == NULL ||
	    (resp = ocsp_responder_new(NULL, cache, 3600, &err)) == NULL)
		abort();
	ocsp_cache_set_live(cache, true);
	ocsp_responder_set_status_fn(resp, fake_status, NULL);
	if (ocsp_responder_add_ca(resp, ca, &err) != 0 || ocsp_responder_set_signer(resp, 0, cert, key, &err) != 0)
		abort();
	X509_free(cert);
	ca_issue_res_free(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ocsp_answer a;
	unsigned char req[OCSP_REQ_MAX];
	const unsigned char *p;
	OCSP_RESPONSE *r;
	size_t len = 0;

	if (resp == NULL)
		init();
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		char *path = malloc(size);
		if (path == NULL)
			return 0;
		memcpy(path, data + 1, size - 1);
		path[size - 1] = '\0';
		if (ocsp_decode_get(path, req, sizeof(req), &len) != 0)
			len = 0;
		else if (len > sizeof(req))
			abort();
		free(path);
		ocsp_respond(resp, req, len, &a);
	} else {
		ocsp_respond(resp, data + 1, size - 1, &a);
	}
	if (a.der == NULL || a.len == 0)
		abort();
	/* The signer never fails here: a tryLater can only be the store's. */
	if (a.response_status == OCSP_RESPONSE_STATUS_TRYLATER && strncmp(a.why, "store", 5) != 0)
		abort();
	p = a.der;
	if ((r = d2i_OCSP_RESPONSE(NULL, &p, (long)a.len)) == NULL || p != a.der + a.len ||
	    OCSP_response_status(r) != a.response_status)
		abort();
	OCSP_RESPONSE_free(r);
	ocsp_answer_free(&a);
	return 0;
}
