/* Step 5 of ca_issue: the last look at a to-be-signed certificate. Anything
 * that would make it violate RFC 5280 refuses the request before signing. */
#include <openssl/x509v3.h>
#include "ca_int.h"

int ca_lint(const ca_ctx *ctx, X509 *x, struct ca_err *err)
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
