/* mintctl revoke: by serial, by a file of serials (a batch, resumable), or by
 * a query (profile + issued between); and the release of a certificateHold.
 * Everything goes through ca_revoke(). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"
#include "mintca/db.h"
#include "mintca/log.h"
#include "mintctl.h"

#define MAX_FILE_SERIALS 10000000
#define MAX_CLI_SERIALS 256
#define MAX_QUERY_SERIALS 10000000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mintctl revoke -c CONFIG --serial HEX [--serial HEX ...] [options]\n"
		"       mintctl revoke -c CONFIG --file SERIALS [options]\n"
		"       mintctl revoke -c CONFIG --profile NAME --issued-after DATE --issued-before DATE\n"
		"                      [--ca NAME] [--yes] [options]\n"
		"       mintctl revoke -c CONFIG --release --serial HEX\n"
		"\n"
		"Revokes certificates; the next CRL and every OCSP answer after this command\n"
		"reflect it. Every serial is checked before anything changes: an unknown or\n"
		"malformed serial refuses the whole command and nothing is revoked.\n"
		"\n"
		"  --serial HEX         a serial (as `openssl x509 -serial` prints it, colons allowed);\n"
		"                       revoking one already revoked is an error\n"
		"  --file FILE          one serial per line ('#' comments, blank lines allowed), '-' for\n"
		"                       standard input: one transaction per chunk, progress on the\n"
		"                       terminal; run it again after an interruption and it finishes\n"
		"                       the rest (serials revoked before are skipped and counted)\n"
		"  --profile NAME, --issued-after DATE, --issued-before DATE [--ca NAME]\n"
		"                       every unrevoked certificate of the profile issued in\n"
		"                       [after, before); without --yes only prints how many\n"
		"  --reason R           RFC 5280 reason: unspecified (default), keyCompromise,\n"
		"                       cACompromise, affiliationChanged, superseded,\n"
		"                       cessationOfOperation, certificateHold, privilegeWithdrawn,\n"
		"                       aACompromise, or its number\n"
		"  --invalidity-date DATE  when the key is known or suspected to have been compromised\n"
		"  --release            release a certificateHold (removeFromCRL)\n"
		"  --chunk N            serials per transaction (default 1000)\n"
		"  -h, --help           this text\n"
		"\n"
		"DATE: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC). Exit status: 0 done, 1 refused or\n"
		"failed (the reason is printed), 2 usage.\n");
}

/* "2026-11-25" or "2026-11-25T10:00:00Z" (UTC). 0 or -1. */
static int parse_date(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);

	if (end == NULL || *end != '\0') {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
		if (end == NULL || *end != '\0')
			return -1;
	}
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

struct serial_list {
	char **v;
	size_t n, cap;
};

static int list_add(struct serial_list *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n] = strdup(s)) == NULL)
		return -1;
	l->n++;
	return 0;
}

static void list_free(struct serial_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Serials from a file, one per line. 0, or -1 after printing why. */
static int read_serials(const char *path, struct serial_list *l)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char line[256];
	unsigned long lineno = 0;
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr, "mintctl revoke: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\r\n");
		char *p = line;
		lineno++;
		if (line[n] == '\0' && !feof(f)) {
			fprintf(stderr, "mintctl revoke: %s:%lu: line too long for a serial\n", path, lineno);
			goto out;
		}
		line[n] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		p[strcspn(p, " \t#")] = '\0';
		if (l->n >= MAX_FILE_SERIALS) {
			fprintf(stderr, "mintctl revoke: %s: more than %d serials: split the file\n", path,
				MAX_FILE_SERIALS);
			goto out;
		}
		if (list_add(l, p) != 0) {
			fprintf(stderr, "mintctl revoke: out of memory\n");
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "mintctl revoke: %s: read error\n", path);
		goto out;
	}
	rc = 0;
out:
	if (f != stdin)
		fclose(f);
	return rc;
}

struct progress {
	bool tty;
	struct timespec start;
	size_t last_line;
};

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* One line rewritten in place on a terminal; a line per tenth otherwise. */
static void show_progress(void *arg, size_t done, size_t total, size_t revoked, size_t already)
{
	struct progress *p = arg;
	double s = since(&p->start);

	if (p->tty) {
		fprintf(stderr, "\rrevoking: %zu/%zu serials (%zu%%), %zu revoked, %zu already revoked, %.1f s",
			done, total, done * 100 / total, revoked, already, s);
		if (done == total)
			fputc('\n', stderr);
	} else if (done == total || (done - p->last_line) * 10 >= total) {
		fprintf(stderr, "revoking: %zu/%zu serials, %zu revoked, %zu already revoked, %.1f s\n",
			done, total, revoked, already, s);
		p->last_line = done;
	}
}

