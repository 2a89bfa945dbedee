/* mintctl policy explain / profile size: the policy engine's decision, rule
 * by rule, and the size of what a profile yields. Neither issues anything:
 * explain stops before signing; size signs with a throwaway software key
 * standing in for the CA, and the result is never a valid certificate. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "mintca/log.h"
#include "mintca/pol.h"
#include "mintctl.h"

struct args {
	const char *cfg, *profile, *cred, *csr;
};

static int parse(int argc, char **argv, struct args *a, const char *usage)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "profile", required_argument, NULL, 'p' },
		{ "credential", required_argument, NULL, 'u' }, { "csr", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "c:p:u:r:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': a->cfg = optarg; break;
		case 'p': a->profile = optarg; break;
		case 'u': a->cred = optarg; break;
		case 'r': a->csr = optarg; break;
		default:
			fputs(usage, o == 'h' ? stdout : stderr);
			return o == 'h' ? 0 : 2;
		}
	}
	return -1;
}

static const char explain_usage[] =
	"usage: mintctl policy explain -c CONFIG --profile NAME --credential CRED --csr FILE\n\n"
	"Runs the policy engine on the CSR (PEM or DER) as credential CRED would ask\n"
	"for it under the profile, and prints every rule it consulted and the\n"
	"decision. Nothing is issued, nothing is counted against rate limits.\n"
	"CRED: basic:<user>, cert:<anchor name> or operator.\n"
	"Exit status: 0 allowed, 1 denied, 2 usage error.\n";

int ctl_policy_explain(int argc, char **argv)
{
	struct args a = { 0 };
	struct cfg *c = NULL;
	db_store *st = NULL;
	srv_cas *cas = NULL;
	ca_ctx *ca = NULL;
	struct ca_requester who;
	struct pol_trace t = { 0 };
	struct pol_decision d = { 0 };
	struct ca_err err = { 0 };
	const struct ca_profile *p;
	unsigned char *der = NULL;
	size_t len = 0;
	X509_REQ *req = NULL;
	int rc = parse(argc, argv, &a, explain_usage);

	if (rc >= 0)
		return rc;
	rc = 2;
	if (a.cfg == NULL || a.profile == NULL || a.cred == NULL || a.csr == NULL) {
		fputs(explain_usage, stderr);
		return 2;
	}
	if (ca_requester_parse(a.cred, &who) != 0) {
		fprintf(stderr, "mintctl policy explain: credential '%s' is not basic:<user>, cert:<anchor> or operator\n", a.cred);
		return 2;
	}
	if ((der = ctl_read_csr(a.csr, &len)) == NULL) {
		fprintf(stderr, "mintctl policy explain: %s: not a PEM or DER certificate request\n", a.csr);
		return 2;
	}
	if ((cas = ctl_open_all(a.cfg, &c, &st)) == NULL)
		goto out;
	rc = 1;
	printf("profile %s, credential %s, CSR %s\n", a.profile, a.cred, a.csr);
	if ((ca = ctl_ca_of(cas, a.profile)) == NULL || (p = ca_profile_find(ca, a.profile)) == NULL) {
		printf("DENY  no profile named '%s'\n", a.profile);
		goto out;
	}
	printf("info  issuing CA: %s\n", ca_name(ca));
	if (pol_authorize(ca, p, &who, NULL, &t, &err) == 0) {
		if ((req = ca_csr_decode(der, len, &err)) == NULL)
			printf("DENY  %s\n", err.detail);
		else if (pol_check(ca, p, &who, req, NULL, &d, &t, &err) == 0)
			rc = 0;
	}
	fputs(t.text ? t.text : "", stdout);
	if (rc == 0) {
		printf("certificate would have:\n  subject: ");
		X509_NAME_print_ex_fp(stdout, d.subject, 0, XN_FLAG_RFC2253);
		printf("\n  validity: %lld s\n", p->validity_seconds);
	}
out:
	pol_decision_free(&d);
	pol_trace_free(&t);
	X509_REQ_free(req);
	OPENSSL_free(der);
	ctl_close_all(c, st, cas);
	return rc;
}

static const char size_usage[] =
	"usage: mintctl profile size -c CONFIG --profile NAME [--csr FILE]\n\n"
	"Prints the certificate the profile yields for the CSR (default: a P-256 key,\n"
	"CN of 16 hex characters, one 32-character dNSName) and its DER size. The\n"
	"certificate is signed by a throwaway software key with the name and key type\n"
	"of the profile's CA (read from the store), so it is the real size but never\n"
	"a valid certificate; the HSM is not touched and nothing is written.\n";

/* The default device CSR: P-256, CN of 16 hex, one 32-character DNS name. */
static unsigned char *sample_csr(size_t *len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *e = NULL;
	unsigned char *der = NULL;
	int l = -1;

	if (k == NULL || r == NULL || exts == NULL)
		goto out;
	if (!X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_ASC,
					(const unsigned char *)"0123456789abcdef", -1, -1, 0) ||
	    (e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
				      "DNS:0123456789abcdef.dev.example.com")) == NULL ||
	    !sk_X509_EXTENSION_push(exts, e))
		goto out;
	e = NULL;
	if (X509_REQ_add_extensions(r, exts) && X509_REQ_set_pubkey(r, k) &&
	    X509_REQ_sign(r, k, EVP_sha256()) > 0)
		l = i2d_X509_REQ(r, &der);
