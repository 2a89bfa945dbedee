/* mintctl: the operator tool. Every certificate it issues goes through the
 * same ca_issue() path as EST. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include "mintca/cfg.h"
#include "mintca/db.h"
#include "mintca/log.h"
#include "mintca/secret.h"
#include "srv_int.h"
#include "mintctl.h"

#define PASSWD_DEFAULT_ITER 50000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mintctl COMMAND [options]   (mintctl COMMAND --help for more)\n"
		"\n"
		"  passwd     hash a password read from standard input, for \"users\" in the config\n"
		"  issue      issue a certificate from a CSR file through the normal issuance path\n"
		"  ca show    print the CA certificates (root, then issuing) as PEM\n"
		"  ca init    create a root CA, its key generated inside the token\n"
		"  ca create  create an intermediate or issuing CA under a CA in the store\n"
		"  ca import  record an existing CA certificate whose key is on a token\n"
		"  policy explain  show the policy decision for a CSR, rule by rule, issuing nothing\n"
		"  profile size    print the certificate a profile yields and its size in bytes\n"
		"  crl publish     publish CRLs now (every CA, or --ca NAME)\n"
		"  crl show        the latest stored CRL of a CA: number, dates, size; --out writes it\n"
		"  revoke     revoke certificates by serial, file of serials or query; release a hold\n"
		"  certs reserved  list serials reserved but never issued (e.g. cut off by a crash)\n");
}

static int cmd_passwd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iterations", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long iter = PASSWD_DEFAULT_ITER;
	char line[1025], *hash;
	size_t n;
	int o;

	while ((o = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
		if (o == 'i') {
			iter = strtoul(optarg, NULL, 10);
			if (iter < 10000 || iter > 10000000) {
				fprintf(stderr, "mintctl passwd: --iterations must be 10000..10000000\n");
				return 2;
			}
		} else {
			fprintf(o == 'h' ? stdout : stderr,
				"usage: mintctl passwd [--iterations N] < password-file\n\n"
				"Reads one password (first line) from standard input and prints its\n"
				"PBKDF2-SHA256 hash for the \"password_hash\" of a config user. The\n"
				"password itself is never printed. Default iterations: %d.\n",
				PASSWD_DEFAULT_ITER);
			return o == 'h' ? 0 : 2;
		}
	}
	if (fgets(line, sizeof(line), stdin) == NULL) {
		fprintf(stderr, "mintctl passwd: no password on standard input\n");
		return 1;
	}
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < 8) {
		OPENSSL_cleanse(line, sizeof(line));
		fprintf(stderr, "mintctl passwd: password shorter than 8 characters\n");
		return 1;
	}
	hash = sec_hash_password(line, (unsigned)iter);
	OPENSSL_cleanse(line, sizeof(line));
	if (hash == NULL) {
		fprintf(stderr, "mintctl passwd: hashing failed\n");
		return 1;
	}
	printf("%s\n", hash);
	free(hash);
	return 0;
}

/* Open config, store and CA for commands that need them. */
srv_cas *ctl_open_all(const char *path, struct cfg **c, db_store **st)
{
	struct ca_err err = { 0 };
	srv_cas *cas = NULL;

	log_set_level(LOG_WARN);
	if ((*c = cfg_load(path, &err)) == NULL || (*st = db_store_open((*c)->db_dsn, &err)) == NULL ||
	    db_migrate(*st, &err) != 0 || (cas = srv_cas_open(*c, *st, &err)) == NULL)
		fprintf(stderr, "mintctl: %s\n", err.detail);
	return cas;
}

ca_ctx *ctl_ca_of(const srv_cas *cas, const char *profile)
{
	ca_ctx *ca;
	const char *p;

	if (srv_cas_route(cas, profile, NULL, &ca, &p) != 0 || p == NULL || strcmp(p, profile) != 0) {
		fprintf(stderr, "mintctl: no profile named '%s'\n", profile);
		return NULL;
	}
	return ca;
}

void ctl_close_all(struct cfg *c, db_store *st, srv_cas *cas)
{
	srv_cas_free(cas);
	db_store_close(st);
	cfg_free(c);
}

unsigned char *ctl_read_csr(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	X509_REQ *r = NULL;
	unsigned char *der = NULL;
	int l;

	if (f == NULL)
		return NULL;
	r = PEM_read_X509_REQ(f, NULL, NULL, NULL);
	if (r == NULL) {
		rewind(f);
		r = d2i_X509_REQ_fp(f, NULL);
	}
	fclose(f);
	/* Re-encoding is fine here: ca_issue verifies the signature over it. */
	if (r == NULL || (l = i2d_X509_REQ(r, &der)) <= 0) {
		X509_REQ_free(r);
		return NULL;
	}
	X509_REQ_free(r);
	*len = (size_t)l;
	return der;
}

