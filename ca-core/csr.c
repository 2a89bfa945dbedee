/* CSR intake: decode exactly one DER PKCS#10, verify its signature (proof of
 * possession) and check its key against the profile. */
#include <stdbool.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "mintca/ca.h"

X509_REQ *ca_csr_decode(const unsigned char *der, size_t len, struct ca_err *err)
{
	const unsigned char *p = der;
	X509_REQ *req;
	EVP_PKEY *pk;
	int v;

	if (der == NULL || len == 0) {
		ca_err_set(err, CA_E_BAD_CSR, "empty certificate request");
		return NULL;
	}
	if (len > 64 * 1024) {
		ca_err_set(err, CA_E_BAD_CSR, "certificate request larger than 64 KiB");
		return NULL;
	}
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL) {
		ca_err_ssl(err, CA_E_BAD_CSR, "RFC 2986: body is not a DER PKCS#10 request");
		return NULL;
	}
	if (p != der + len) {
		ca_err_set(err, CA_E_BAD_CSR, "RFC 2986: %zu trailing bytes after the request",
			   (size_t)(der + len - p));
		goto fail;
	}
	if (X509_REQ_get_version(req) != X509_REQ_VERSION_1) {
		ca_err_set(err, CA_E_BAD_CSR, "RFC 2986 §4.1: version must be 0 (v1), not %ld",
			   X509_REQ_get_version(req));
		goto fail;
	}
	if ((pk = X509_REQ_get0_pubkey(req)) == NULL) {
		ca_err_ssl(err, CA_E_BAD_CSR, "request public key cannot be decoded");
		goto fail;
	}
	v = X509_REQ_verify(req, pk);
	if (v != 1) {
		ERR_clear_error();
		ca_err_set(err, CA_E_BAD_SIGNATURE,
			   "RFC 2986 §3: request signature does not verify with its own key");
		goto fail;
	}
	return req;
fail:
	X509_REQ_free(req);
	return NULL;
}

static bool named_curve(X509_REQ *req)
{
	X509_ALGOR *alg;
	int ptype;

	if (!X509_PUBKEY_get0_param(NULL, NULL, NULL, &alg, X509_REQ_get_X509_PUBKEY(req)))
		return false;
	X509_ALGOR_get0(NULL, &ptype, NULL, alg);
	return ptype == V_ASN1_OBJECT;
}

int ca_csr_check_key(X509_REQ *req, const struct ca_profile *p, struct ca_err *err)
{
	EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
	char group[32] = "";
	int bits;

	if (pk == NULL) {
		ca_err_set(err, CA_E_BAD_CSR, "request has no usable public key");
		return -1;
	}
	bits = EVP_PKEY_get_bits(pk);
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		/* RFC 5480 §2.1.1: namedCurve only; explicit parameters would be
		 * copied into the certificate as they are. */
		if (!named_curve(req)) {
			ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s': RFC 5480 §2.1.1: EC key must name its curve (no explicit parameters)", p->name);
			return -1;
		}
		if (EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) != 1)
			break;
		if (strcmp(group, "prime256v1") == 0 && (p->key_types & CA_KEY_EC_P256))
			return 0;
		if (strcmp(group, "secp384r1") == 0 && (p->key_types & CA_KEY_EC_P384))
			return 0;
		ca_err_set(err, CA_E_KEY_REFUSED, "profile '%s' does not allow EC key on curve %s",
			   p->name, group);
		return -1;
	case EVP_PKEY_RSA:
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
		   p->name, OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
	return -1;
}
