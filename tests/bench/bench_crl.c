/* bench_crl: publishing a CRL of N revoked certificates through
 * crl_publish() (database read, encoding, signature, storing), for N =
 * 100,000 and 1,000,000 by default, next to OpenSSL's own X509_CRL path
 * for the same entries in memory.
 *
 *   bench_crl --dsn DSN [--p11 MODULE TOKEN PINFILE KEYLABEL] [-n N[,N...]] [--keep]
 *
 * For each N: a CA under a new name (certificate self-signed by the key:
 * in memory, or on the PKCS#11 token with --p11) is stored, N certificates
 * and their revocations are loaded with COPY (random 16-octet serials,
 * revocation times spread over 30 days to the second, reasons 0-6, 9, 10,
 * one in ten with an invalidityDate; foreign-key triggers off), VACUUM
 * ANALYZE, then:
 *   crl_publish_N         crl_publish, first run (seconds, and its parts:
 *                         lock, read+encode, sign = assemble + signature,
 *                         store = insert + commit)
 *   crl_publish_N_again   the same once more (a second CRL number)
 *   crl_build_N           crl_builder on the same rows in memory (no store):
 *                         the encoding + signing share of crl_publish
 *   openssl_crl_N         X509_REVOKED per entry + X509_CRL_add0_revoked +
 *                         X509_CRL_sign + i2d_X509_CRL, in memory, no store
 * and the stored CRL is checked: d2i_X509_CRL, X509_CRL_verify, N entries.
 * The publish lines also give the CPU seconds spent by this process and by
 * the PostgreSQL backends of the store (from /proc): on a shared machine the
 * wall time includes waiting for other processes' turns, the CPU does not.
 * The rows are deleted afterwards unless --keep. Goal: 1,000,000 in < 5 s. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "mintca/cfg.h"
#include "mintca/crl.h"
#include "mintca/db.h"
#include "mintca/secret.h"
#include "mintca/sig.h"
#include "cpu.h"

#define DAY 86400
#define COPY_CHUNK (1 << 20)
#define MAX_SIZES 8

struct p11_args {
	const char *module, *token, *pin_file, *key_label;
};

struct row {
	char serial[33];
	time_t revoked_at, invalidity;
	int reason;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "bench_crl: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_crl --dsn DSN [--p11 MODULE TOKEN PINFILE KEYLABEL] "
		"[-n N[,N...]] [--keep]\n");
	exit(2);
}

/* N rows of random serials, times and reasons. */
static struct row *make_rows(long n, time_t now)
{
	static const int reasons[] = { 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 9, 10 };
	struct row *r = malloc((size_t)n * sizeof(*r));
	unsigned char b[16], *rnd;
	size_t rlen = (size_t)n * 24;

	if (r == NULL || (rnd = malloc(rlen)) == NULL || RAND_bytes(rnd, (int)rlen) != 1)
		die("out of memory or randomness", NULL);
	for (long i = 0; i < n; i++) {
		const unsigned char *x = rnd + (size_t)i * 24;
		unsigned v;
		memcpy(b, x, 16);
		b[0] &= 0x7f;
		b[0] |= 0x01;  /* no leading zero octet: the store's form */
		for (int k = 0; k < 16; k++)
			snprintf(r[i].serial + 2 * k, 3, "%02x", b[k]);
		memcpy(&v, x + 16, sizeof(v));
		r[i].revoked_at = now - (time_t)(v % (30 * DAY));
		r[i].reason = reasons[x[20] % (sizeof(reasons) / sizeof(reasons[0]))];
		r[i].invalidity = x[21] % 10 == 0 ? r[i].revoked_at - (time_t)(x[22] % 10) * DAY : 0;
	}
	free(rnd);
	return r;
}

static void exec_ok(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		die(sql, PQerrorMessage(pg));
	PQclear(res);
}

static void ts_text(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%d %H:%M:%S+00", &tm);
}

