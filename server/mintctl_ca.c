/* mintctl ca init / create / import: CA certificates whose keys are generated
 * inside a PKCS#11 token and never leave it, recorded in the store. The
 * server then issues from any of them listed in "issuing_cas". */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "mintca/log.h"
#include "mintctl.h"

struct ca_args {
	const char *cfg, *name, *parent, *subject, *key_label, *key_type, *cert;
	const char *module, *token, *pin_file;            /* the new CA's token */
	const char *p_module, *p_token, *p_pin_file, *p_key_label; /* the parent's */
	long days;
	int path_len;
	bool generate;
};

static const char init_usage[] =
	"usage: mintctl ca init -c CONFIG --name NAME --subject /CN=... --key-label LABEL\n"
	"                       [--generate [--key-type ec-p256|ec-p384|rsa-2048|rsa-3072|rsa-4096]]\n"
	"                       [--validity-days N] [--module M --token-label T --pin-file F]\n\n"
	"Creates a root CA: its key pair LABEL on the token (made there with --generate;\n"
	"never exported), a self-signed certificate, recorded in the store as NAME.\n"
	"The token defaults to the config's ca.signer token.\n";
static const char create_usage[] =
	"usage: mintctl ca create -c CONFIG --name NAME --parent PARENT --subject /CN=...\n"
	"                         --key-label LABEL [--generate [--key-type T]] [--validity-days N]\n"
	"                         [--path-len N] [--module M --token-label T --pin-file F]\n"
	"                         [--parent-key-label L --parent-module M --parent-token-label T\n"
	"                          --parent-pin-file F]\n\n"
	"Creates an intermediate or issuing CA signed by PARENT (a CA in the store) on\n"
	"the parent's token (default: the new CA's token; the parent's key label\n"
	"defaults to the one recorded with it). --path-len: how many CAs may follow\n"
	"below it (default 0: it issues end-entity certificates only).\n"
	"Rollover: create the successor under the same parent with a new key label,\n"
	"list it in \"issuing_cas\" with \"replaces\": [\"OLD\"], point the profiles at it.\n";
static const char import_usage[] =
	"usage: mintctl ca import -c CONFIG --name NAME --cert FILE --key-label LABEL\n"
	"                         [--parent PARENT] [--module M --token-label T --pin-file F]\n\n"
	"Records an existing CA certificate (PEM) whose key is already on the token as\n"
	"LABEL; the key must match the certificate, and PARENT (when given) must have\n"
	"signed it.\n";

static int parse(int argc, char **argv, struct ca_args *a, const char *usage)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "name", required_argument, NULL, 'n' },
		{ "parent", required_argument, NULL, 'P' }, { "subject", required_argument, NULL, 's' },
		{ "key-label", required_argument, NULL, 'k' }, { "key-type", required_argument, NULL, 't' },
		{ "cert", required_argument, NULL, 'C' }, { "module", required_argument, NULL, 'm' },
		{ "token-label", required_argument, NULL, 'T' }, { "pin-file", required_argument, NULL, 'f' },
		{ "parent-module", required_argument, NULL, 1 }, { "parent-token-label", required_argument, NULL, 2 },
		{ "parent-pin-file", required_argument, NULL, 3 }, { "parent-key-label", required_argument, NULL, 4 },
		{ "validity-days", required_argument, NULL, 'd' }, { "path-len", required_argument, NULL, 'L' },
		{ "generate", no_argument, NULL, 'g' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int o;
	char *end;

	a->days = 0;
	a->path_len = 0;
	a->key_type = "ec-p256";
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': a->cfg = optarg; break;
		case 'n': a->name = optarg; break;
		case 'P': a->parent = optarg; break;
		case 's': a->subject = optarg; break;
		case 'k': a->key_label = optarg; break;
		case 't': a->key_type = optarg; break;
		case 'C': a->cert = optarg; break;
		case 'm': a->module = optarg; break;
		case 'T': a->token = optarg; break;
		case 'f': a->pin_file = optarg; break;
		case 1: a->p_module = optarg; break;
		case 2: a->p_token = optarg; break;
		case 3: a->p_pin_file = optarg; break;
		case 4: a->p_key_label = optarg; break;
		case 'g': a->generate = true; break;
		case 'd':
			a->days = strtol(optarg, &end, 10);
			if (*end != '\0' || a->days < 1 || a->days > 36500) {
				fprintf(stderr, "mintctl ca: --validity-days must be 1-36500\n");
				return 2;
			}
			break;
		case 'L':
			a->path_len = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || a->path_len < 0 || a->path_len > 8) {
				fprintf(stderr, "mintctl ca: --path-len must be 0-8\n");
				return 2;
			}
			break;
		default:
			fputs(usage, o == 'h' ? stdout : stderr);
			return o == 'h' ? 0 : 2;
		}
	}
	if (a->cfg == NULL || a->name == NULL || a->key_label == NULL) {
		fputs(usage, stderr);
		return 2;
	}
	if (strlen(a->name) >= CA_NAME_MAX || strspn(a->name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(a->name)) {
		fprintf(stderr, "mintctl ca: --name must be 1-63 characters of a-z 0-9 - _ (it is an EST label)\n");
		return 2;
	}
	return -1;
}

