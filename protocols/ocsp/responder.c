/* The OCSP responder (RFC 6960, RFC 5019 profile): decode the request, find
 * the CA by issuerNameHash + issuerKeyHash, read the status, and answer from
 * the cache of signed responses or sign a fresh one with the CA's delegated
 * responder certificate. A request with a nonce is always signed fresh. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include "mintca/log.h"
#include "ocsp_int.h"

/* CertID hash algorithms answered (RFC 6960 §4.1.1; RFC 5019 §2.1.1 SHA-1). */
static const struct { int nid; unsigned len; } mds[] = {
	{ NID_sha1, 20 }, { NID_sha256, 32 }, { NID_sha384, 48 }, { NID_sha512, 64 },
};
#define N_MDS (sizeof(mds) / sizeof(mds[0]))
/* RFC 8954 §2.1: nonces of 1 to 32 octets (the extnValue holds an OCTET
 * STRING: 2 more octets). A longer one is ignored, the answer then comes
 * without a nonce. */
#define NONCE_EXT_MAX 34

struct ocsp_signer {
	X509 *cert;
	sig_key *key;                        /* borrowed: outlives the responder */
	time_t not_after;
	atomic_int refs;
};

struct ca_entry {
	ca_ctx *ca;                          /* borrowed */
	unsigned char name_hash[N_MDS][EVP_MAX_MD_SIZE];
	unsigned char key_hash[N_MDS][EVP_MAX_MD_SIZE];
	pthread_mutex_t mu;                  /* guards signer (the pointer only) */
	struct ocsp_signer *signer;
};

struct ocsp_responder {
	struct ca_entry **cas;
	size_t n;
	db_store *store;
	ocsp_cache *cache;
	unsigned validity_s;
	ocsp_status_fn status;
	void *status_arg;
	ocsp_clock_fn clock;
	void *clock_arg;
};

static time_t system_clock(void *arg)
{
	(void)arg;
	return time(NULL);
}

static int store_status(void *arg, const char *serial_hex, struct ocsp_cert_status *r,
			struct ca_err *err)
{
	struct db_cert_status s;
	int rc;

	if (arg == NULL) {
		ca_err_set(err, CA_E_STORE, "no store");
		return -1;
	}
	if ((rc = db_ocsp_status(arg, serial_hex, &s, err)) != 0)
		return rc;
	memset(r, 0, sizeof(*r));
	snprintf(r->ca, sizeof(r->ca), "%s", s.ca);
	r->issued = s.issued != 0;
	r->revoked = s.revoked != 0;
	r->revoked_at = s.revoked_at;
	r->reason = s.reason;
	return 0;
}

ocsp_responder *ocsp_responder_new(db_store *store, ocsp_cache *cache, unsigned validity_s,
				   struct ca_err *err)
{
	ocsp_responder *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	r->store = store;
	r->cache = cache;
	r->validity_s = validity_s > 0 ? validity_s : 3600;
	r->status = store_status;
	r->status_arg = store;
	r->clock = system_clock;
	return r;
}

static void signer_put(struct ocsp_signer *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
		X509_free(s->cert);
		free(s);
	}
}

static struct ocsp_signer *signer_get(struct ca_entry *e)
{
	struct ocsp_signer *s;

	pthread_mutex_lock(&e->mu);
	if ((s = e->signer) != NULL)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&e->mu);
	return s;
}

void ocsp_responder_free(ocsp_responder *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		signer_put(r->cas[i]->signer);
		pthread_mutex_destroy(&r->cas[i]->mu);
		free(r->cas[i]);
	}
	free(r->cas);
	free(r);
}

void ocsp_responder_set_status_fn(ocsp_responder *r, ocsp_status_fn fn, void *arg)
{
	r->status = fn;
	r->status_arg = arg;
}

void ocsp_responder_set_clock(ocsp_responder *r, ocsp_clock_fn fn, void *arg)
{
	r->clock = fn;
	r->clock_arg = arg;
}

size_t ocsp_responder_count(const ocsp_responder *r)
{
	return r->n;
}

