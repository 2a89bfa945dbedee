/* bench_issue: certificates per second through ca_issue, next to the OpenSSL
 * floor for the same work, on one thread.
 *
 *   bench_issue [--p11 MODULE TOKEN PINFILE KEYLABEL] [-n N]
 *
 * Always measured:
 *   openssl_csr_verify    d2i_X509_REQ + X509_REQ_verify of a P-256 request
 *   openssl_x509_sign     X509_sign of a prepared TBS with a software P-256 key
 *   openssl_floor         the two above per certificate (the least any CA pays)
 *   ca_issue_mem_p256     ca_issue, no store, CA key in memory (sig_mem_key)
 * With --p11 (the CA key on a PKCS#11 token, same CA profile and request):
 *   openssl_x509_sign_p11 X509_sign with the token key
 *   ca_issue_p11_p256     ca_issue with the token key
 * One line per figure: name  N  seconds  per_second; then the ratios of
 * ca_issue to the floor. Times are CLOCK_MONOTONIC. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "mintca/ca.h"
#include "mintca/secret.h"
#include "mintca/sig.h"

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
	fprintf(stderr, "usage: bench_issue [--p11 MODULE TOKEN PINFILE KEYLABEL] [-n N]\n");
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
 * (so the certificate always matches the key) and one profile. */
static ca_ctx *make_ctx(const char *name, sig_key *key)
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
	if ((ctx = ca_ctx_new(name, key, cert, NULL, NULL, &err)) == NULL)
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

int main(int argc, char **argv)
{
	struct p11_args p11 = { 0 };
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
	mem = make_ctx("bench-mem", sig_mem_key(ca_pk)); /* the context owns one reference */
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
		hsm = make_ctx("bench-p11", key);
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
