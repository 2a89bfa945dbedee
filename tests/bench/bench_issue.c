/* bench_issue: certificates per second through ca_issue, next to the OpenSSL
 * floor for the same work, on one thread; with --dsn, also through the
 * PostgreSQL store from several threads at once.
 *
 *   bench_issue [--p11 MODULE TOKEN PINFILE KEYLABEL] [--dsn DSN [--threads T]] [-n N]
 *
 * Always measured:
 *   openssl_csr_verify    d2i_X509_REQ + X509_REQ_verify of a P-256 request
 *   openssl_x509_sign     X509_sign of a prepared TBS with a software P-256 key
 *   openssl_floor         the two above per certificate (the least any CA pays)
 *   ca_issue_mem_p256     ca_issue, no store, CA key in memory (sig_mem_key)
 * With --p11 (the CA key on a PKCS#11 token, same CA profile and request):
 *   openssl_x509_sign_p11 X509_sign with the token key
 *   ca_issue_p11_p256     ca_issue with the token key
 * With --dsn (a PostgreSQL database, migrated here; a CA under a new name
 * each run so its rows never collide with an earlier run's):
 *   ca_issue_mem_Tthreads the figure below without a store: what OpenSSL
 *                         alone allows from T threads (the store's ceiling)
 *   ca_issue_store_Tthreads  ca_issue with the store (serial reserved before
 *                         signing, certificate committed before return; the
 *                         store's group commit shares transactions between
 *                         threads), software P-256 CA key, T threads (default
 *                         8) on all cores, each issuing N/T certificates from
 *                         its own pre-made requests; p50/p99 latency of one
 *                         ca_issue; the ratio to twice ca_issue_mem_p256 (one
 *                         core each on a 2-core machine), goal >= 50%.
 * One line per figure: name  N  seconds  per_second; then the ratios of
 * ca_issue to the floor. Times are CLOCK_MONOTONIC. The threaded figures
 * also say the CPU time per certificate, ours and (with the store) the
 * PostgreSQL cluster's, and how many cores were busy. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "mintca/db.h"
#include "mintca/secret.h"
#include "mintca/sig.h"
#include "cpu.h"

#define DEFAULT_N 2000
#define WARMUP 50

struct p11_args {
	const char *module, *token, *pin_file, *key_label;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct ca_err *err)
{
	fprintf(stderr, "bench_issue: %s%s%s\n", what, err ? ": " : "", err ? err->detail : "");
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_issue [--p11 MODULE TOKEN PINFILE KEYLABEL] "
		"[--dsn DSN [--threads T]] [-n N]\n");
	exit(2);
}

static void print_figure(const char *name, long n, double secs)
{
	printf("%-24s  %7ld  %9.3f  %10.1f\n", name, n, secs, secs > 0 ? (double)n / secs : 0.0);
}

/* The subscriber's request: P-256, CN and one DNS name. Caller frees *der. */
static int make_csr(unsigned char **der)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	int len = -1;

	*der = NULL;
	if (k == NULL || r == NULL || gens == NULL || g == NULL || dns == NULL ||
	    !ASN1_STRING_set(dns, "bench-device.example", -1))
		goto out;
	GENERAL_NAME_set0_value(g, GEN_DNS, dns);
	dns = NULL;
	if (!sk_GENERAL_NAME_push(gens, g))
		goto out;
	g = NULL;
	if (!X509_REQ_set_version(r, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_ASC,
					(const unsigned char *)"bench-device", -1, -1, 0) ||
	    !X509_REQ_set_pubkey(r, k) ||
	    X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1 ||
	    !X509_REQ_add_extensions(r, exts) || X509_REQ_sign(r, k, EVP_sha256()) <= 0)
		goto out;
	len = i2d_X509_REQ(r, der);
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
	return len;
}

/* A CA context around key (taken), with its own self-signed certificate
 * (so the certificate always matches the key) and one profile. With a
 * store, the CA certificate is stored under name first. */
static ca_ctx *make_ctx(const char *name, sig_key *key, db_store *store)
{
	struct ca_err err = { 0 };
	struct ca_profile p = {
		.name = "bench", .key_types = CA_KEY_EC_P256, .rsa_min_bits = 2048, .rsa_max_bits = 4096,
		.validity_seconds = 86400, .backdate_seconds = 60, .eku = CA_EKU_CLIENT_AUTH,
		.max_sans = 1, .operator_allowed = true,
	};
	X509 *cert = ca_make_root(key, "/CN=mintca bench CA", 365LL * 86400, &err);
	ca_ctx *ctx;

	if (cert == NULL)
		die("ca_make_root", &err);
	if (store != NULL) {
		unsigned char *der = NULL;
		int len = i2d_X509(cert, &der);
		if (len <= 0)
			die("i2d_X509", NULL);
		if (db_ca_put(store, name, NULL, NULL, der, (size_t)len, &err) != 0)
			die("db_ca_put", &err);
		OPENSSL_free(der);
	}
	if ((ctx = ca_ctx_new(name, key, cert, NULL, store, &err)) == NULL)
		die("ca_ctx_new", &err);
	if (ca_ctx_add_profile(ctx, &p, &err) != 0)
		die("ca_ctx_add_profile", &err);
	return ctx;
}