/* COPY the text lines made by line(i) for i in [0, n) into table(cols). */
static void copy_in(PGconn *pg, const char *sql, long n, int (*line)(char *buf, size_t len, long i, void *arg),
		    void *arg)
{
	char *buf = malloc(COPY_CHUNK + 512);
	size_t used = 0;
	PGresult *res = PQexec(pg, sql);

	if (buf == NULL || PQresultStatus(res) != PGRES_COPY_IN)
		die(sql, PQerrorMessage(pg));
	PQclear(res);
	for (long i = 0; i < n; i++) {
		used += (size_t)line(buf + used, 512, i, arg);
		if (used >= COPY_CHUNK || i + 1 == n) {
			if (PQputCopyData(pg, buf, (int)used) != 1)
				die("PQputCopyData", PQerrorMessage(pg));
			used = 0;
		}
	}
	if (PQputCopyEnd(pg, NULL) != 1)
		die("PQputCopyEnd", PQerrorMessage(pg));
	while ((res = PQgetResult(pg)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die(sql, PQerrorMessage(pg));
		PQclear(res);
	}
	free(buf);
}

struct load {
	const char *ca;
	const struct row *rows;
	char nb[32], na[32];
};

static int cert_line(char *buf, size_t len, long i, void *arg)
{
	const struct load *l = arg;

	/* serial, ca, status, not_before, not_after, der (a placeholder) */
	return snprintf(buf, len, "%s\t%s\tissued\t%s\t%s\t\\\\x00\n", l->rows[i].serial, l->ca, l->nb, l->na);
}

static int rev_line(char *buf, size_t len, long i, void *arg)
{
	const struct load *l = arg;
	const struct row *r = &l->rows[i];
	char at[32], inv[32] = "\\N";

	ts_text(r->revoked_at, at);
	if (r->invalidity != 0)
		ts_text(r->invalidity, inv);
	return snprintf(buf, len, "%s\t%s\t%s\t%d\t%s\t%s\n", r->serial, l->ca, at, r->reason, inv, l->na);
}

static void load_rows(PGconn *pg, const char *ca, const struct row *rows, long n, time_t now)
{
	struct load l = { .ca = ca, .rows = rows };
	double t0, t1, t2;

	/* Rows consistent by construction: skip the foreign-key triggers (a
	 * throwaway cluster where this user is a superuser). */
	exec_ok(pg, "SET session_replication_role = replica");
	t0 = now_s();

	ts_text(now - DAY, l.nb);
	ts_text(now + 365 * DAY, l.na);
	copy_in(pg, "COPY certificates (serial, ca, status, not_before, not_after, der) FROM STDIN", n,
		cert_line, &l);
	t1 = now_s();
	copy_in(pg, "COPY revocations (serial, ca, revoked_at, reason, invalidity_date, not_after) FROM STDIN",
		n, rev_line, &l);
	t2 = now_s();
	exec_ok(pg, "RESET session_replication_role");
	exec_ok(pg, "VACUUM ANALYZE certificates");
	exec_ok(pg, "VACUUM ANALYZE revocations");
	printf("# loaded %ld certificates (%.1f s) and %ld revocations (%.1f s) with COPY; vacuum %.1f s\n",
	       n, t1 - t0, n, t2 - t1, now_s() - t2);
}

static void drop_rows(PGconn *pg, const char *ca)
{
	char *lit = PQescapeLiteral(pg, ca, strlen(ca)), sql[512];
	const char *tables[] = { "crls", "revocations", "hold_releases", "certificates", "cas" };

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = %s", tables[i],
			 strcmp(tables[i], "cas") == 0 ? "name" : "ca", lit);
		exec_ok(pg, sql);
	}
	PQfreemem(lit);
}

/* OpenSSL's own path, in memory: the floor without our assembly. */
static double openssl_crl(const struct row *rows, long n, X509 *cacert, EVP_PKEY *pk, time_t now,
			  size_t *len)
{
	double t0 = now_s();
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *tu = ASN1_TIME_set(NULL, now), *nu = ASN1_TIME_set(NULL, now + DAY);
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	unsigned char *der = NULL;
	int l;

	if (crl == NULL || tu == NULL || nu == NULL || num == NULL || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(cacert)) ||
	    !X509_CRL_set1_lastUpdate(crl, tu) || !X509_CRL_set1_nextUpdate(crl, nu) ||
	    !ASN1_INTEGER_set(num, 1) || X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
		die("openssl CRL", NULL);
	for (long i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		BIGNUM *bn = NULL;
		ASN1_INTEGER *s = NULL;
		ASN1_TIME *when = ASN1_TIME_set(NULL, rows[i].revoked_at);
		if (r == NULL || when == NULL || BN_hex2bn(&bn, rows[i].serial) == 0 ||
		    (s = BN_to_ASN1_INTEGER(bn, NULL)) == NULL || !X509_REVOKED_set_serialNumber(r, s) ||
		    !X509_REVOKED_set_revocationDate(r, when))
			die("openssl CRL entry", NULL);
		if (rows[i].reason != 0) {
			ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();
			if (e == NULL || !ASN1_ENUMERATED_set(e, rows[i].reason) ||
			    X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e, 0, 0) != 1)
				die("openssl CRL reason", NULL);
			ASN1_ENUMERATED_free(e);
		}
		if (rows[i].invalidity != 0) {
			ASN1_GENERALIZEDTIME *g = ASN1_GENERALIZEDTIME_set(NULL, rows[i].invalidity);
			if (g == NULL || X509_REVOKED_add1_ext_i2d(r, NID_invalidity_date, g, 0, 0) != 1)
				die("openssl CRL invalidity", NULL);
			ASN1_GENERALIZEDTIME_free(g);
		}
		if (!X509_CRL_add0_revoked(crl, r))
			die("X509_CRL_add0_revoked", NULL);
		ASN1_TIME_free(when);
		ASN1_INTEGER_free(s);
		BN_free(bn);
	}
	if (X509_CRL_sign(crl, pk, EVP_sha256()) <= 0 || (l = i2d_X509_CRL(crl, &der)) <= 0)
		die("X509_CRL_sign / i2d_X509_CRL", NULL);
	*len = (size_t)l;
	OPENSSL_free(der);
	X509_CRL_free(crl);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	ASN1_INTEGER_free(num);
	return now_s() - t0;
}

