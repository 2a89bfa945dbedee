/* mintcad: the CA server. Loads the config, migrates the store, opens the CA
 * (creating it on first start), issues its own TLS certificate if needed and
 * serves until SIGTERM/SIGINT, then lets requests in flight finish. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mintca/cfg.h"
#include "mintca/db.h"
#include "mintca/log.h"
#include "http.h"
#include "srv_int.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mintcad -c CONFIG [--check-config]\n"
		"\n"
		"The mintca certificate authority server (EST, RFC 7030).\n"
		"\n"
		"  -c, --config FILE   the JSON configuration (keys: see README.md)\n"
		"      --check-config  validate the configuration, print the verdict and exit\n"
		"  -h, --help          this text\n"
		"\n"
		"Logs are JSON lines on standard error. SIGTERM or SIGINT stop the server\n"
		"after the requests in flight are answered.\n");
}

static int fatal(const char *what, const struct ca_err *err)
{
	log_kv(LOG_ERROR, what, "code", ca_code_str(err->code), "detail", err->detail, NULL);
	fprintf(stderr, "mintcad: %s\n", err->detail);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool check = false;
	struct ca_err err = { 0 };
	struct cfg *c = NULL;
	db_store *st = NULL;
	sig_p11 *p11 = NULL;
	ca_ctx *ca = NULL;
	srv_trust *trust = NULL;
	srv_http *http = NULL;
	sigset_t sigs;
	int o, sig, rc = 1;
	char port[8];

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'k': check = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((c = cfg_load(path, &err)) == NULL)
		return fatal("config.invalid", &err);
	log_set_level_name(c->log_level);
	if (check) {
		printf("%s: configuration is valid\n", path);
		cfg_free(c);
		return 0;
	}
	/* Signals are taken by sigwait() below, never by a worker thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((st = db_store_open(c->db_dsn, &err)) == NULL || db_migrate(st, &err) != 0) {
		rc = fatal("db.unavailable", &err);
		goto out;
	}
	if ((ca = srv_open_ca(c, st, &p11, &err)) == NULL) {
		rc = fatal("ca.unavailable", &err);
		goto out;
	}
	if (c->signer == CFG_SIGNER_FILE)
		log_kv(LOG_WARN, "ca.unsafe", "why", "CA keys are in files: development only, never production", NULL);
	if (srv_ensure_tls(c, ca, &err) != 0 || (trust = srv_trust_new(c, ca, &err)) == NULL ||
	    (http = srv_http_start(c, ca, trust, &err)) == NULL) {
		rc = fatal("server.start_failed", &err);
		goto out;
	}
	snprintf(port, sizeof(port), "%u", c->port);
	log_kv(LOG_INFO, "server.ready", "listen", c->listen, "port", port, "ca", c->ca_name,
	       "signer", c->signer == CFG_SIGNER_PKCS11 ? "pkcs11" : "file", NULL);
	if (sigwait(&sigs, &sig) == 0)
		log_kv(LOG_INFO, "server.stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	rc = 0;
out:
	srv_http_stop(http);
	srv_trust_free(trust);
	srv_close_ca(ca, p11);
	db_store_close(st);
	cfg_free(c);
	if (rc == 0)
		log_kv(LOG_INFO, "server.stopped", NULL);
	return rc;
}
