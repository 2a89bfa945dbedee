/* mintctl crl publish / show: publish CRLs now through the same
 * crl_publish() the server's schedule uses, and look at the stored ones. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "mintca/crl.h"
#include "mintctl.h"

int ctl_crl(int argc, char **argv);

static const char publish_usage[] =
	"usage: mintctl crl publish [-c CONFIG] [--ca NAME] [--shard K] [--delta]\n\n"
	"Publishes CRLs now, whatever their age: for each CA of the config (or NAME),\n"
	"its complete CRL and, with revocation.crl_shards N, its N shard CRLs (or\n"
	"shard K only: 0 is the complete CRL); --delta publishes their delta CRLs\n"
	"instead (revocation.delta_crl_period must be set). Prints per CRL its number,\n"
	"entries, size and time. The config comes from -c or $MINTCA_CONFIG.\n";
static const char show_usage[] =
	"usage: mintctl crl show [-c CONFIG] --ca NAME [--shard K] [--delta] [--out FILE] [--der]\n\n"
	"Prints the number, dates and size of the latest stored CRL of the CA (shard\n"
	"K, or its delta) and writes the CRL to FILE (PEM, or DER with --der).\n";

struct crl_args {
	const char *cfg, *ca, *out;
	long shard;   /* -1: every shard */
	bool delta, der;
};

static int parse(int argc, char **argv, struct crl_args *a, const char *usage)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "ca", required_argument, NULL, 'a' },
		{ "shard", required_argument, NULL, 's' }, { "delta", no_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'o' }, { "der", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	char *end;
	int o;

	a->shard = -1;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': a->cfg = optarg; break;
		case 'a': a->ca = optarg; break;
		case 'd': a->delta = true; break;
		case 'o': a->out = optarg; break;
		case 'D': a->der = true; break;
		case 's':
			a->shard = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || a->shard < 0 || a->shard > 65536) {
				fprintf(stderr, "mintctl crl: --shard must be 0..65536\n");
				return 2;
			}
			break;
		default:
			fputs(usage, o == 'h' ? stdout : stderr);
			return o == 'h' ? 0 : 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (a->cfg == NULL)
		a->cfg = getenv("MINTCA_CONFIG");
	if (a->cfg == NULL) {
		fprintf(stderr, "mintctl crl: -c CONFIG (or $MINTCA_CONFIG) is required\n");
		return 2;
	}
	return -1;
}

static void time_text(time_t t, char out[32])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", (long long)t);
}

static int publish_scope(ca_ctx *ca, const struct cfg *c, unsigned shard, bool delta)
{
	struct crl_scope scope = { .shard = shard, .delta = delta };
	struct crl_result res;
	struct ca_err err = { 0 };
	char tu[32], nu[32];

	if (crl_publish(ca, c, &scope, 0, &res, &err) != 0) {
		fprintf(stderr, "mintctl crl publish: CA %s shard %u%s: %s: %s\n", ca_name(ca), shard,
			delta ? " delta" : "", ca_code_str(err.code), err.detail);
		return 1;
	}
	if (!res.published) {
		printf("ca %s shard %u delta: no complete CRL yet, nothing to apply a delta to\n", ca_name(ca), shard);
		return 0;
	}
	time_text(res.this_update, tu);
	time_text(res.next_update, nu);
	printf("ca %s shard %u number %lld%s", ca_name(ca), shard, res.number, delta ? " delta_of " : "");
	if (delta)
		printf("%lld", res.delta_of);
	printf(" entries %zu bytes %zu this_update %s next_update %s\n", res.entries, res.der_len, tu, nu);
	printf("  time %.3f s (lock %.3f, read+encode %.3f, sign %.3f, store %.3f)\n", res.total_s,
	       res.lock_s, res.read_s, res.sign_s, res.store_s);
	return 0;
}