static double bench_csr_verify(const unsigned char *der, int len, long n)
{
	double t0 = 0;

	for (long i = -WARMUP; i < n; i++) {
		const unsigned char *p = der;
		X509_REQ *r;

		if (i == 0)
			t0 = now_s();
		if ((r = d2i_X509_REQ(NULL, &p, len)) == NULL ||
		    X509_REQ_verify(r, X509_REQ_get0_pubkey(r)) != 1)
			die("d2i_X509_REQ/X509_REQ_verify", NULL);
		X509_REQ_free(r);
	}
	return now_s() - t0;
}

static double bench_sign(X509 *tbs, EVP_PKEY *pk, long n)
{
	double t0 = 0;

	for (long i = -WARMUP; i < n; i++) {
		if (i == 0)
			t0 = now_s();
		if (X509_sign(tbs, pk, EVP_sha256()) <= 0)
			die("X509_sign", NULL);
	}
	return now_s() - t0;
}

static double bench_issue(ca_ctx *ctx, const unsigned char *der, int len, long n)
{
	static const struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "bench" };
	struct ca_issue_req req = {
		.csr_der = der, .csr_len = (size_t)len, .profile = "bench", .who = &who, .protocol = "cli",
	};
	double t0 = 0;

	for (long i = -WARMUP; i < n; i++) {
		struct ca_issue_res res;
		struct ca_err err = { 0 };

		if (i == 0)
			t0 = now_s();
		if (ca_issue(ctx, &req, &res, &err) != 0)
			die("ca_issue", &err);
		ca_issue_res_free(&res);
	}
	return now_s() - t0;
}

/* A finished certificate to re-sign: one issued by ctx, decoded again. */
static X509 *prepared_tbs(ca_ctx *ctx, const unsigned char *der, int len)
{
	static const struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "bench" };
	struct ca_issue_req req = {
		.csr_der = der, .csr_len = (size_t)len, .profile = "bench", .who = &who, .protocol = "cli",
	};
	struct ca_issue_res res;
	struct ca_err err = { 0 };
	X509 *x;

	if (ca_issue(ctx, &req, &res, &err) != 0)
		die("ca_issue", &err);
	if ((x = X509_dup(res.cert)) == NULL)
		die("X509_dup", NULL);
	ca_issue_res_free(&res);
	return x;
}

/* Figure (c): ca_issue with the store, from several threads at once. */
struct store_worker {
	ca_ctx *ctx;
	unsigned char **csrs;     /* this thread's requests */
	int *csr_lens;
	long n;
	double *lat;              /* seconds per ca_issue */
	pthread_barrier_t *start;
};

