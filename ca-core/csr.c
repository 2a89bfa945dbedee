/* CSR intake: decode exactly one DER PKCS#10, verify its signature (proof of
 * possession) and check its key against the profile.
 *
 * Why not d2i_X509_REQ: on OpenSSL 3.0 it decodes the public key through a
 * new OSSL_DECODER context for every request, which walks every decoder of
 * every provider under global read locks: more than a third of an
 * issuance's CPU on one thread, and most of it on eight, where the threads
 * queue on those locks. So the request is decoded from the same ASN.1
 * (RFC 2986 §4.1) by OpenSSL's template engine with the SubjectPublicKeyInfo
 * kept as its two parts; the key that checks the signature is imported from
 * the raw point (EC P-256, P-384) or the raw bytes (Ed25519) by the key
 * manager itself, and only other keys go through OpenSSL's decoder. The
 * X509_REQ returned holds the request's subject, attributes, key and
 * signature, the key undecoded: X509_REQ_get0_pubkey() is NULL on it, use
 * ca_csr_key_type() or ca_csr_pubkey(). */
#include <stdbool.h>
#include <string.h>
#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "ca_int.h"

typedef struct {
	X509_ALGOR *algorithm;
	ASN1_BIT_STRING *key;
} CSR_SPKI;

typedef struct {
	ASN1_ENCODING enc; /* the DER as received: what the signature covers */
	ASN1_INTEGER *version;
	X509_NAME *subject;
	CSR_SPKI *spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} CSR_INFO;

typedef struct {
	CSR_INFO *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} CSR_MSG;

ASN1_SEQUENCE(CSR_SPKI) = {
	ASN1_SIMPLE(CSR_SPKI, algorithm, X509_ALGOR),
	ASN1_SIMPLE(CSR_SPKI, key, ASN1_BIT_STRING)
} static_ASN1_SEQUENCE_END(CSR_SPKI)

/* attributes [0] is not optional in RFC 2986, but requests without it
 * exist, and OpenSSL's own X509_REQ accepts them too. */
ASN1_SEQUENCE_enc(CSR_INFO, enc, NULL) = {
	ASN1_SIMPLE(CSR_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(CSR_INFO, subject, X509_NAME),
	ASN1_SIMPLE(CSR_INFO, spki, CSR_SPKI),
	ASN1_IMP_SET_OF_OPT(CSR_INFO, attributes, X509_ATTRIBUTE, 0)
} static_ASN1_SEQUENCE_END_ref(CSR_INFO, CSR_INFO)

ASN1_SEQUENCE(CSR_MSG) = {
	ASN1_SIMPLE(CSR_MSG, info, CSR_INFO),
	ASN1_SIMPLE(CSR_MSG, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(CSR_MSG, signature, ASN1_BIT_STRING)
} static_ASN1_SEQUENCE_END(CSR_MSG)

int ca_pubkey_set(X509_PUBKEY *dst, const X509_ALGOR *alg, const unsigned char *bits, int len)
{
	const ASN1_OBJECT *oid;
	ASN1_OBJECT *odup = NULL;
	const void *pval;
	void *pdup = NULL;
	unsigned char *bdup;
	int ptype;

	X509_ALGOR_get0(&oid, &ptype, &pval, alg);
	if (ptype == V_ASN1_OBJECT)
		pdup = OBJ_dup(pval);
	else if (ptype == V_ASN1_SEQUENCE)
		pdup = ASN1_STRING_dup(pval);
	else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
		return -1;
	if ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && pdup == NULL)
		return -1;
	if ((odup = OBJ_dup(oid)) == NULL || (bdup = OPENSSL_memdup(bits, (size_t)len)) == NULL)
		goto fail;
	if (!X509_PUBKEY_set0_param(dst, odup, ptype, pdup, bdup, len)) {
		OPENSSL_free(bdup);
		goto fail;
	}
	return 0;
fail:
	ASN1_OBJECT_free(odup);
	if (ptype == V_ASN1_OBJECT)
		ASN1_OBJECT_free(pdup);
	else
		ASN1_STRING_free(pdup);
	return -1;
}

int ca_csr_key_type(X509_REQ *req)
{
	ASN1_OBJECT *oid;

	if (!X509_PUBKEY_get0_param(&oid, NULL, NULL, NULL, X509_REQ_get_X509_PUBKEY(req)))
		return NID_undef;
	return OBJ_obj2nid(oid);
}

/* The named curve of an id-ecPublicKey algorithm, or NID_undef. */
static int ec_curve(const X509_ALGOR *alg)
{
	const void *pval;
	int ptype;

	X509_ALGOR_get0(NULL, &ptype, &pval, alg);
	return ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
}

EVP_PKEY *ca_csr_pubkey(X509_REQ *req)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pk = NULL;
	int len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &der);

	if (len > 0) {
		p = der;
		pk = d2i_PUBKEY(NULL, &p, len);
	}
	OPENSSL_free(der);
	return pk;
}

