/* mintctl certs: inspect certificate rows in the store. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mintca/log.h"
#include "cfg_int.h"
#include "mintctl.h"

#define RESERVED_DEFAULT_LIMIT 1000

static void reserved_usage(FILE *f)
{
	fprintf(f,
		"usage: mintctl certs reserved -c CONFIG [--older-than DURATION] [--limit N]\n"
		"\n"
		"Lists serials that were reserved but never issued: the server stopped\n"
		"(crash, kill, power loss) or the store or the HSM failed between the\n"
		"reservation and the commit of the certificate. No certificate with such a\n"
		"serial was ever given to anyone, and none is counted as issued; the\n"
		"reservation stays on record (table serial_blocks, view reserved_serials).\n"
		"\n"
		"One line per serial, oldest first, tab-separated:\n"
		"  SERIAL  CA  SITE  RESERVED_AT (UTC, RFC 3339)\n"
		"\n"
		"  -c, --config FILE        the mintcad configuration (for database.dsn)\n"
		"  --older-than DURATION    only reservations at least this old, on the\n"
		"                           database clock: 30s, 15m, 2h, 7d, 1y (default: all)\n"
		"  --limit N                at most N lines (1-%d, default %d); a note on\n"
		"                           standard error says when more were left out\n",
		DB_RESERVED_MAX, RESERVED_DEFAULT_LIMIT);
}

static int cmd_reserved(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "older-than", required_argument, NULL, 'o' },
		{ "limit", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cfgp = NULL;
	unsigned long long older = 0;
	unsigned long limit = RESERVED_DEFAULT_LIMIT;
	struct ca_err err = { 0 };
	struct cfg *c = NULL;
	db_store *st = NULL;
	struct db_reserved *rows = NULL;
	size_t n = 0;
	int o, more = 0, rc = 1;
	long long d;
	char *end;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			cfgp = optarg;
			break;
		case 'o':
			/* At most 12 characters: no overflow in the multiplication. */
			if (strlen(optarg) > 12 || (d = cfg_parse_duration(optarg)) < 0 ||
			    (unsigned long long)d > DB_RESERVED_AGE_MAX) {
				fprintf(stderr, "mintctl certs reserved: --older-than must be a duration "
					"such as 30s, 15m, 2h, 7d (at most 100y), not '%s'\n", optarg);
				return 2;
			}
			older = (unsigned long long)d;
			break;
		case 'l':
			limit = strtoul(optarg, &end, 10);
			if (end == optarg || *end != '\0' || limit == 0 || limit > DB_RESERVED_MAX) {
				fprintf(stderr, "mintctl certs reserved: --limit must be 1..%d\n", DB_RESERVED_MAX);
				return 2;
			}
			break;
		case 'h':
			reserved_usage(stdout);
			return 0;
		default:
			reserved_usage(stderr);
			return 2;
		}
	}
	if (cfgp == NULL || optind != argc) {
		fprintf(stderr, "mintctl certs reserved: -c CONFIG is required, and nothing else (see --help)\n");
		return 2;
	}
	/* The store only: listing needs neither the CAs nor the HSM. */
	log_set_level(LOG_WARN);
	if ((c = cfg_load(cfgp, &err)) == NULL || (st = db_store_open(c->db_dsn, &err)) == NULL ||
	    db_certs_reserved(st, older, limit, &rows, &n, &more, &err) != 0) {
		fprintf(stderr, "mintctl certs reserved: %s\n", err.detail);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char when[32];
		struct tm tm;

		if (gmtime_r(&rows[i].reserved_at, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			snprintf(when, sizeof(when), "@%lld", (long long)rows[i].reserved_at);
		printf("%s\t%s\t%s\t%s\n", rows[i].serial_hex, rows[i].ca, rows[i].site, when);
	}
	if (more)
		fprintf(stderr, "mintctl certs reserved: more than %lu serials; the oldest %lu are listed "
			"(raise --limit)\n", limit, limit);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	db_reserved_free(rows, n);
	db_store_close(st);
	cfg_free(c);
	return rc;
}

int ctl_certs(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "reserved") == 0)
		return cmd_reserved(argc - 1, argv + 1);
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		reserved_usage(stdout);
		return 0;
	}
	fprintf(stderr, "usage: mintctl certs reserved -c CONFIG [--older-than DURATION] [--limit N]\n");
	return 2;
}