static void *store_worker(void *arg)
{
	static const struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "bench" };
	struct store_worker *w = arg;

	pthread_barrier_wait(w->start);
	for (long i = 0; i < w->n; i++) {
		struct ca_issue_req req = {
			.csr_der = w->csrs[i], .csr_len = (size_t)w->csr_lens[i], .profile = "bench",
			.who = &who, .protocol = "cli",
		};
		struct ca_issue_res res;
		struct ca_err err = { 0 };
		double t0 = now_s();

		if (ca_issue(w->ctx, &req, &res, &err) != 0)
			die("ca_issue (store)", &err);
		w->lat[i] = now_s() - t0;
		ca_issue_res_free(&res);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Figure (c) with dsn, or the same without a store (dsn NULL: what
 * OpenSSL alone allows on this many threads). Prints the figure, its
 * latencies and, with the store, its ratio to 2 x (b). Returns its seconds. */
static double bench_store(const char *dsn, int threads, long n, double t_mem)
{
	struct ca_err err = { 0 };
	char name[64], figure[48];
	unsigned char **csrs;
	int *lens;
	double *lat, t0, secs, per_s, goal;
	struct store_worker *w;
	pthread_t *th;
	pthread_barrier_t start;
	db_store *store = NULL;
	PGconn *pg = NULL;
	EVP_PKEY *pk;
	ca_ctx *ctx;
	long done = 0;
	double cpu0, pg0 = 0;
	unsigned long batches0 = 0, rows0 = 0, max_batch = 0;

	if (dsn != NULL &&
	    ((store = db_store_open(dsn, &err)) == NULL || db_migrate(store, &err) != 0))
		die("store", &err);
	/* A session of its own to read the cluster's CPU time with. */
	if (dsn != NULL && PQstatus(pg = PQconnectdb(dsn)) != CONNECTION_OK)
		die("cannot connect to PostgreSQL for the CPU figures", NULL);
	if ((pk = EVP_EC_gen("P-256")) == NULL)
		die("cannot make the CA key", NULL);
	snprintf(name, sizeof(name), "bench-store-%ld-%ld", (long)time(NULL), (long)getpid());
	ctx = make_ctx(name, sig_mem_key(pk), store);

	/* Every certificate from its own request, all made before timing. */
	csrs = calloc((size_t)n, sizeof(*csrs));
	lens = calloc((size_t)n, sizeof(*lens));
	lat = calloc((size_t)n, sizeof(*lat));
	w = calloc((size_t)threads, sizeof(*w));
	th = calloc((size_t)threads, sizeof(*th));
	if (csrs == NULL || lens == NULL || lat == NULL || w == NULL || th == NULL)
		die("out of memory", NULL);
	for (long i = 0; i < n; i++)
		if ((lens[i] = make_csr(&csrs[i])) <= 0)
			die("cannot make a request", NULL);
	/* Warm up: connections, prepared statements, committer threads. */
	for (long i = 0; i < WARMUP; i++) {
		static const struct ca_requester who = { .kind = CA_AUTH_OPERATOR, .id = "bench" };
		struct ca_issue_req req = {
			.csr_der = csrs[i % n], .csr_len = (size_t)lens[i % n], .profile = "bench",
			.who = &who, .protocol = "cli",
		};
		struct ca_issue_res res;

		if (ca_issue(ctx, &req, &res, &err) != 0)
			die("ca_issue (store)", &err);
		ca_issue_res_free(&res);
	}

	if (pthread_barrier_init(&start, NULL, (unsigned)threads + 1) != 0)
		die("pthread_barrier_init", NULL);
	for (int t = 0; t < threads; t++) {
		long share = n / threads + (t < n % threads);
		w[t] = (struct store_worker){ ctx, csrs + done, lens + done, share, lat + done, &start };
		done += share;
		if (pthread_create(&th[t], NULL, store_worker, &w[t]) != 0)
			die("pthread_create", NULL);
	}
	cpu0 = bench_self_cpu();
	if (pg != NULL)
		pg0 = bench_pg_cpu(pg, 0);
	if (store != NULL)
		db_group_stats(store, &batches0, &rows0, &max_batch);
	pthread_barrier_wait(&start);
	t0 = now_s();
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	secs = now_s() - t0;
	cpu0 = bench_self_cpu() - cpu0;
	if (pg != NULL)
		pg0 = bench_pg_cpu(pg, 0) - pg0;
	if (store != NULL) {
		unsigned long b, r;
		db_group_stats(store, &b, &r, &max_batch);
		batches0 = b - batches0;
		rows0 = r - rows0;
	}

	snprintf(figure, sizeof(figure), "ca_issue_%s_%dthreads", store ? "store" : "mem", threads);
	print_figure(figure, n, secs);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	printf("latency  %s  p50 %.3f ms  p99 %.3f ms\n", figure, lat[n / 2] * 1e3,
	       lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] * 1e3);
	/* Where the cores went: fewer busy than there are means that the
	 * requesters waited (on commits) with a core idle. */
	printf("cpu  %s  ours %.3f ms per certificate%s", figure, cpu0 * 1e3 / (double)n,
	       pg != NULL ? "" : "\n");
	if (pg != NULL)
		printf(", postgres %.3f ms (every process of the cluster); cores busy %.2f of %ld\n",
		       pg0 * 1e3 / (double)n, (cpu0 + pg0) / secs, sysconf(_SC_NPROCESSORS_ONLN));
	if (store != NULL && batches0 > 0)
		printf("commits  %s  %lu transactions for %lu certificates: %.1f per transaction "
		       "(largest so far %lu), %.3f ms apart\n", figure, batches0, rows0,
		       (double)rows0 / (double)batches0, max_batch, secs * 1e3 / (double)batches0);
	per_s = (double)n / secs;
	goal = 2.0 * (double)n / t_mem;
	/* What this CPU per certificate allows at best, every core busy: the
	 * ceiling that waiting on commits leaves unused, and that only less
	 * CPU per certificate (ours or the database's) can raise. */
	if (pg != NULL && cpu0 + pg0 > 0) {
		double best = (double)sysconf(_SC_NPROCESSORS_ONLN) * (double)n / (cpu0 + pg0);
		printf("ceiling  %s  %.1f per second with every core busy at this CPU per certificate "
		       "(ratio %.3f)\n", figure, best, best / goal);
	}
	printf("ratio  %s/(2*ca_issue_mem_p256)  %.3f\n", figure, per_s / goal);
	if (store != NULL)
		printf("goal: (c) >= 50%% of 2x(b): %.1f >= %.1f per second: %s\n", per_s,
		       goal / 2, per_s >= goal / 2 ? "met" : "NOT met");

	PQfinish(pg);
	pthread_barrier_destroy(&start);
	for (long i = 0; i < n; i++)
		OPENSSL_free(csrs[i]);
	free(csrs);
	free(lens);
	free(lat);
	free(w);
	free(th);
	ca_ctx_free(ctx);
	db_store_close(store);
	return secs;
}