static int cmd_publish(int argc, char **argv)
{
	struct crl_args a = { 0 };
	struct cfg *c = NULL;
	db_store *st = NULL;
	srv_cas *cas = NULL;
	int rc = parse(argc, argv, &a, publish_usage), failed = 0;
	size_t n_done = 0;

	if (rc >= 0)
		return rc;
	rc = 1;
	if ((cas = ctl_open_all(a.cfg, &c, &st)) == NULL)
		goto out;
	if (a.delta && c->delta_crl_period_s == 0) {
		fprintf(stderr, "mintctl crl publish: delta CRLs are off (revocation.delta_crl_period)\n");
		goto out;
	}
	if (a.shard > (long)c->crl_shards) {
		fprintf(stderr, "mintctl crl publish: the config has %u shards\n", c->crl_shards);
		goto out;
	}
	if (a.ca != NULL && srv_cas_find(cas, a.ca) == NULL) {
		fprintf(stderr, "mintctl crl publish: no CA named '%s' in %s\n", a.ca, a.cfg);
		goto out;
	}
	for (size_t i = 0; i < srv_cas_count(cas); i++) {
		ca_ctx *ca = srv_cas_at(cas, i);
		if (a.ca != NULL && strcmp(a.ca, ca_name(ca)) != 0)
			continue;
		for (unsigned k = 0; k <= c->crl_shards; k++) {
			if (a.shard >= 0 && (long)k != a.shard)
				continue;
			failed |= publish_scope(ca, c, k, a.delta);
			n_done++;
		}
	}
	rc = failed || n_done == 0;
out:
	ctl_close_all(c, st, cas);
	return rc;
}

static int cmd_show(int argc, char **argv)
{
	struct crl_args a = { 0 };
	struct cfg *c = NULL;
	db_store *st = NULL;
	struct db_crl_meta m;
	struct ca_err err = { 0 };
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_CRL *crl = NULL;
	FILE *f = NULL;
	char tu[32], nu[32];
	unsigned shard;
	int rc = parse(argc, argv, &a, show_usage), r;

	if (rc >= 0)
		return rc;
	rc = 1;
	if (a.ca == NULL) {
		fputs(show_usage, stderr);
		return 2;
	}
	shard = a.shard < 0 ? 0 : (unsigned)a.shard;
	if ((c = cfg_load(a.cfg, &err)) == NULL || (st = db_store_open(c->db_dsn, &err)) == NULL) {
		fprintf(stderr, "mintctl crl show: %s\n", err.detail);
		goto out;
	}
	if ((r = db_crl_latest(st, a.ca, shard, a.delta, &m, &err)) != 0) {
		if (r > 0)
			fprintf(stderr, "mintctl crl show: no CRL stored for CA '%s' shard %u%s\n", a.ca, shard,
				a.delta ? " (delta)" : "");
		else
			fprintf(stderr, "mintctl crl show: %s\n", err.detail);
		goto out;
	}
	time_text(m.this_update, tu);
	time_text(m.next_update, nu);
	printf("ca %s shard %u number %lld", a.ca, shard, m.number);
	if (m.delta_of > 0)
		printf(" delta_of %lld", m.delta_of);
	printf(" entries %lld bytes %zu this_update %s next_update %s\n", m.entries, m.der_len, tu, nu);
	if (a.out == NULL) {
		rc = 0;
		goto out;
	}
	if (db_crl_der(st, a.ca, m.number, &der, &len, &err) != 0) {
		fprintf(stderr, "mintctl crl show: %s\n", err.detail[0] ? err.detail : "CRL gone meanwhile");
		goto out;
	}
	p = der;
	if ((f = fopen(a.out, "w")) == NULL ||
	    (a.der ? fwrite(der, 1, len, f) != len
		   : ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL || !PEM_write_X509_CRL(f, crl)))) {
		fprintf(stderr, "mintctl crl show: cannot write %s\n", a.out);
		goto out;
	}
	rc = 0;
out:
	if (f != NULL && fclose(f) != 0 && rc == 0) {
		fprintf(stderr, "mintctl crl show: cannot write %s\n", a.out);
		rc = 1;
	}
	X509_CRL_free(crl);
	free(der);
	db_store_close(st);
	cfg_free(c);
	return rc;
}

/* mintctl crl SUBCOMMAND ... (argv[0] is "crl") */
int ctl_crl(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "publish") == 0)
		return cmd_publish(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return cmd_show(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(publish_usage, stdout);
		fputs("\n", stdout);
		fputs(show_usage, stdout);
		return 0;
	}
	fputs(publish_usage, stderr);
	fputs("\n", stderr);
	fputs(show_usage, stderr);
	return 2;
}