out:
	X509_EXTENSION_free(e);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
	*len = l > 0 ? (size_t)l : 0;
	return l > 0 ? der : NULL;
}

/* A software key like the CA's: same algorithm and size. */
static EVP_PKEY *like(EVP_PKEY *ca)
{
	char group[32];

	switch (EVP_PKEY_get_base_id(ca)) {
	case EVP_PKEY_EC:
		return EVP_PKEY_get_group_name(ca, group, sizeof(group), NULL) == 1 ? EVP_EC_gen(group) : NULL;
	case EVP_PKEY_RSA:
		return EVP_RSA_gen((unsigned)EVP_PKEY_get_bits(ca));
	default:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
}

int ctl_profile_size(int argc, char **argv)
{
	struct args a = { 0 };
	struct cfg *c = NULL;
	struct ca_err err = { 0 };
	struct ca_issue_res res = { 0 };
	struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "size" };
	struct ca_profile *p = NULL;
	ca_ctx *ca = NULL;
	sig_key *key = NULL;
	X509 *fake = NULL, *real = NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	int rc = parse(argc, argv, &a, size_usage);

	if (rc >= 0)
		return rc;
	rc = 1;
	if (a.cfg == NULL || a.profile == NULL) {
		fputs(size_usage, stderr);
		return 2;
	}
	log_set_level(LOG_ERROR);
	if ((c = cfg_load(a.cfg, &err)) == NULL) {
		fprintf(stderr, "mintctl profile size: %s\n", err.detail);
		return 1;
	}
	for (size_t i = 0; i < c->n_profiles; i++)
		if (strcmp(c->profiles[i].name, a.profile) == 0)
			p = &c->profiles[i];
	if (p == NULL) {
		fprintf(stderr, "mintctl profile size: no profile named '%s'\n", a.profile);
		goto out;
	}
	/* The profile's CA from the store; before the first start the default
	 * CA is not there yet and its configured subject stands in. */
	{
		db_store *st = db_store_open(c->db_dsn, &err);
		unsigned char *cder = NULL;
		size_t clen = 0;
		if (st != NULL && db_ca_get(st, p->ca[0] ? p->ca : c->ca_name, &cder, &clen, &err) == 0) {
			const unsigned char *q = cder;
			real = d2i_X509(NULL, &q, (long)clen);
		}
		free(cder);
		db_store_close(st);
		ca_err_clear(&err);
		if (real == NULL && p->ca[0] != '\0' && strcmp(p->ca, c->ca_name) != 0) {
			fprintf(stderr, "mintctl profile size: CA '%s' is not in the store\n", p->ca);
			goto out;
		}
	}
	{
		EVP_PKEY *k = real ? like(X509_get0_pubkey(real)) : EVP_EC_gen("P-256");
		if (k == NULL || (key = sig_mem_key(k)) == NULL)
			goto out;
	}
	if (real != NULL) {
		/* Same issuer name and key identifier length as the real CA. */
		X509_NAME_print_ex_fp(stdout, X509_get_subject_name(real), 0, XN_FLAG_RFC2253);
		printf("  (issuing CA)\n");
	}
	if ((fake = ca_make_root(key, c->issuing_subject, 86400LL * 36500, &err)) == NULL)
		goto fail;
	if (real != NULL && !X509_set_subject_name(fake, X509_get_subject_name(real)))
		goto fail;
	if ((ca = ca_ctx_new(p->ca[0] ? p->ca : c->ca_name, key, fake, NULL, NULL, &err)) == NULL)
		goto fail;
	key = NULL;
	fake = NULL;
	/* The profile moves into the throwaway context: the operator may use it there. */
	p->operator_allowed = true;
	if (ca_ctx_add_profile(ca, p, &err) != 0)
		goto fail;
	der = a.csr ? ctl_read_csr(a.csr, &len) : sample_csr(&len);
	if (der == NULL) {
		fprintf(stderr, "mintctl profile size: cannot read or make the CSR\n");
		goto out;
	}
	struct ca_issue_req req = { .csr_der = der, .csr_len = len, .profile = a.profile, .who = &who, .protocol = "size" };
	if (ca_issue(ca, &req, &res, &err) != 0)
		goto fail;
	X509_print_ex_fp(stdout, res.cert, XN_FLAG_RFC2253, X509_FLAG_NO_PUBKEY | X509_FLAG_NO_SIGDUMP);
	printf("profile %s: %zu bytes of DER\n", a.profile, res.der_len);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "mintctl profile size: %s\n", err.detail);
out:
	ca_issue_res_free(&res);
	OPENSSL_free(der);
	ca_ctx_free(ca);
	sig_close(key);
	X509_free(fake);
	X509_free(real);
	cfg_free(c);
	return rc;
}