static int cmd_issue(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "profile", required_argument, NULL, 'p' },
		{ "csr", required_argument, NULL, 'r' }, { "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *cfgp = NULL, *profile = NULL, *csrp = NULL, *outp = NULL;
	struct cfg *c = NULL;
	db_store *st = NULL;
	srv_cas *cas = NULL;
	ca_ctx *ca;
	struct ca_err err = { 0 };
	struct ca_requester who = { .kind = CA_AUTH_OPERATOR };
	struct ca_issue_res res = { 0 };
	unsigned char *der;
	size_t len;
	int o, rc = 1;
	FILE *out;

	while ((o = getopt_long(argc, argv, "c:p:r:o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cfgp = optarg; break;
		case 'p': profile = optarg; break;
		case 'r': csrp = optarg; break;
		case 'o': outp = optarg; break;
		default:
			fprintf(o == 'h' ? stdout : stderr,
				"usage: mintctl issue -c CONFIG --profile NAME --csr FILE [--out FILE]\n\n"
				"Issues a certificate for the CSR (PEM or DER) under the profile, as the\n"
				"operator (the profile needs \"auth\": {\"operator\": true}). Prints the\n"
				"certificate as PEM, or writes it to --out.\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (cfgp == NULL || profile == NULL || csrp == NULL) {
		fprintf(stderr, "mintctl issue: -c, --profile and --csr are required (see --help)\n");
		return 2;
	}
	if ((der = ctl_read_csr(csrp, &len)) == NULL) {
		fprintf(stderr, "mintctl issue: %s: not a PEM or DER certificate request\n", csrp);
		return 1;
	}
	snprintf(who.id, sizeof(who.id), "%s", getenv("USER") ? getenv("USER") : "mintctl");
	if ((cas = ctl_open_all(cfgp, &c, &st)) == NULL || (ca = ctl_ca_of(cas, profile)) == NULL)
		goto out;
	struct ca_issue_req req = { .csr_der = der, .csr_len = len, .profile = profile, .who = &who, .protocol = "cli" };
	if (ca_issue(ca, &req, &res, &err) != 0) {
		fprintf(stderr, "mintctl issue: refused: %s: %s\n", ca_code_str(err.code), err.detail);
		goto out;
	}
	out = outp ? fopen(outp, "w") : stdout;
	if (out == NULL || !PEM_write_X509(out, res.cert)) {
		fprintf(stderr, "mintctl issue: cannot write %s: %s (serial %s is recorded)\n",
			outp ? outp : "stdout", strerror(errno), res.serial_hex);
	} else {
		fprintf(stderr, "issued serial %s\n", res.serial_hex);
		rc = 0;
	}
	if (out != NULL && out != stdout)
		fclose(out);
out:
	ca_issue_res_free(&res);
	OPENSSL_free(der);
	ctl_close_all(c, st, cas);
	return rc;
}

static int cmd_ca_show(int argc, char **argv)
{
	const char *cfgp = NULL;
	struct cfg *c = NULL;
	db_store *st = NULL;
	srv_cas *cas;
	int o;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		if (o == 'c') {
			cfgp = optarg;
		} else {
			fprintf(o == 'h' ? stdout : stderr,
				"usage: mintctl ca show -c CONFIG\n\n"
				"Prints the root and the issuing CA certificate as PEM (creating them\n"
				"first if this is the first start).\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (cfgp == NULL) {
		fprintf(stderr, "mintctl ca show: -c CONFIG is required\n");
		return 2;
	}
	if ((cas = ctl_open_all(cfgp, &c, &st)) == NULL) {
		ctl_close_all(c, st, cas);
		return 1;
	}
	/* Each CA's chain, root first; a certificate shared by chains once. */
	{
		X509 *shown[64];
		size_t n_shown = 0;
		for (size_t i = 0; i < srv_cas_count(cas); i++) {
			X509 *chain[8];
			size_t n = ca_chain(srv_cas_at(cas, i), chain, 8);
			if (i > 0)
				printf("# CA %s\n", ca_name(srv_cas_at(cas, i)));
			for (size_t k = n; k-- > 0;) {
				bool seen = false;
				for (size_t j = 0; j < n_shown && !seen; j++)
					seen = X509_cmp(shown[j], chain[k]) == 0;
				if (seen)
					continue;
				PEM_write_X509(stdout, chain[k]);
				if (n_shown < sizeof(shown) / sizeof(shown[0]))
					shown[n_shown++] = chain[k];
			}
		}
	}
	ctl_close_all(c, st, cas);
	return 0;
}

int ctl_certs(int argc, char **argv);

int ctl_crl(int argc, char **argv); /* server/mintctl_crl.c */

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "passwd") == 0)
		return cmd_passwd(argc - 1, argv + 1);
	if (strcmp(argv[1], "issue") == 0)
		return cmd_issue(argc - 1, argv + 1);
	if (strcmp(argv[1], "revoke") == 0)
		return ctl_revoke(argc - 1, argv + 1);
	if (strcmp(argv[1], "ca") == 0 && argc > 2 && strcmp(argv[2], "show") == 0)
		return cmd_ca_show(argc - 2, argv + 2);
	if (strcmp(argv[1], "ca") == 0 && argc > 2 && strcmp(argv[2], "init") == 0)
		return ctl_ca_init(argc - 2, argv + 2);
	if (strcmp(argv[1], "ca") == 0 && argc > 2 && strcmp(argv[2], "create") == 0)
		return ctl_ca_create(argc - 2, argv + 2);
	if (strcmp(argv[1], "ca") == 0 && argc > 2 && strcmp(argv[2], "import") == 0)
		return ctl_ca_import(argc - 2, argv + 2);
	if (strcmp(argv[1], "policy") == 0 && argc > 2 && strcmp(argv[2], "explain") == 0)
		return ctl_policy_explain(argc - 2, argv + 2);
	if (strcmp(argv[1], "profile") == 0 && argc > 2 && strcmp(argv[2], "size") == 0)
		return ctl_profile_size(argc - 2, argv + 2);
	if (strcmp(argv[1], "crl") == 0)
		return ctl_crl(argc - 1, argv + 1);
	if (strcmp(argv[1], "certs") == 0)
		return ctl_certs(argc - 1, argv + 1); /* server/mintctl_certs.c */
	fprintf(stderr, "mintctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