/* crl_builder alone on the same rows, in memory: the encoding and signing
 * share of crl_publish. */
static double build_only(ca_ctx *ca, const struct row *rows, long n, time_t now, size_t *len)
{
	struct ca_err err = { 0 };
	struct crl_params p = { .number = 1, .this_update = now, .next_update = now + DAY };
	double t0 = now_s();
	crl_builder *b = crl_builder_new(ca, 0, false, &err);
	unsigned char *der = NULL;

	if (b == NULL)
		die("crl_builder_new", err.detail);
	for (long i = 0; i < n; i++) {
		struct crl_entry e = { .serial_hex = rows[i].serial, .revoked_at = rows[i].revoked_at,
				       .reason = rows[i].reason, .invalidity_date = rows[i].invalidity };
		if (crl_builder_add(b, &e, &err) != 0)
			die("crl_builder_add", err.detail);
	}
	if (crl_builder_finish(b, &p, &der, len, &err) != 0)
		die("crl_builder_finish", err.detail);
	free(der);
	crl_builder_free(b);
	return now_s() - t0;
}

static void print_result(const char *name, const struct crl_result *r, double cpu_self, double cpu_pg)
{
	printf("%-26s %8zu entries %9zu bytes  total %6.3f s  (lock %.3f  read+encode %.3f  "
	       "sign %.3f  store %.3f)  %9.0f entries/s  cpu: ours %.2f s, postgres %.2f s\n",
	       name, r->entries, r->der_len, r->total_s, r->lock_s, r->read_s, r->sign_s, r->store_s,
	       r->total_s > 0 ? (double)r->entries / r->total_s : 0.0, cpu_self, cpu_pg);
}

static void check_stored(db_store *st, const char *ca, const struct crl_result *r, X509 *cacert, long n)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	struct ca_err err = { 0 };
	X509_CRL *crl;
	double t0 = now_s();

	if (db_crl_der(st, ca, r->number, &der, &len, &err) != 0)
		die("db_crl_der", err.detail);
	p = der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL)
		die("d2i_X509_CRL of the stored CRL", NULL);
	if (X509_CRL_verify(crl, X509_get0_pubkey(cacert)) != 1)
		die("X509_CRL_verify of the stored CRL", NULL);
	if (sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) != n)
		die("the stored CRL does not list every entry", NULL);
	printf("# stored CRL %lld: d2i_X509_CRL + X509_CRL_verify ok, %ld entries (%.2f s)\n", r->number, n,
	       now_s() - t0);
	X509_CRL_free(crl);
	free(der);
}