/* The key that checks the request's signature (see the top of the file).
 * Caller frees. NULL: the key cannot be decoded. */
static EVP_PKEY *request_key(X509_REQ *req)
{
	ASN1_OBJECT *oid;
	const unsigned char *bits;
	X509_ALGOR *alg;
	EVP_PKEY_CTX *kctx;
	EVP_PKEY *pk = NULL;
	int len, nid, curve, ptype;

	if (!X509_PUBKEY_get0_param(&oid, &bits, &len, &alg, X509_REQ_get_X509_PUBKEY(req)))
		return NULL;
	nid = OBJ_obj2nid(oid);
	curve = nid == NID_X9_62_id_ecPublicKey ? ec_curve(alg) : NID_undef;
	if (curve == NID_X9_62_prime256v1 || curve == NID_secp384r1) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)OBJ_nid2sn(curve), 0),
			OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)bits, (size_t)len),
			OSSL_PARAM_END
		};
		/* The import refuses a point that is not on the curve. */
		if ((kctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL &&
		    EVP_PKEY_fromdata_init(kctx) == 1)
			(void)EVP_PKEY_fromdata(kctx, &pk, EVP_PKEY_PUBLIC_KEY, params);
		EVP_PKEY_CTX_free(kctx);
		return pk;
	}
	X509_ALGOR_get0(NULL, &ptype, NULL, alg);
	/* RFC 8410 §3: an Ed25519 key has no parameters */
	if (nid == NID_ED25519 && ptype == V_ASN1_UNDEF)
		return EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, bits, (size_t)len);
	return ca_csr_pubkey(req);
}

/* The returned request from the decoded parts, its key undecoded. Caller
 * frees. NULL: out of memory, or key parameters of no known form. */
static X509_REQ *rebuild(const CSR_MSG *m)
{
	const CSR_INFO *in = m->info;
	X509_REQ *req = X509_REQ_new();
	ASN1_BIT_STRING *sig = NULL;

	if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, in->subject))
		goto fail;
	for (int i = 0; i < sk_X509_ATTRIBUTE_num(in->attributes); i++)
		if (!X509_REQ_add1_attr(req, sk_X509_ATTRIBUTE_value(in->attributes, i)))
			goto fail;
	if (ca_pubkey_set(X509_REQ_get_X509_PUBKEY(req), in->spki->algorithm,
			  ASN1_STRING_get0_data(in->spki->key), ASN1_STRING_length(in->spki->key)) != 0 ||
	    !X509_REQ_set1_signature_algo(req, m->sig_alg) ||
	    (sig = ASN1_STRING_dup(m->signature)) == NULL)
		goto fail;
	X509_REQ_set0_signature(req, sig);
	return req;
fail:
	X509_REQ_free(req);
	return NULL;
}