int ocsp_responder_add_ca(ocsp_responder *r, ca_ctx *ca, struct ca_err *err)
{
	struct ca_entry *e = calloc(1, sizeof(*e)), **v;
	X509 *cert = ca_issuing_cert(ca);
	const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(cert);
	unsigned char *name = NULL;
	int nlen, rc = -1;

	if (e == NULL || pthread_mutex_init(&e->mu, NULL) != 0) {
		free(e);
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	e->ca = ca;
	/* RFC 6960 §4.1.1: the hash of the issuer's DER name, and of the value
	 * of its subjectPublicKey BIT STRING. */
	if (key == NULL || (nlen = i2d_X509_NAME(X509_get_subject_name(cert), &name)) <= 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "CA '%s': cannot encode its name and key", ca_name(ca));
		goto out;
	}
	for (size_t i = 0; i < N_MDS; i++) {
		const EVP_MD *md = EVP_get_digestbynid(mds[i].nid);
		if (md == NULL ||
		    !EVP_Digest(name, (size_t)nlen, e->name_hash[i], NULL, md, NULL) ||
		    !EVP_Digest(ASN1_STRING_get0_data(key), (size_t)ASN1_STRING_length(key),
				e->key_hash[i], NULL, md, NULL)) {
			ca_err_ssl(err, CA_E_INTERNAL, "CA '%s': cannot hash its name and key", ca_name(ca));
			goto out;
		}
	}
	if ((v = realloc(r->cas, (r->n + 1) * sizeof(*v))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto out;
	}
	r->cas = v;
	r->cas[r->n] = e;
	e = NULL;
	rc = (int)r->n++;
out:
	OPENSSL_free(name);
	if (e != NULL) {
		pthread_mutex_destroy(&e->mu);
		free(e);
	}
	return rc;
}

int ocsp_responder_set_signer(ocsp_responder *r, size_t i, X509 *cert, sig_key *key,
			      struct ca_err *err)
{
	struct ocsp_signer *s, *old;
	struct tm tm;

	if (i >= r->n || cert == NULL || key == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "ocsp_responder_set_signer: no such CA, or no certificate");
		return -1;
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1 || (s = calloc(1, sizeof(*s))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory, or unreadable notAfter");
		return -1;
	}
	s->not_after = timegm(&tm);
	X509_up_ref(cert);
	s->cert = cert;
	s->key = key;
	atomic_init(&s->refs, 1);
	pthread_mutex_lock(&r->cas[i]->mu);
	old = r->cas[i]->signer;
	r->cas[i]->signer = s;
	pthread_mutex_unlock(&r->cas[i]->mu);
	signer_put(old);
	return 0;
}

time_t ocsp_responder_signer_expiry(ocsp_responder *r, size_t i)
{
	struct ocsp_signer *s = i < r->n ? signer_get(r->cas[i]) : NULL;
	time_t t = s != NULL ? s->not_after : 0;

	signer_put(s);
	return t;
}

void ocsp_answer_free(struct ocsp_answer *a)
{
	if (a == NULL)
		return;
	free(a->der);
	a->der = NULL;
	a->len = 0;
}

/* --- answering ------------------------------------------------------------ */

/* An unsuccessful OCSPResponse (RFC 6960 §4.2.1: no responseBytes). */
static void refuse(struct ocsp_answer *a, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct ocsp_answer *a, int status, const char *fmt, ...)
{
	OCSP_RESPONSE *resp = OCSP_response_create(status, NULL);
	unsigned char *der = NULL;
	int len;
	va_list ap;

	free(a->der);
	a->der = NULL;
	a->len = 0;
	a->response_status = status;
	a->cacheable = false;
	a->from_cache = false;
	a->cert_status[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(a->why, sizeof(a->why), fmt, ap);
	va_end(ap);
	if (resp != NULL && (len = i2d_OCSP_RESPONSE(resp, &der)) > 0 &&
	    (a->der = malloc((size_t)len)) != NULL) {
		memcpy(a->der, der, (size_t)len);
		a->len = (size_t)len;
	}
	OPENSSL_free(der);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
}

/* The serial as the store writes it (lower-case hex, two digits per octet,
 * no leading zero octets). false for a serial no certificate can have. */
static bool serial_text(const ASN1_INTEGER *s, char out[41])
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int n = ASN1_STRING_length(s), i = 0, k = 0;

	out[0] = '\0';
	if (ASN1_STRING_type(s) != V_ASN1_INTEGER || n <= 0)
		return false;
	while (i < n && d[i] == 0)
		i++;
	if (i == n || n - i > 20)
		return false;
	for (; i < n; i++) {
		out[k++] = digits[d[i] >> 4];
		out[k++] = digits[d[i] & 15];
	}
	out[k] = '\0';
	return true;
}

/* Whether CA e's name and key hash to these values under alg. */
static bool ca_matches(const struct ca_entry *e, const ASN1_OBJECT *alg, const ASN1_OCTET_STRING *nh,
		       const ASN1_OCTET_STRING *kh)
{
	int nid = OBJ_obj2nid(alg);

	for (size_t m = 0; m < N_MDS; m++)
		if (mds[m].nid == nid)
			return ASN1_STRING_length(nh) == (int)mds[m].len &&
			       ASN1_STRING_length(kh) == (int)mds[m].len &&
			       memcmp(e->name_hash[m], ASN1_STRING_get0_data(nh), mds[m].len) == 0 &&
			       memcmp(e->key_hash[m], ASN1_STRING_get0_data(kh), mds[m].len) == 0;
	return false;
}

/* The first CA whose name and key hash to these values. */
static struct ca_entry *find_ca(const ocsp_responder *r, const ASN1_OBJECT *alg,
				const ASN1_OCTET_STRING *nh, const ASN1_OCTET_STRING *kh)
{
	for (size_t i = 0; i < r->n; i++)
		if (ca_matches(r->cas[i], alg, nh, kh))
			return r->cas[i];
	return NULL;
}

/* RFC 6960 §4.4.1 nonce that will be echoed: present and of a sane size. */
static bool wants_nonce(OCSP_REQUEST *req)
{
	int i = OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1);
	X509_EXTENSION *x = i >= 0 ? OCSP_REQUEST_get_ext(req, i) : NULL;
	int len = x != NULL ? ASN1_STRING_length(X509_EXTENSION_get_data(x)) : 0;

	return len > 0 && len <= NONCE_EXT_MAX;
}

