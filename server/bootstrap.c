/* Start-up of the CA: signers, root and issuing certificates (created on the
 * first start, under an advisory lock so several nodes may start together),
 * profiles, and the server's own TLS certificate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "mintca/log.h"
#include "srv_int.h"

#define BOOTSTRAP_LOCK 0x6d696e74L /* "mint" */

/* The CA certificate `name` from the store, or a new one from make(). */
static X509 *load_or_make(db_store *st, const char *name, const char *parent, const char *label,
			  sig_key *key, X509 *(*make)(void *), void *arg, struct ca_err *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509 *x = NULL;
	int r = db_ca_get(st, name, &der, &len, err);

	if (r < 0)
		return NULL;
	if (r == 0) {
		p = der;
		x = d2i_X509(NULL, &p, (long)len);
		free(der);
		if (x == NULL) {
			ca_err_ssl(err, CA_E_STORE, "CA certificate '%s' in the store is not DER", name);
			return NULL;
		}
	} else {
		if ((x = make(arg)) == NULL)
			return NULL;
		der = NULL;
		int l = i2d_X509(x, &der);
		if (l <= 0 || db_ca_put(st, name, parent, label, der, (size_t)l, err) != 0) {
			OPENSSL_free(der);
			X509_free(x);
			return NULL;
		}
		OPENSSL_free(der);
		log_kv(LOG_INFO, "ca.created", "ca", name, "parent", parent, "key", label, NULL);
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(x), sig_pubkey(key)) != 1) {
		ca_err_set(err, CA_E_CONFIG, "CA certificate '%s' in the store does not match key '%s'",
			   name, label);
		X509_free(x);
		return NULL;
	}
	return x;
}

struct make_args {
	const struct cfg *c;
	sig_key *root_key, *issuing_key;
	X509 *root;
	struct ca_err *err;
};

static X509 *make_root(void *a)
{
	struct make_args *m = a;

	return ca_make_root(m->root_key, m->c->root_subject,
			    (long long)m->c->root_validity_days * 86400, m->err);
}

static X509 *make_issuing(void *a)
{
	struct make_args *m = a;

	return ca_make_intermediate(m->root_key, m->root, sig_pubkey(m->issuing_key),
				    m->c->issuing_subject, (long long)m->c->issuing_validity_days * 86400,
				    m->err);
}

static int open_keys(const struct cfg *c, sig_p11 **p11, sig_key **root, sig_key **issuing,
		     struct ca_err *err)
{
	sec_str pin = { 0 };

	if (c->signer == CFG_SIGNER_FILE) {
		*root = sig_file_key(c->file_root_key, err);
		*issuing = *root ? sig_file_key(c->file_issuing_key, err) : NULL;
		return *issuing ? 0 : -1;
	}
	if (sec_read_file(&pin, c->p11_pin_file) != 0) {
		ca_err_set(err, CA_E_CONFIG, "ca.signer.pin_file: cannot read %s: %s", c->p11_pin_file,
			   strerror(errno));
		return -1;
	}
	*p11 = sig_p11_open(c->p11_module, c->p11_token_label, &pin, err);
	sec_clear(&pin);
	if (*p11 == NULL)
		return -1;
	*root = sig_p11_key(*p11, c->p11_root_key_label, err);
	*issuing = *root ? sig_p11_key(*p11, c->p11_issuing_key_label, err) : NULL;
	return *issuing ? 0 : -1;
}

ca_ctx *srv_open_ca(struct cfg *c, db_store *st, sig_p11 **p11, struct ca_err *err)
{
	sig_key *root_key = NULL, *issuing_key = NULL;
	X509 *root = NULL, *issuing = NULL;
	ca_ctx *ca = NULL;
	char root_name[CA_NAME_MAX + 8];
	struct make_args m = { .c = c, .err = err };
	struct ca_profile tls = {
		.name = SRV_TLS_PROFILE, .key_types = CA_KEY_EC_P256, .validity_seconds = 397LL * 86400,
		.backdate_seconds = 60, .eku = CA_EKU_SERVER_AUTH, .max_sans = 4,
		.operator_allowed = true, .internal = true,
	};
	bool locked = false;

	*p11 = NULL;
	if (open_keys(c, p11, &root_key, &issuing_key, err) != 0)
		goto fail;
	m.root_key = root_key;
	m.issuing_key = issuing_key;
	snprintf(root_name, sizeof(root_name), "%s-root", c->ca_name);
	if (db_lock(st, BOOTSTRAP_LOCK, err) != 0)
		goto fail;
	locked = true;
	if ((root = load_or_make(st, root_name, NULL,
				 c->signer == CFG_SIGNER_PKCS11 ? c->p11_root_key_label : "file",
				 root_key, make_root, &m, err)) == NULL)
		goto fail;
	m.root = root;
	if ((issuing = load_or_make(st, c->ca_name, root_name,
				    c->signer == CFG_SIGNER_PKCS11 ? c->p11_issuing_key_label : "file",
				    issuing_key, make_issuing, &m, err)) == NULL)
		goto fail;
	db_unlock(st, BOOTSTRAP_LOCK, NULL);
	locked = false;
	/* The root key signs nothing at run time: close it. */
	sig_close(root_key);
	root_key = NULL;
	if ((ca = ca_ctx_new(c->ca_name, issuing_key, issuing, root, st, err)) == NULL)
		goto fail;
	issuing_key = NULL;
	issuing = root = NULL;
	if (ca_ctx_add_profile(ca, &tls, err) != 0)
		goto fail;
	return ca;
fail:
	if (locked)
		db_unlock(st, BOOTSTRAP_LOCK, NULL);
	ca_ctx_free(ca);
	X509_free(root);
	X509_free(issuing);
	sig_close(root_key);
	sig_close(issuing_key);
	sig_p11_close(*p11);
	*p11 = NULL;
	return NULL;
}