/* Open (and with --generate first make) the key on the token. */
static sig_key *open_key(const char *module, const char *token, const char *pin_file,
			 const char *label, const char *gen_type, sig_p11 **p11)
{
	sec_str pin = { 0 };
	struct ca_err err = { 0 };
	sig_key *k = NULL;

	if (sec_read_file(&pin, pin_file) != 0) {
		fprintf(stderr, "mintctl ca: cannot read PIN file %s: %s\n", pin_file, strerror(errno));
		return NULL;
	}
	if (gen_type != NULL && sig_p11_generate(module, token, &pin, label, gen_type, &err) != 0)
		goto out;
	if (gen_type != NULL)
		fprintf(stderr, "generated %s key pair '%s' on token '%s'\n", gen_type, label, token);
	if ((*p11 = sig_p11_open(module, token, &pin, &err)) != NULL)
		k = sig_p11_key(*p11, label, &err);
out:
	sec_clear(&pin);
	if (k == NULL)
		fprintf(stderr, "mintctl ca: %s\n", err.detail);
	return k;
}

static X509 *load_from_store(db_store *st, const char *name, char *key_label, size_t klen)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	struct ca_err err = { 0 };
	char parent[CA_NAME_MAX];
	X509 *x = NULL;
	int r = db_ca_get_parent(st, name, &der, &len, parent, sizeof(parent), &err);

	if (r != 0) {
		if (r > 0)
			fprintf(stderr, "mintctl ca: no such CA '%s' in the store\n", name);
		else
			fprintf(stderr, "mintctl ca: %s\n", err.detail);
		return NULL;
	}
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	free(der);
	if (key_label != NULL && db_ca_key_label(st, name, key_label, klen, &err) != 0)
		key_label[0] = '\0';
	return x;
}

/* Store the new CA and print it. */
static int record(db_store *st, const struct ca_args *a, X509 *x)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der), rc = 1;
	struct ca_err err = { 0 };

	if (len <= 0 || db_ca_put(st, a->name, a->parent, a->key_label, der, (size_t)len, &err) != 0) {
		fprintf(stderr, "mintctl ca: cannot record CA '%s': %s\n", a->name, err.detail);
	} else {
		PEM_write_X509(stdout, x);
		fprintf(stderr, "CA '%s' recorded in the store%s%s\n", a->name,
			a->parent ? " under " : "", a->parent ? a->parent : "");
		rc = 0;
	}
	OPENSSL_free(der);
	return rc;
}