struct item {
	OCSP_CERTID *id;          /* borrowed from the request */
	struct ca_entry *ca;
	char serial[41];
	bool serial_ok;
	struct ocsp_cert_status st;
	int status;               /* V_OCSP_CERTSTATUS_* */
};

/* Step 4: the status of one CertID. A serial this CA never issued (unknown
 * to the store, only reserved, or another CA's) is never good. -1 when the
 * store cannot say. */
static int read_status(ocsp_responder *r, struct item *it, const ASN1_OBJECT *alg,
		       const ASN1_OCTET_STRING *nh, const ASN1_OCTET_STRING *kh, struct ca_err *err)
{
	int rc;

	it->status = V_OCSP_CERTSTATUS_UNKNOWN;
	if (!it->serial_ok)
		return 0;
	if ((rc = r->status(r->status_arg, it->serial, &it->st, err)) < 0)
		return -1;
	if (rc > 0 || !it->st.issued)
		return 0;
	if (strcmp(it->st.ca, ca_name(it->ca->ca)) != 0) {
		/* Another CA with the same name and key (a re-certified CA)? */
		struct ca_entry *other = NULL;
		for (size_t i = 0; i < r->n && other == NULL; i++)
			if (strcmp(it->st.ca, ca_name(r->cas[i]->ca)) == 0 && ca_matches(r->cas[i], alg, nh, kh))
				other = r->cas[i];
		if (other == NULL)
			return 0;
		it->ca = other;
	}
	it->status = it->st.revoked ? V_OCSP_CERTSTATUS_REVOKED : V_OCSP_CERTSTATUS_GOOD;
	return 0;
}

static const char *status_name(int s)
{
	return s == V_OCSP_CERTSTATUS_GOOD ? "good" : s == V_OCSP_CERTSTATUS_REVOKED ? "revoked" : "unknown";
}

/* With cached_only, stops before the store and the signer: false (a empty)
 * when the answer needs them. */