/* True when path holds a certificate valid for 7 more days and the key file exists. */
static bool tls_files_fresh(const struct cfg *c)
{
	FILE *f = fopen(c->tls_cert_file, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	time_t soon = time(NULL) + 7 * 86400;
	bool ok = x != NULL && X509_cmp_time(X509_get0_notAfter(x), &soon) > 0 &&
		  access(c->tls_key_file, R_OK) == 0;

	X509_free(x);
	if (f != NULL)
		fclose(f);
	ERR_clear_error();
	return ok;
}

static X509_REQ *tls_csr(EVP_PKEY *key, const char *dns, struct ca_err *err)
{
	X509_REQ *r = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	X509_EXTENSION *ext = NULL;
	const char *names[] = { dns, "localhost" };
	size_t n = strcmp(dns, "localhost") == 0 ? 1 : 2;

	if (r == NULL || exts == NULL || gens == NULL)
		goto fail;
	if (!X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
					(const unsigned char *)dns, -1, -1, 0))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		if (g == NULL || s == NULL || !ASN1_STRING_set(s, names[i], -1)) {
			GENERAL_NAME_free(g);
			ASN1_IA5STRING_free(s);
			goto fail;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		if (!sk_GENERAL_NAME_push(gens, g)) {
			GENERAL_NAME_free(g);
			goto fail;
		}
	}
	if ((ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL ||
	    !sk_X509_EXTENSION_push(exts, ext))
		goto fail;
	ext = NULL;
	if (!X509_REQ_add_extensions(r, exts) || !X509_REQ_set_pubkey(r, key) ||
	    X509_REQ_sign(r, key, EVP_sha256()) <= 0)
		goto fail;
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	return r;
fail:
	ca_err_ssl(err, CA_E_INTERNAL, "cannot build the server's TLS certificate request");
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(r);
	return NULL;
}

/* Write via a temporary file and rename, so a crash never leaves half a file. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert, X509 *chain)
{
	char tmp[4096];
	int fd, ok;
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)) < 0)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
		 : PEM_write_X509(f, cert) && (chain == NULL || PEM_write_X509(f, chain));
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int srv_ensure_tls(const struct cfg *c, ca_ctx *ca, struct ca_err *err)
{
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	unsigned char *der = NULL;
	int len, rc = -1;
	struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "mintcad" };
	struct ca_issue_res res = { 0 };

	if (tls_files_fresh(c))
		return 0;
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot generate the server's TLS key");
		goto out;
	}
	if ((csr = tls_csr(key, c->public_name, err)) == NULL ||
	    (len = i2d_X509_REQ(csr, &der)) <= 0)
		goto out;
	struct ca_issue_req req = {
		.csr_der = der, .csr_len = (size_t)len, .profile = SRV_TLS_PROFILE,
		.who = &who, .protocol = "bootstrap",
	};
	if (ca_issue(ca, &req, &res, err) != 0)
		goto out;
	if (write_pem(c->tls_key_file, 0600, key, NULL, NULL) != 0 ||
	    write_pem(c->tls_cert_file, 0644, NULL, res.cert, ca_issuing_cert(ca)) != 0) {
		ca_err_set(err, CA_E_CONFIG, "cannot write %s / %s: %s", c->tls_cert_file,
			   c->tls_key_file, strerror(errno));
		goto out;
	}
	log_kv(LOG_INFO, "tls.issued", "serial", res.serial_hex, "name", c->public_name,
	       "cert_file", c->tls_cert_file, NULL);
	rc = 0;
out:
	ca_issue_res_free(&res);
	OPENSSL_free(der);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rc;
}