int ctl_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "serial", required_argument, NULL, 's' },
		{ "file", required_argument, NULL, 'f' }, { "profile", required_argument, NULL, 'p' },
		{ "issued-after", required_argument, NULL, 'A' }, { "issued-before", required_argument, NULL, 'B' },
		{ "ca", required_argument, NULL, 'C' }, { "reason", required_argument, NULL, 'r' },
		{ "invalidity-date", required_argument, NULL, 'i' }, { "release", no_argument, NULL, 'R' },
		{ "chunk", required_argument, NULL, 'k' }, { "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *cfgp = NULL, *file = NULL, *profile = NULL, *ca = NULL, *after = NULL, *before = NULL;
	struct serial_list l = { 0 };
	struct ca_revoke_req req = { .protocol = "cli" };
	struct ca_revoke_res res;
	struct ca_err err = { 0 };
	struct progress prog = { .tty = isatty(2) };
	struct cfg *c = NULL;
	db_store *st = NULL;
	char actor[128], **found = NULL;
	size_t n_found = 0;
	unsigned long chunk = 0;
	bool yes = false;
	time_t from = 0, to = 0;
	int o, rc = 1;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cfgp = optarg; break;
		case 's':
			if (l.n >= MAX_CLI_SERIALS || list_add(&l, optarg) != 0) {
				fprintf(stderr, "mintctl revoke: at most %d --serial: use --file\n", MAX_CLI_SERIALS);
				goto usage_out;
			}
			break;
		case 'f': file = optarg; break;
		case 'p': profile = optarg; break;
		case 'A': after = optarg; break;
		case 'B': before = optarg; break;
		case 'C': ca = optarg; break;
		case 'r':
			if ((req.reason = ca_reason_from_name(optarg)) < 0) {
				fprintf(stderr, "mintctl revoke: --reason %s: not an RFC 5280 reason a revocation may give\n",
					optarg);
				goto usage_out;
			}
			break;
		case 'i':
			if (parse_date(optarg, &req.invalidity_date) != 0) {
				fprintf(stderr, "mintctl revoke: --invalidity-date %s: not YYYY-MM-DD[THH:MM:SSZ]\n", optarg);
				goto usage_out;
			}
			break;
		case 'R': req.release = true; break;
		case 'k':
			chunk = strtoul(optarg, NULL, 10);
			if (chunk < 1 || chunk > 100000) {
				fprintf(stderr, "mintctl revoke: --chunk must be 1..100000\n");
				goto usage_out;
			}
			break;
		case 'y': yes = true; break;
		case 'h':
			usage(stdout);
			list_free(&l);
			return 0;
		default:
			goto usage_out;
		}
	}
	if (cfgp == NULL || optind != argc ||
	    (l.n > 0) + (file != NULL) + (profile != NULL) != 1 ||
	    (profile != NULL && (after == NULL || before == NULL)) || (req.release && l.n != 1)) {
		fprintf(stderr, "mintctl revoke: give -c CONFIG and exactly one of --serial, --file, or "
			"--profile with --issued-after and --issued-before (see --help)\n");
		goto usage_out;
	}
	if (profile != NULL && (parse_date(after, &from) != 0 || parse_date(before, &to) != 0 || from >= to)) {
		fprintf(stderr, "mintctl revoke: --issued-after/--issued-before: dates YYYY-MM-DD[THH:MM:SSZ], "
			"after before before\n");
		goto usage_out;
	}
	if (file != NULL && read_serials(file, &l) != 0)
		goto out;
	if (file != NULL && l.n == 0) {
		fprintf(stderr, "mintctl revoke: %s holds no serial\n", file);
		goto out;
	}
	log_set_level(LOG_WARN);
	if ((c = cfg_load(cfgp, &err)) == NULL || (st = db_store_open(c->db_dsn, &err)) == NULL ||
	    db_migrate(st, &err) != 0) {
		fprintf(stderr, "mintctl revoke: %s\n", err.detail);
		goto out;
	}
	if (profile != NULL) {
		if (db_serials_matching(st, ca, profile, from, to, MAX_QUERY_SERIALS, &found, &n_found, &err) != 0) {
			fprintf(stderr, "mintctl revoke: %s\n", err.detail);
			goto out;
		}
		printf("%zu unrevoked certificate(s) of profile '%s'%s%s issued in [%s, %s)\n", n_found, profile,
		       ca ? " of CA " : "", ca ? ca : "", after, before);
		if (n_found == 0 || !yes) {
			if (n_found > 0)
				printf("nothing revoked: add --yes to revoke them\n");
			rc = 0;
			goto out;
		}
	}
	snprintf(actor, sizeof(actor), "operator:%s", getenv("USER") ? getenv("USER") : "mintctl");
	req.actor = actor;
	req.serials = found ? (const char *const *)found : (const char *const *)l.v;
	req.n = found ? n_found : l.n;
	req.resume = file != NULL || found != NULL;
	req.chunk = chunk;
	if (req.n > 1) {
		req.progress = show_progress;
		req.progress_arg = &prog;
	}
	clock_gettime(CLOCK_MONOTONIC, &prog.start);
	if (ca_revoke(st, &req, &res, &err) != 0) {
		if (prog.tty && res.chunks > 0)
			fputc('\n', stderr);
		fprintf(stderr, "mintctl revoke: %s: %s\n", ca_code_str(err.code), err.detail);
		if (res.chunks > 0)
			fprintf(stderr, "mintctl revoke: %zu chunk(s) were committed (%zu revoked): run the same "
				"command again to finish\n", res.chunks, res.revoked);
		else
			fprintf(stderr, "mintctl revoke: nothing was changed\n");
		goto out;
	}
	if (req.release)
		printf("released the hold on %s\n", req.serials[0]);
	else
		printf("revoked %zu, already revoked %zu (skipped), of %zu serial(s); reason %s; "
		       "%zu transaction(s), %.1f s\n", res.revoked, res.already, req.n, ca_reason_name(req.reason),
		       res.chunks, since(&prog.start));
	rc = 0;
	goto out;
usage_out:
	rc = 2;
out:
	db_serials_free(found, n_found);
	list_free(&l);
	db_store_close(st);
	cfg_free(c);
	return rc;
}