X509_REQ *ca_csr_decode(const unsigned char *der, size_t len, struct ca_err *err)
{
	const unsigned char *p = der;
	CSR_MSG *m = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *pk = NULL;
	long version;

	if (der == NULL || len == 0) {
		ca_err_set(err, CA_E_BAD_CSR, "empty certificate request");
		return NULL;
	}
	if (len > 64 * 1024) {
		ca_err_set(err, CA_E_BAD_CSR, "certificate request larger than 64 KiB");
		return NULL;
	}
	m = (CSR_MSG *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(CSR_MSG));
	if (m == NULL) {
		ca_err_ssl(err, CA_E_BAD_CSR, "RFC 2986: body is not a DER PKCS#10 request");
		return NULL;
	}
	if (p != der + len) {
		ca_err_set(err, CA_E_BAD_CSR, "RFC 2986: %zu trailing bytes after the request",
			   (size_t)(der + len - p));
		goto fail;
	}
	if ((version = ASN1_INTEGER_get(m->info->version)) != X509_REQ_VERSION_1) {
		ca_err_set(err, CA_E_BAD_CSR, "RFC 2986 §4.1: version must be 0 (v1), not %ld", version);
		goto fail;
	}
	if ((req = rebuild(m)) == NULL || (pk = request_key(req)) == NULL) {
		ca_err_ssl(err, CA_E_BAD_CSR, "request public key cannot be decoded");
		goto fail;
	}
	if (ASN1_item_verify_ex(ASN1_ITEM_rptr(CSR_INFO), m->sig_alg, m->signature, m->info, NULL,
				pk, NULL, NULL) != 1) {
		ERR_clear_error();
		ca_err_set(err, CA_E_BAD_SIGNATURE,
			   "RFC 2986 §3: request signature does not verify with its own key");
		goto fail;
	}
	EVP_PKEY_free(pk);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CSR_MSG));
	return req;
fail:
	EVP_PKEY_free(pk);
	X509_REQ_free(req);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CSR_MSG));
	return NULL;
}

int ca_csr_check_key(X509_REQ *req, const struct ca_profile *p, struct ca_err *err)
{
	X509_ALGOR *alg;
	EVP_PKEY *pk;
	const char *group;
	int bits, type, curve, ptype;

	if (!X509_PUBKEY_get0_param(NULL, NULL, NULL, &alg, X509_REQ_get_X509_PUBKEY(req))) {
		ca_err_set(err, CA_E_BAD_CSR, "request has no usable public key");
		return -1;
	}
	switch ((type = ca_csr_key_type(req))) {
	case EVP_PKEY_EC:
		/* RFC 5480 §2.1.1: namedCurve only; explicit parameters would be
		 * copied into the certificate as they are. */
		X509_ALGOR_get0(NULL, &ptype, NULL, alg);
		if (ptype != V_ASN1_OBJECT) {
			ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s': RFC 5480 §2.1.1: EC key must name its curve (no explicit parameters)", p->name);
			return -1;
		}
		if ((curve = ec_curve(alg)) == NID_undef)
			break;
		if (curve == NID_X9_62_prime256v1 && (p->key_types & CA_KEY_EC_P256))
			return 0;
		if (curve == NID_secp384r1 && (p->key_types & CA_KEY_EC_P384))
			return 0;
		group = OBJ_nid2sn(curve);
		ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s' does not allow EC key on curve %s",
			   p->name, group != NULL ? group : "?");
		return -1;
	case EVP_PKEY_RSA:
		/* The modulus size needs the key decoded: OpenSSL's decoder, the
		 * slow path, taken for RSA keys only. */
		if ((pk = ca_csr_pubkey(req)) == NULL) {
			ERR_clear_error();
			ca_err_set(err, CA_E_BAD_CSR, "request public key cannot be decoded");
			return -1;
		}
		bits = EVP_PKEY_get_bits(pk);
		EVP_PKEY_free(pk);
		if ((p->key_types & CA_KEY_RSA) && bits >= (int)p->rsa_min_bits &&
		    bits <= (int)p->rsa_max_bits)
			return 0;
		ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s' does not allow RSA-%d keys%s",
			   p->name, bits,
			   (p->key_types & CA_KEY_RSA) ? " (size out of bounds)" : "");
		return -1;
	case EVP_PKEY_ED25519:
		if (p->key_types & CA_KEY_ED25519)
			return 0;
		ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s' does not allow Ed25519 keys", p->name);
		return -1;
	default:
		break;
	}
	ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s' does not allow this key type (%s)",
		   p->name, type != NID_undef ? OBJ_nid2sn(type) : "unknown algorithm");
	return -1;
}