static bool respond(ocsp_responder *r, const unsigned char *der, size_t len, struct ocsp_answer *a,
		    bool cached_only)
{
	bool answered = true;
	OCSP_REQUEST *req = NULL;
	const unsigned char *p = der;
	struct item items[OCSP_MAX_CERTIDS];
	struct ocsp_single singles[OCSP_MAX_CERTIDS];
	struct ocsp_signer *signer = NULL;
	struct ca_err err = { 0 };
	unsigned char *key = NULL, *signed_der = NULL, sha[EVP_MAX_MD_SIZE];
	size_t signed_len = 0;
	int n, klen = 0;
	bool nonce, use_cache;
	unsigned long gen = 0;
	enum ocsp_cache_result cr = OCSP_CACHE_MISS;
	time_t now = r->clock(r->clock_arg);

	memset(a, 0, sizeof(*a));
	/* 1. decode: one DER OCSPRequest, nothing after it */
	if (len == 0 || len > OCSP_REQ_MAX) {
		refuse(a, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "RFC 6960 §4.1: request of %zu bytes (at most %d)",
		       len, OCSP_REQ_MAX);
		goto out;
	}
	if ((req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) == NULL || p != der + len) {
		refuse(a, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "RFC 6960 §4.1.1: not one DER OCSPRequest");
		goto out;
	}
	n = OCSP_request_onereq_count(req);
	if (n < 1 || n > OCSP_MAX_CERTIDS) {
		refuse(a, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "RFC 6960 §4.1.1: %d CertIDs (1 to %d accepted)",
		       n, OCSP_MAX_CERTIDS);
		goto out;
	}
	nonce = wants_nonce(req);
	/* 2. route: every CertID must name an issuer served here */
	for (int i = 0; i < n; i++) {
		ASN1_OCTET_STRING *nh, *kh;
		ASN1_OBJECT *alg;
		ASN1_INTEGER *serial;
		struct item *it = &items[i];
		memset(it, 0, sizeof(*it));
		it->id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
		if (it->id == NULL || !OCSP_id_get0_info(&nh, &alg, &kh, &serial, it->id) ||
		    nh == NULL || alg == NULL || kh == NULL || serial == NULL) {
			refuse(a, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "RFC 6960 §4.1.1: incomplete CertID");
			goto out;
		}
		if ((it->ca = find_ca(r, alg, nh, kh)) == NULL) {
			refuse(a, OCSP_RESPONSE_STATUS_UNAUTHORIZED,
			       "RFC 6960 §2.3: issuer (hash %s) not served here", OBJ_nid2sn(OBJ_obj2nid(alg)));
			goto out;
		}
		it->serial_ok = serial_text(serial, it->serial);
	}
	/* 3. the cache: one CertID without nonce (RFC 5019 §2.1.1) */
	use_cache = r->cache != NULL && n == 1 && !nonce && items[0].serial_ok;
	if (use_cache) {
		if ((klen = i2d_OCSP_CERTID(items[0].id, &key)) <= 0) {
			refuse(a, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "RFC 6960 §4.1.1: CertID does not encode");
			goto out;
		}
		cr = ocsp_cache_get(r->cache, items[0].serial, key, (size_t)klen, now, a, &gen);
		if (cr == OCSP_CACHE_HIT) {
			a->response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
			a->cacheable = true;
			a->from_cache = true;
			goto out;
		}
	}
	if (cached_only) {
		ocsp_answer_free(a);
		memset(a, 0, sizeof(*a));
		answered = false;
		goto out;
	}
	/* 4. status (after the cache generation was read: see cache.c) */
	for (int i = 0; i < n; i++) {
		OCSP_CERTID *id = items[i].id;
		ASN1_OCTET_STRING *nh, *kh;
		ASN1_OBJECT *alg;
		ASN1_INTEGER *serial;
		(void)OCSP_id_get0_info(&nh, &alg, &kh, &serial, id);
		if (read_status(r, &items[i], alg, nh, kh, &err) != 0) {
			if (cr == OCSP_CACHE_REFRESH) {
				/* Still valid: better than tryLater. */
				a->response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
				a->cacheable = true;
				a->from_cache = true;
				goto out;
			}
			refuse(a, OCSP_RESPONSE_STATUS_TRYLATER, "store unavailable: %s", err.detail);
			goto out;
		}
	}
	for (int i = 1; i < n; i++)
		if (items[i].ca != items[0].ca) {
			refuse(a, OCSP_RESPONSE_STATUS_UNAUTHORIZED,
			       "RFC 6960 §2.3: CertIDs of different issuers in one request");
			goto out;
		}
	/* 5. sign with the CA's responder certificate (no lock held) */
	if ((signer = signer_get(items[0].ca)) == NULL || signer->not_after <= now) {
		if (cr == OCSP_CACHE_REFRESH) {
			a->response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
			a->cacheable = true;
			a->from_cache = true;
			goto out;
		}
		refuse(a, OCSP_RESPONSE_STATUS_TRYLATER, "CA '%s' has no valid OCSP responder certificate yet",
		       ca_name(items[0].ca->ca));
		goto out;
	}
	for (int i = 0; i < n; i++) {
		time_t next = items[i].status == V_OCSP_CERTSTATUS_UNKNOWN ? now + OCSP_UNKNOWN_TTL_S
									    : now + (time_t)r->validity_s;
		/* A response never outlives the certificate that signs it. */
		if (next > signer->not_after)
			next = signer->not_after;
		singles[i] = (struct ocsp_single){
			.id = items[i].id, .status = items[i].status,
			.revoked_at = items[i].st.revoked_at,
			/* RFC 5280 §5.3.1: unspecified (0) is left out */
			.reason = items[i].st.reason > 0 ? items[i].st.reason : -1,
			.this_update = now, .next_update = next,
		};
	}
	if (ocsp_sign(signer->cert, signer->key, singles, (size_t)n, nonce ? req : NULL, &signed_der,
		      &signed_len, &err) != 0) {
		/* A CertID that decodes but cannot be encoded again (odd hash
		 * parameters) is the request's fault, not the signer's. */
		for (int i = 0; i < n; i++) {
			OCSP_CERTID *d = OCSP_CERTID_dup(items[i].id);
			if (d == NULL) {
				refuse(a, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
				       "RFC 6960 §4.1.1: CertID %d does not encode again", i);
				goto out;
			}
			OCSP_CERTID_free(d);
		}
		if (cr == OCSP_CACHE_REFRESH) {
			a->response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
			a->cacheable = true;
			a->from_cache = true;
			goto out;
		}
		refuse(a, OCSP_RESPONSE_STATUS_TRYLATER, "signer unavailable: %s", err.detail);
		goto out;
	}
	free(a->der);
	if ((a->der = malloc(signed_len)) == NULL) {
		refuse(a, OCSP_RESPONSE_STATUS_INTERNALERROR, "out of memory");
		goto out;
	}
	memcpy(a->der, signed_der, signed_len);
	a->len = signed_len;
	a->response_status = OCSP_RESPONSE_STATUS_SUCCESSFUL;
	a->from_cache = false;
	a->cacheable = n == 1 && !nonce;
	a->this_update = now;
	a->next_update = singles[0].next_update;
	snprintf(a->cert_status, sizeof(a->cert_status), "%s", status_name(items[0].status));
	a->etag[0] = '\0';
	if (a->cacheable) {
		unsigned int sl = 0;
		/* RFC 5019 §6.2: e.g. the SHA-1 hash of the OCSPResponse */
		if (EVP_Digest(a->der, a->len, sha, &sl, EVP_sha1(), NULL) && sl == 20) {
			a->etag[0] = '"';
			for (unsigned k = 0; k < sl; k++)
				snprintf(a->etag + 1 + 2 * k, 3, "%02x", sha[k]);
			a->etag[41] = '"';
			a->etag[42] = '\0';
		}
	}
	if (use_cache) {
		/* Re-signed at half life, so a response is renewed long before
		 * its nextUpdate; 'unknown' ones just expire. */
		time_t refresh = items[0].status == V_OCSP_CERTSTATUS_UNKNOWN
					 ? a->next_update : now + (a->next_update - now) / 2;
		ocsp_cache_put(r->cache, items[0].serial, key, (size_t)klen, a, refresh, gen);
	}
out:
	signer_put(signer);
	OPENSSL_free(signed_der);
	OPENSSL_free(key);
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	return answered;
}