static int run(int argc, char **argv, const char *usage, int kind)
{
	struct ca_args a = { 0 };
	struct cfg *c = NULL;
	struct ca_err err = { 0 };
	db_store *st = NULL;
	sig_p11 *p11 = NULL, *pp11 = NULL;
	sig_key *key = NULL, *pkey = NULL;
	X509 *x = NULL, *parent = NULL;
	char plabel[CA_NAME_MAX + 64] = "";
	int rc = parse(argc, argv, &a, usage);

	if (rc >= 0)
		return rc;
	rc = 1;
	if ((kind != 2 && a.subject == NULL) || (kind == 1 && a.parent == NULL) || (kind == 2 && a.cert == NULL)) {
		fputs(usage, stderr);
		return 2;
	}
	log_set_level(LOG_WARN);
	if ((c = cfg_load(a.cfg, &err)) == NULL || (st = db_store_open(c->db_dsn, &err)) == NULL ||
	    db_migrate(st, &err) != 0) {
		fprintf(stderr, "mintctl ca: %s\n", err.detail);
		goto out;
	}
	a.module = a.module ? a.module : c->p11_module;
	a.token = a.token ? a.token : c->p11_token_label;
	a.pin_file = a.pin_file ? a.pin_file : c->p11_pin_file;
	if (a.module == NULL || a.token == NULL || a.pin_file == NULL) {
		fprintf(stderr, "mintctl ca: give --module, --token-label and --pin-file (the config's CA uses a file key)\n");
		goto out;
	}
	/* Refuse a taken name before anything is generated on the token. */
	{
		unsigned char *der = NULL;
		size_t len;
		int r = db_ca_get(st, a.name, &der, &len, &err);
		free(der);
		if (r != 1) {
			if (r == 0)
				fprintf(stderr, "mintctl ca: CA '%s' is already in the store: nothing generated\n", a.name);
			else
				fprintf(stderr, "mintctl ca: %s\n", err.detail);
			goto out;
		}
	}
	if (a.parent != NULL && (parent = load_from_store(st, a.parent, plabel, sizeof(plabel))) == NULL)
		goto out;
	if ((key = open_key(a.module, a.token, a.pin_file, a.key_label, a.generate ? a.key_type : NULL, &p11)) == NULL)
		goto out;
	if (kind == 0) {
		x = ca_make_root(key, a.subject, (long long)(a.days ? a.days : 7300) * 86400, &err);
	} else if (kind == 1) {
		const char *pl = a.p_key_label ? a.p_key_label : plabel;
		if (pl[0] == '\0') {
			fprintf(stderr, "mintctl ca: the store has no key label for '%s': give --parent-key-label\n", a.parent);
			goto out;
		}
		if ((pkey = open_key(a.p_module ? a.p_module : a.module, a.p_token ? a.p_token : a.token,
				     a.p_pin_file ? a.p_pin_file : a.pin_file, pl, NULL, &pp11)) == NULL)
			goto out;
		if (EVP_PKEY_eq(X509_get0_pubkey(parent), sig_pubkey(pkey)) != 1) {
			fprintf(stderr, "mintctl ca: key '%s' does not match CA '%s'\n", pl, a.parent);
			goto out;
		}
		x = ca_make_sub_ca(pkey, parent, sig_pubkey(key), a.subject,
				   (long long)(a.days ? a.days : 3650) * 86400, a.path_len, &err);
	} else {
		FILE *f = fopen(a.cert, "r");
		x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		if (f != NULL)
			fclose(f);
		if (x == NULL) {
			fprintf(stderr, "mintctl ca: %s: no PEM certificate\n", a.cert);
			goto out;
		}
		if (EVP_PKEY_eq(X509_get0_pubkey(x), sig_pubkey(key)) != 1) {
			fprintf(stderr, "mintctl ca: key '%s' on the token does not match %s\n", a.key_label, a.cert);
			goto out;
		}
		if (X509_check_ca(x) < 1) {
			fprintf(stderr, "mintctl ca: %s is not a CA certificate\n", a.cert);
			goto out;
		}
		if (parent != NULL && X509_verify(x, X509_get0_pubkey(parent)) != 1) {
			fprintf(stderr, "mintctl ca: %s was not signed by CA '%s'\n", a.cert, a.parent);
			goto out;
		}
	}
	if (x == NULL) {
		fprintf(stderr, "mintctl ca: %s\n", err.detail);
		goto out;
	}
	rc = record(st, &a, x);
out:
	X509_free(x);
	X509_free(parent);
	sig_close(key);
	sig_close(pkey);
	sig_p11_close(pp11);
	sig_p11_close(p11);
	db_store_close(st);
	cfg_free(c);
	return rc;
}

int ctl_ca_init(int argc, char **argv) { return run(argc, argv, init_usage, 0); }
int ctl_ca_create(int argc, char **argv) { return run(argc, argv, create_usage, 1); }
int ctl_ca_import(int argc, char **argv) { return run(argc, argv, import_usage, 2); }
