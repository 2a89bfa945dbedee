/* Names: "/CN=a/O=b" parsing for CA subjects, and subject/SAN text for the
 * store and logs. */
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/x509v3.h>
#include "ca_int.h"

X509_NAME *ca_name_parse(const char *subject, struct ca_err *err)
{
	X509_NAME *n = X509_NAME_new();
	char *copy = strdup(subject), *save = NULL, *part;

	if (n == NULL || copy == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto fail;
	}
	if (subject[0] != '/') {
		ca_err_set(err, CA_E_CONFIG, "subject '%s' must look like /CN=name/O=org", subject);
		goto fail;
	}
	for (part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		char *eq = strchr(part, '=');
		if (eq == NULL || eq == part || eq[1] == '\0') {
			ca_err_set(err, CA_E_CONFIG, "subject '%s': '%s' is not TYPE=value", subject, part);
			goto fail;
		}
		*eq = '\0';
		if (!X509_NAME_add_entry_by_txt(n, part, MBSTRING_UTF8,
						(unsigned char *)eq + 1, -1, -1, 0)) {
			ca_err_ssl(err, CA_E_CONFIG, "subject '%s': bad attribute '%s'", subject, part);
			goto fail;
		}
	}
	if (X509_NAME_entry_count(n) == 0) {
		ca_err_set(err, CA_E_CONFIG, "subject '%s' is empty", subject);
		goto fail;
	}
	free(copy);
	return n;
fail:
	free(copy);
	X509_NAME_free(n);
	return NULL;
}

static char *bio_to_str(BIO *b)
{
	char *data, *s;
	long len = BIO_get_mem_data(b, &data);

	if (len < 0 || (s = malloc((size_t)len + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	return s;
}

int ca_text_subject(const X509_NAME *n, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rc = -1;

	if (b == NULL)
		return -1;
	/* RFC 2253 with non-ASCII kept as UTF-8 and control bytes escaped. */
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (*out = bio_to_str(b)) != NULL)
		rc = 0;
	BIO_free(b);
	return rc;
}

void ca_text_sans_free(char **sans, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(sans[i]);
	free(sans);
}

int ca_text_sans(const GENERAL_NAMES *gens, char ***out, size_t *n)
{
	int count = gens ? sk_GENERAL_NAME_num(gens) : 0;
	char **l = calloc((size_t)count + 1, sizeof(*l));

	*out = NULL;
	*n = 0;
	if (l == NULL)
		return -1;
	for (int i = 0; i < count; i++) {
		BIO *b = BIO_new(BIO_s_mem());
		if (b == NULL || !GENERAL_NAME_print(b, sk_GENERAL_NAME_value(gens, i)) ||
		    (l[i] = bio_to_str(b)) == NULL) {
			BIO_free(b);
			ca_text_sans_free(l, (size_t)i);
			return -1;
		}
		BIO_free(b);
	}
	*out = l;
	*n = (size_t)count;
	return 0;
}
