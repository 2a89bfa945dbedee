/* Step 5 of ca_issue: the last look at a to-be-signed certificate. Anything
 * that would make it violate RFC 5280 refuses the request before signing. */
#include <openssl/x509v3.h>
#include "ca_int.h"

/* Key usage bits that make no sense for the subject's key (RFC 5480 §3,
 * RFC 8410 §5, RFC 4055 §1.2) or for an end entity (keyCertSign). */
static int lint_key_usage(X509 *x, X509_REQ *csr, struct ca_err *err)
{
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
	int type = ca_csr_key_type(csr), rc = -1;
	static const struct { int bit; const char *name; } encipher[] = {
		{ 2, "keyEncipherment" }, { 3, "dataEncipherment" },
	};

	if (ku == NULL)
		return 0;
	if (ASN1_STRING_length(ku) == 0) {
		ca_err_set(err, CA_E_CONFIG, "lint: RFC 5280 §4.2.1.3: keyUsage with no bit set");
		goto out;
	}
	for (size_t i = 0; i < sizeof(encipher) / sizeof(encipher[0]); i++)
		if (type != EVP_PKEY_RSA && ASN1_BIT_STRING_get_bit(ku, encipher[i].bit)) {
			ca_err_set(err, CA_E_KEY_REFUSED, "lint: RFC 5480 §3 / RFC 8410 §5: %s is not possible with a %s key",
				   encipher[i].name, OBJ_nid2sn(type));
			goto out;
		}
	if (type == EVP_PKEY_RSA && ASN1_BIT_STRING_get_bit(ku, 4)) {
		ca_err_set(err, CA_E_KEY_REFUSED, "lint: keyAgreement is not possible with an RSA key");
		goto out;
	}
	if (type == EVP_PKEY_ED25519 && ASN1_BIT_STRING_get_bit(ku, 4)) {
		ca_err_set(err, CA_E_KEY_REFUSED, "lint: RFC 8410 §5: keyAgreement is not possible with an Ed25519 key");
		goto out;
	}
	if (ASN1_BIT_STRING_get_bit(ku, 5) || ASN1_BIT_STRING_get_bit(ku, 6)) {
		ca_err_set(err, CA_E_CONFIG, "lint: RFC 5280 §4.2.1.3: keyCertSign/cRLSign in an end-entity certificate");
		goto out;
	}
	rc = 0;
out:
	ASN1_BIT_STRING_free(ku);
	return rc;
}

int ca_lint(const ca_ctx *ctx, X509 *x, X509_REQ *csr, struct ca_err *err)
{
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
	int n = X509_get_ext_count(x), day, sec;

	if (X509_get_version(x) != X509_VERSION_3) {
		ca_err_set(err, CA_E_INTERNAL, "lint: RFC 5280 §4.1.2.1: version must be v3");
		return -1;
	}
	/* §4.1.2.2: positive, at most 20 octets. */
	if (ASN1_STRING_type(serial) != V_ASN1_INTEGER || ASN1_STRING_length(serial) > 20 ||
	    ASN1_STRING_length(serial) < 1) {
		ca_err_set(err, CA_E_INTERNAL, "lint: RFC 5280 §4.1.2.2: serial must be positive, at most 20 octets");
		return -1;
	}
	if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ctx->cert)) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "lint: RFC 5280 §4.1.2.4: issuer differs from the CA's subject");
		return -1;
	}
	if (!ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(x), X509_get0_notAfter(x)) ||
	    day < 0 || sec < 0 || (day == 0 && sec == 0)) {
		ca_err_set(err, CA_E_NAME_REFUSED, "lint: RFC 5280 §4.1.2.5: notAfter must be after notBefore");
		return -1;
	}
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ctx->cert)) > 0) {
		ca_err_set(err, CA_E_INTERNAL, "lint: validity ends after the issuing CA's");
		return -1;
	}
	/* §4.1.2.6: an empty subject needs a critical subjectAltName. */
	if (X509_NAME_entry_count(X509_get_subject_name(x)) == 0) {
		int i = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);
		if (i < 0 || !X509_EXTENSION_get_critical(X509_get_ext(x, i))) {
			ca_err_set(err, CA_E_NAME_REFUSED,
				   "RFC 5280 §4.1.2.6: empty subject needs a critical subjectAltName");
			return -1;
		}
	}
	if (lint_key_usage(x, csr, err) != 0)
		return -1;
	/* §4.2: an extension appears at most once. */
	for (int i = 0; i < n; i++) {
		const ASN1_OBJECT *oi = X509_EXTENSION_get_object(X509_get_ext(x, i));
		for (int j = i + 1; j < n; j++)
			if (OBJ_cmp(oi, X509_EXTENSION_get_object(X509_get_ext(x, j))) == 0) {
				ca_err_set(err, CA_E_INTERNAL, "lint: RFC 5280 §4.2: duplicate extension %s",
					   OBJ_nid2sn(OBJ_obj2nid(oi)));
				return -1;
			}
	}
	return 0;
}
