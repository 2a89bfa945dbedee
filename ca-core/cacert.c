/* CA certificates (root and intermediate, made on first start or by mintctl)
 * and the extension helpers shared with end-entity issuance. */
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "ca_int.h"

int ca_add_ext(X509 *x, int nid, int crit, void *value, struct ca_err *err)
{
	if (X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_REPLACE) != 1) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot add extension %s", OBJ_nid2sn(nid));
		return -1;
	}
	return 0;
}

/* RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
ASN1_OCTET_STRING *ca_key_id(X509_PUBKEY *pub)
{
	const unsigned char *bits;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	int len;
	ASN1_OCTET_STRING *id;

	if (!X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, pub) ||
	    !EVP_Digest(bits, (size_t)len, md, &mdlen, EVP_sha1(), NULL) ||
	    (id = ASN1_OCTET_STRING_new()) == NULL)
		return NULL;
	if (!ASN1_OCTET_STRING_set(id, md, (int)mdlen)) {
		ASN1_OCTET_STRING_free(id);
		return NULL;
	}
	return id;
}

int ca_add_akid(X509 *x, X509 *issuer, struct ca_err *err)
{
	const ASN1_OCTET_STRING *ikid = X509_get0_subject_key_id(issuer);
	AUTHORITY_KEYID *akid;
	int rc = -1;

	if (ikid == NULL) {
		ca_err_set(err, CA_E_CONFIG, "issuing CA certificate has no subjectKeyIdentifier");
		return -1;
	}
	if ((akid = AUTHORITY_KEYID_new()) != NULL && (akid->keyid = ASN1_OCTET_STRING_dup(ikid)) != NULL)
		rc = ca_add_ext(x, NID_authority_key_identifier, 0, akid, err);
	else
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
	AUTHORITY_KEYID_free(akid);
	return rc;
}

int ca_add_key_ids(X509 *x, X509 *issuer, struct ca_err *err)
{
	ASN1_OCTET_STRING *skid = ca_key_id(X509_get_X509_PUBKEY(x));
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	const ASN1_OCTET_STRING *ikid = issuer ? X509_get0_subject_key_id(issuer) : NULL;
	int rc = -1;

	if (skid == NULL || akid == NULL) {
		ca_err_ssl(err, CA_E_INTERNAL, "key identifier");
		goto out;
	}
	if (ca_add_ext(x, NID_subject_key_identifier, 0, skid, err) != 0)
		goto out;
	/* A self-signed root's AKID would repeat its SKID: left out (§4.2.1.1). */
	if (issuer != NULL) {
		if (ikid == NULL) {
			ca_err_set(err, CA_E_CONFIG, "issuing CA certificate has no subjectKeyIdentifier");
			goto out;
		}
		if ((akid->keyid = ASN1_OCTET_STRING_dup(ikid)) == NULL ||
		    ca_add_ext(x, NID_authority_key_identifier, 0, akid, err) != 0)
			goto out;
	}
	rc = 0;
out:
	ASN1_OCTET_STRING_free(skid);
	AUTHORITY_KEYID_free(akid);
	return rc;
}

static int add_ca_exts(X509 *x, int pathlen, struct ca_err *err)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	int rc = -1;

	if (bc == NULL || ku == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto out;
	}
	bc->ca = 0xff;
	if (pathlen >= 0 && ((bc->pathlen = ASN1_INTEGER_new()) == NULL ||
			     !ASN1_INTEGER_set(bc->pathlen, pathlen))) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto out;
	}
	/* digitalSignature (0), keyCertSign (5), cRLSign (6). */
	if (!ASN1_BIT_STRING_set_bit(ku, 0, 1) || !ASN1_BIT_STRING_set_bit(ku, 5, 1) ||
	    !ASN1_BIT_STRING_set_bit(ku, 6, 1)) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto out;
	}
	if (ca_add_ext(x, NID_basic_constraints, 1, bc, err) != 0 ||
	    ca_add_ext(x, NID_key_usage, 1, ku, err) != 0)
		goto out;
	rc = 0;
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	return rc;
}

/* A CA certificate for pub, subject, signed by signer (issuer NULL: self). */
static X509 *make_ca(sig_key *signer, X509 *issuer, EVP_PKEY *pub,
		     const char *subject, long long validity, int pathlen,
		     struct ca_err *err)
{
	X509 *x = X509_new();
	X509_NAME *name = ca_name_parse(subject, err);
	ASN1_INTEGER *serial = NULL;
	unsigned char b[16];
	BIGNUM *bn = NULL;

	if (x == NULL || name == NULL)
		goto fail;
	if (RAND_bytes(b, sizeof(b)) != 1)
		goto ssl_fail;
	b[0] = (b[0] & 0x7f) | 0x01;
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL)
		goto ssl_fail;
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_serialNumber(x, serial) ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
	    !X509_set_pubkey(x, pub) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)(validity / 86400),
			     (long)(validity % 86400), NULL) == NULL)
		goto ssl_fail;
	if (add_ca_exts(x, pathlen, err) != 0 || ca_add_key_ids(x, issuer, err) != 0)
		goto fail;
	if (sig_sign_x509(signer, x, err) != 0)
		goto fail;
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	return x;
ssl_fail:
	ca_err_ssl(err, CA_E_INTERNAL, "cannot build CA certificate for %s", subject);
fail:
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

X509 *ca_make_root(sig_key *key, const char *subject, long long validity_seconds,
		   struct ca_err *err)
{
	return make_ca(key, NULL, sig_pubkey(key), subject, validity_seconds, -1, err);
}

X509 *ca_make_intermediate(sig_key *parent_key, X509 *parent_cert, EVP_PKEY *child_pub,
			   const char *subject, long long validity_seconds,
			   struct ca_err *err)
{
	return make_ca(parent_key, parent_cert, child_pub, subject, validity_seconds, 0, err);
}

X509 *ca_make_sub_ca(sig_key *parent_key, X509 *parent_cert, EVP_PKEY *child_pub,
		     const char *subject, long long validity_seconds, int path_len,
		     struct ca_err *err)
{
	return make_ca(parent_key, parent_cert, child_pub, subject, validity_seconds, path_len, err);
}
