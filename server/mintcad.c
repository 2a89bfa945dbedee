/* mintcad: the CA server. Loads the config, migrates the store, opens the CA
 * (creating it on first start), issues its own TLS certificate if needed and
 * serves until SIGTERM/SIGINT, then lets requests in flight finish. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mintca/cfg.h"
#include "mintca/db.h"
#include "mintca/log.h"
#include "http.h"
#include "mintcad_ocsp_int.h"
#include "mintcad_crl_int.h"
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
		"after the requests in flight are answered. SIGHUP re-reads the config:\n"
		"profiles, CAs, users and anchors change at once for new requests, or the\n"
		"new file is refused (logged with its reason) and the running one stays.\n");
}

static int fatal(const char *what, const struct ca_err *err)
{
	log_kv(LOG_ERROR, what, "code", ca_code_str(err->code), "detail", err->detail, NULL);
	fprintf(stderr, "mintcad: %s\n", err->detail);
	return 1;
}

/* States replaced by a reload: freed once no request can still use them. */
#define RETIRE_GRACE_S 300
#define MAX_RETIRED 16
struct retired {
	struct srv_state *st;
	time_t at;
};

/* A state with its OCSP responders (freed first: they hold keys of its tokens). */
static void state_free(struct srv_state *s)
{
	if (s != NULL)
		srv_ocsp_free(s->ocsp);
	srv_state_free(s);
}

static void retire(struct retired *r, size_t *n, struct srv_state *old)
{
	time_t now = time(NULL);
	size_t k = 0;

	for (size_t i = 0; i < *n; i++) {
		if (now - r[i].at > RETIRE_GRACE_S || *n >= MAX_RETIRED)
			state_free(r[i].st);
		else
			r[k++] = r[i];
	}
	r[k].st = old;
	r[k].at = now;
	*n = k + 1;
}

/* Build a whole new state from the config file; NULL (and the reason logged)
 * when anything in it is wrong, so the running state stays. */
static struct srv_state *load_state(const char *path, db_store *st, const struct cfg *running,
				    struct ca_err *err)
{
	struct srv_state *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	s->store = st;
	if ((s->cfg = cfg_load(path, err)) == NULL || (s->cas = srv_cas_open(s->cfg, st, err)) == NULL ||
	    (s->trust = srv_trust_new(s->cfg, s->cas, err)) == NULL) {
		srv_state_free(s);
		return NULL;
	}
	if (running != NULL && (running->port != s->cfg->port || strcmp(running->listen, s->cfg->listen) != 0 ||
				running->threads != s->cfg->threads || strcmp(running->db_dsn, s->cfg->db_dsn) != 0 ||
				strcmp(running->tls_cert_file, s->cfg->tls_cert_file) != 0))
		log_kv(LOG_WARN, "config.reload_partial", "why",
		       "server.*, tls.* and database.* take effect at the next restart; profiles, CAs, users and anchors now", NULL);
	return s;
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
	struct srv_state *state = NULL;
	struct retired retired[MAX_RETIRED];
	size_t n_retired = 0;
	srv_http *http = NULL;
	srv_ocsp_svc *osvc = NULL;
	struct srv_crl *crl = NULL;
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
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((st = db_store_open(c->db_dsn, &err)) == NULL || db_migrate(st, &err) != 0) {
		rc = fatal("db.unavailable", &err);
		goto out;
	}
	if ((state = calloc(1, sizeof(*state))) == NULL)
		goto out;
	state->store = st;
	state->cfg = c;
	c = NULL;
	if ((state->cas = srv_cas_open(state->cfg, st, &err)) == NULL) {
		rc = fatal("ca.unavailable", &err);
		goto out;
	}
	if (state->cfg->signer == CFG_SIGNER_FILE)
		log_kv(LOG_WARN, "ca.unsafe", "why", "CA keys are in files: development only, never production", NULL);
	if (srv_ensure_tls(state->cfg, srv_cas_at(state->cas, 0), &err) != 0 ||
	    (state->trust = srv_trust_new(state->cfg, state->cas, &err)) == NULL ||
	    (osvc = srv_ocsp_svc_start(st, &err)) == NULL ||
	    (state->ocsp = srv_ocsp_new(state, osvc, &err)) == NULL ||
	    (state->crl = crl = srv_crl_start(st, state, &err)) == NULL ||
	    (http = srv_http_start(state, &err)) == NULL) {
		rc = fatal("server.start_failed", &err);
		goto out;
	}
	snprintf(port, sizeof(port), "%u", state->cfg->port);
	log_kv(LOG_INFO, "server.ready", "listen", state->cfg->listen, "port", port, "ca", state->cfg->ca_name,
	       "signer", state->cfg->signer == CFG_SIGNER_PKCS11 ? "pkcs11" : "file", NULL);
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
		struct ca_err rerr = { 0 };
		struct srv_state *next = load_state(path, st, state->cfg, &rerr), *old;
		if (next != NULL && (next->ocsp = srv_ocsp_new(next, osvc, &rerr)) == NULL) {
			state_free(next);
			next = NULL;
		}
		if (next == NULL) {
			log_kv(LOG_ERROR, "config.reload_refused", "detail", rerr.detail,
			       "why", "the running configuration stays", NULL);
			continue;
		}
		next->crl = crl;
		old = srv_http_swap(http, next);
		srv_crl_set_state(crl, next);
		srv_ocsp_quiesce(old->ocsp);
		retire(retired, &n_retired, old);
		state = next;
		log_kv(LOG_INFO, "config.reloaded", "path", path, NULL);
	}
	log_kv(LOG_INFO, "server.stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	rc = 0;
out:
	srv_http_stop(http);
	srv_crl_stop(crl);
	for (size_t i = 0; i < n_retired; i++)
		state_free(retired[i].st);
	state_free(state);
	srv_ocsp_svc_stop(osvc);
	db_store_close(st);
	cfg_free(c);
	if (rc == 0)
		log_kv(LOG_INFO, "server.stopped", NULL);
	return rc;
}