void ocsp_respond(ocsp_responder *r, const unsigned char *der, size_t len, struct ocsp_answer *a)
{
	(void)respond(r, der, len, a, false);
}

bool ocsp_respond_cached(ocsp_responder *r, const unsigned char *der, size_t len, struct ocsp_answer *a)
{
	return respond(r, der, len, a, true);
}

int ocsp_decode_get(const char *path, unsigned char *out, size_t cap, size_t *len)
{
	size_t in = strlen(path), padded = (in + 3) / 4 * 4, max_in = (cap + 2) / 3 * 4;
	char *buf = NULL;
	unsigned char *dec = NULL;
	EVP_ENCODE_CTX *ctx = NULL;
	int n1 = 0, n2 = 0, rc = -1;

	*len = 0;
	if (in == 0 || in > max_in + 3 || padded > max_in + 4)
		goto out;
	if ((buf = malloc(padded + 1)) == NULL || (dec = malloc(padded / 4 * 3 + 3)) == NULL ||
	    (ctx = EVP_ENCODE_CTX_new()) == NULL)
		goto out;
	/* RFC 5019 §5 asks for base64; the URL-safe alphabet is taken too. */
	for (size_t i = 0; i < in; i++)
		buf[i] = path[i] == '-' ? '+' : path[i] == '_' ? '/' : path[i];
	for (size_t i = in; i < padded; i++)
		buf[i] = '=';
	buf[padded] = '\0';
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, dec, &n1, (const unsigned char *)buf, (int)padded) < 0 ||
	    EVP_DecodeFinal(ctx, dec + n1, &n2) != 1)
		goto out;
	if ((size_t)(n1 + n2) > cap || n1 + n2 == 0)
		goto out;
	memcpy(out, dec, (size_t)(n1 + n2));
	*len = (size_t)(n1 + n2);
	rc = 0;
out:
	EVP_ENCODE_CTX_free(ctx);
	free(buf);
	free(dec);
	return rc;
}