int main(int argc, char **argv)
{
	struct p11_args p11 = { 0 };
	const char *dsn = NULL;
	int threads = 8;
	long n = DEFAULT_N;
	unsigned char *der = NULL;
	int len;
	EVP_PKEY *ca_pk;
	ca_ctx *mem;
	X509 *tbs;
	double t_verify, t_sign, t_floor, t_issue;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--p11") == 0 && i + 4 < argc) {
			p11 = (struct p11_args){ argv[i + 1], argv[i + 2], argv[i + 3], argv[i + 4] };
			i += 4;
		} else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
			dsn = argv[++i];
		} else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			long t = strtol(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || t < 1 || t > 1024)
				usage();
			threads = (int)t;
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			n = strtol(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || n < 1 || n > 100000000)
				usage();
		} else {
			usage();
		}
	}

	if ((len = make_csr(&der)) <= 0)
		die("cannot make the request", NULL);
	if ((ca_pk = EVP_EC_gen("P-256")) == NULL || EVP_PKEY_up_ref(ca_pk) != 1)
		die("cannot make the CA key", NULL);
	mem = make_ctx("bench-mem", sig_mem_key(ca_pk), NULL); /* the context owns one reference */
	tbs = prepared_tbs(mem, der, len);

	printf("# name                  N    seconds  per_second   (one thread, CLOCK_MONOTONIC)\n");
	t_verify = bench_csr_verify(der, len, n);
	print_figure("openssl_csr_verify", n, t_verify);
	t_sign = bench_sign(tbs, ca_pk, n);
	print_figure("openssl_x509_sign", n, t_sign);
	t_floor = t_verify + t_sign;
	print_figure("openssl_floor", n, t_floor);
	t_issue = bench_issue(mem, der, len, n);
	print_figure("ca_issue_mem_p256", n, t_issue);
	printf("ratio  ca_issue_mem_p256/openssl_floor  %.3f\n", t_floor / t_issue);

	if (dsn != NULL) {
		printf("# %d threads on all cores, each issuing from its own requests\n", threads);
		(void)bench_store(NULL, threads, n, t_issue);
		(void)bench_store(dsn, threads, n, t_issue);
	}

	if (p11.module != NULL) {
		sec_str pin = { 0 };
		struct ca_err err = { 0 };
		sig_p11 *tok;
		sig_key *key;
		ca_ctx *hsm;
		double t_sign_p11, t_issue_p11;

		if (sec_read_file(&pin, p11.pin_file) != 0) {
			fprintf(stderr, "bench_issue: cannot read PIN file %s: %s\n", p11.pin_file, strerror(errno));
			return 1;
		}
		tok = sig_p11_open(p11.module, p11.token, &pin, &err);
		sec_clear(&pin);
		if (tok == NULL)
			die("sig_p11_open", &err);
		if ((key = sig_p11_key(tok, p11.key_label, &err)) == NULL)
			die("sig_p11_key", &err);
		hsm = make_ctx("bench-p11", key, NULL);
		t_sign_p11 = bench_sign(tbs, sig_privkey(key), n);
		print_figure("openssl_x509_sign_p11", n, t_sign_p11);
		t_issue_p11 = bench_issue(hsm, der, len, n);
		print_figure("ca_issue_p11_p256", n, t_issue_p11);
		printf("ratio  ca_issue_p11_p256/openssl_floor  %.3f\n", t_floor / t_issue_p11);
		printf("ratio  ca_issue_p11_p256/(openssl_csr_verify+openssl_x509_sign_p11)  %.3f\n",
		       (t_verify + t_sign_p11) / t_issue_p11);
		ca_ctx_free(hsm); /* closes the key before the token */
		sig_p11_close(tok);
	}

	X509_free(tbs);
	ca_ctx_free(mem);
	EVP_PKEY_free(ca_pk);
	OPENSSL_free(der);
	return 0;
}