int main(int argc, char **argv)
{
	const char *dsn = NULL;
	struct p11_args p11 = { 0 };
	long sizes[MAX_SIZES] = { 100000, 1000000 };
	size_t n_sizes = 2;
	bool keep = false;
	struct ca_err err = { 0 };
	db_store *st;
	PGconn *pg;
	sig_p11 *tok = NULL;
	time_t now = time(NULL);
	struct cfg cfg = {
		.public_name = "localhost", .port = 8443, .crl_period_s = 3600, .crl_next_update_s = DAY,
		.crl_retention_s = 90 * DAY,
	};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
			dsn = argv[++i];
		} else if (strcmp(argv[i], "--p11") == 0 && i + 4 < argc) {
			p11 = (struct p11_args){ argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4] };
			i += 4;
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			char *s = argv[++i], *end;
			for (n_sizes = 0; *s != '\0' && n_sizes < MAX_SIZES; s = *end ? end + 1 : end) {
				sizes[n_sizes] = strtol(s, &end, 10);
				if (sizes[n_sizes] <= 0 || (*end != ',' && *end != '\0'))
					usage();
				n_sizes++;
			}
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = true;
		} else {
			usage();
		}
	}
	if (dsn == NULL)
		usage();
	if ((st = db_store_open(dsn, &err)) == NULL || db_migrate(st, &err) != 0)
		die("store", err.detail);
	if ((pg = PQconnectdb(dsn)) == NULL || PQstatus(pg) != CONNECTION_OK)
		die("PQconnectdb", pg ? PQerrorMessage(pg) : NULL);
	if (p11.module != NULL) {
		sec_str pin = { 0 };
		if (sec_read_file(&pin, p11.pin_file) != 0)
			die("cannot read the PIN file", strerror(errno));
		tok = sig_p11_open(p11.module, p11.token, &pin, &err);
		sec_clear(&pin);
		if (tok == NULL)
			die("sig_p11_open", err.detail);
	}
	printf("# CA key: %s; CRL figures: seconds, first and second run\n",
	       p11.module ? "PKCS#11 token (SoftHSM), P-256" : "in memory, P-256");
	for (size_t k = 0; k < n_sizes; k++) {
		long n = sizes[k];
		char name[CA_NAME_MAX], label[64];
		sig_key *key;
		X509 *cert;
		ca_ctx *ca;
		unsigned char *der = NULL;
		int len;
		struct row *rows = make_rows(n, now);
		struct crl_result r1, r2;
		struct crl_scope scope = { 0 };
		size_t olen = 0;
		double t_ossl, t_build, c0, c1, p0, p1;

		snprintf(name, sizeof(name), "bench-crl-%ld-%ld-%ld", n, (long)getpid(), (long)now);
		key = tok ? sig_p11_key(tok, p11.key_label, &err) : sig_mem_key(EVP_EC_gen("P-256"));
		if (key == NULL)
			die("CA key", err.detail);
		if ((cert = ca_make_root(key, "/O=mintca bench/CN=mintca bench CRL CA", 365LL * DAY, &err)) == NULL)
			die("ca_make_root", err.detail);
		if ((len = i2d_X509(cert, &der)) <= 0 || db_ca_put(st, name, NULL, NULL, der, (size_t)len, &err) != 0)
			die("db_ca_put", err.detail);
		OPENSSL_free(der);
		if ((ca = ca_ctx_new(name, key, cert, NULL, st, &err)) == NULL)
			die("ca_ctx_new", err.detail);
		load_rows(pg, name, rows, n, now);

		c0 = bench_self_cpu();
		p0 = bench_pg_cpu(pg, 1);
		if (crl_publish(ca, &cfg, &scope, 0, &r1, &err) != 0 || !r1.published)
			die("crl_publish", err.detail);
		c1 = bench_self_cpu();
		p1 = bench_pg_cpu(pg, 1);
		if (crl_publish(ca, &cfg, &scope, 0, &r2, &err) != 0 || !r2.published)
			die("crl_publish", err.detail);
		snprintf(label, sizeof(label), "crl_publish_%ld", n);
		print_result(label, &r1, c1 - c0, p1 - p0);
		snprintf(label, sizeof(label), "crl_publish_%ld_again", n);
		print_result(label, &r2, bench_self_cpu() - c1, bench_pg_cpu(pg, 1) - p1);
		check_stored(st, name, &r2, ca_issuing_cert(ca), n);
		t_build = build_only(ca, rows, n, now, &olen);
		snprintf(label, sizeof(label), "crl_build_%ld", n);
		printf("%-26s %8ld entries %9zu bytes  total %6.3f s  (crl_builder in memory, no store)  %9.0f entries/s\n",
		       label, n, olen, t_build, (double)n / t_build);
		t_ossl = openssl_crl(rows, n, ca_issuing_cert(ca), sig_privkey(key), now, &olen);
		snprintf(label, sizeof(label), "openssl_crl_%ld", n);
		printf("%-26s %8ld entries %9zu bytes  total %6.3f s  (in memory, no store)  %9.0f entries/s\n",
		       label, n, olen, t_ossl, (double)n / t_ossl);
		printf("# %ld: crl_publish %.2f s (goal for 1,000,000: < 5 s); OpenSSL X509_CRL path alone %.2f s\n",
		       n, r1.total_s < r2.total_s ? r1.total_s : r2.total_s, t_ossl);
		fflush(stdout);
		if (!keep)
			drop_rows(pg, name);
		ca_ctx_free(ca);
		free(rows);
	}
	PQfinish(pg);
	db_store_close(st);
	sig_p11_close(tok);
	return 0;
}
