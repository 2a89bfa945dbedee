/* bench_ocspgen: the data of the OCSP benchmark (tests/bench/ocsp.sh).
 *
 *   bench_ocspgen --issuer CA.pem --ca NAME [-n ROWS] [--revoked-permille P] [--sample K]
 *                 [--seed S] --index FILE --revocations FILE --requests FILE --expect FILE
 *
 * Writes, from one deterministic stream of serials (16 octets, the first in
 * 0x01..0x7f, so each is a positive DER INTEGER of 16 octets; in the store
 * as 32 lower-case hex digits):
 *   stdout         ROWS certificate rows of CA NAME in PostgreSQL COPY text
 *                  format, columns (serial, ca, status, der, not_before,
 *                  not_after, profile, issued_at), in serial order (so the
 *                  primary key grows at its end); status 'issued', profile
 *                  'bench-ocsp', der a stand-in (the serial's DER INTEGER);
 *                  valid from 30 days ago for a year;
 *   --revocations  COPY rows (serial, ca, revoked_at, reason, crl_shard,
 *                  not_after) for P per mille of them (default 10 = 1%),
 *                  revoked a day ago, reason superseded (4);
 *   --index        the same certificates as an OpenSSL CA database
 *                  (index.txt, as `openssl ca` writes it) for `openssl ocsp`;
 *   --requests     K (default 2000) DER OCSPRequests for rows spread over the
 *                  whole set, one SHA-1 CertID each for the issuer, no nonce
 *                  (RFC 5019 §2.1), as records of a 4-byte big-endian length
 *                  and the DER (loadgen --bodies reads them);
 *   --expect       one line per request: "<serial hex> good|revoked".
 * ROWS up to 10,000,000. Prints a summary to stderr. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define SERIAL_OCTETS 16
#define MAX_ROWS 10000000L
#define DAY 86400L
#define REASON_SUPERSEDED 4

struct row {
	unsigned char s[SERIAL_OCTETS];
	unsigned char revoked;
};

static int cmp_row(const void *x, const void *y)
{
	return memcmp(((const struct row *)x)->s, ((const struct row *)y)->s, SERIAL_OCTETS);
}

struct args {
	const char *issuer, *ca, *index, *revocations, *requests, *expect;
	long rows, sample;
	unsigned permille;
	uint64_t seed;
};

/* splitmix64: fast, deterministic, good enough for stand-in serials. */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fmt_pg(char *out, size_t cap, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M:%S+00", &tm);
}

/* OpenSSL's CA database keeps UTCTime (YYMMDDHHMMSSZ) before 2050. */
static void fmt_utc(char *out, size_t cap, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, cap, "%y%m%d%H%M%SZ", &tm);
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out)
{
	char *e;

	errno = 0;
	long v = strtol(s, &e, 10);
	if (errno != 0 || e == s || *e != '\0' || v < lo || v > hi) {
		fprintf(stderr, "bench_ocspgen: %s must be %ld..%ld\n", name, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	long v;

	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (val == NULL) {
			fprintf(stderr, "bench_ocspgen: %s needs a value\n", k);
			return -1;
		}
		i++;
		if (strcmp(k, "--issuer") == 0)
			a->issuer = val;
		else if (strcmp(k, "--ca") == 0)
			a->ca = val;
		else if (strcmp(k, "--index") == 0)
			a->index = val;
		else if (strcmp(k, "--revocations") == 0)
			a->revocations = val;
		else if (strcmp(k, "--requests") == 0)
			a->requests = val;
		else if (strcmp(k, "--expect") == 0)
			a->expect = val;
		else if (strcmp(k, "-n") == 0) {
			if (parse_long(k, val, 1, MAX_ROWS, &a->rows) != 0)
				return -1;
		} else if (strcmp(k, "--sample") == 0) {
			if (parse_long(k, val, 1, 1000000, &a->sample) != 0)
				return -1;
		} else if (strcmp(k, "--revoked-permille") == 0) {
			if (parse_long(k, val, 0, 1000, &v) != 0)
				return -1;
			a->permille = (unsigned)v;
		} else if (strcmp(k, "--seed") == 0) {
			if (parse_long(k, val, 0, 0x7fffffffL, &v) != 0)
				return -1;
			a->seed = (uint64_t)v;
		} else {
			fprintf(stderr, "bench_ocspgen: unknown option %s\n", k);
			return -1;
		}
	}
	if (a->issuer == NULL || a->ca == NULL || a->index == NULL || a->revocations == NULL ||
	    a->requests == NULL || a->expect == NULL) {
		fprintf(stderr, "usage: bench_ocspgen --issuer CA.pem --ca NAME [-n ROWS] [--revoked-permille P]\n"
				"       [--sample K] [--seed S] --index FILE --revocations FILE --requests FILE --expect FILE\n");
		return -1;
	}
	/* The CA name goes into COPY rows as is: keep it plain. */
	if (strspn(a->ca, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(a->ca) || a->ca[0] == '\0') {
		fprintf(stderr, "bench_ocspgen: --ca must be [a-z0-9_-]+\n");
		return -1;
	}
	if (a->sample > a->rows)
		a->sample = a->rows;
	return 0;
}

/* Append one OCSPRequest for serial to the requests file. 0 or -1. */
static int write_request(FILE *f, X509 *issuer, const unsigned char *serial)
{
	OCSP_REQUEST *req = NULL;
	OCSP_CERTID *id = NULL;
	ASN1_INTEGER *sn = NULL;
	BIGNUM *bn = NULL;
	unsigned char *der = NULL;
	int len, rc = -1;

	if ((bn = BN_bin2bn(serial, SERIAL_OCTETS, NULL)) == NULL || (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer), X509_get0_pubkey_bitstr(issuer),
				   sn)) == NULL ||
	    (req = OCSP_REQUEST_new()) == NULL || OCSP_request_add0_id(req, id) == NULL)
		goto out;
	id = NULL; /* the request owns it */
	if ((len = i2d_OCSP_REQUEST(req, &der)) <= 0)
		goto out;
	unsigned char hdr[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
				 (unsigned char)len };
	if (fwrite(hdr, 1, 4, f) != 4 || fwrite(der, 1, (size_t)len, f) != (size_t)len)
		goto out;
	rc = 0;
out:
	OPENSSL_free(der);
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(req);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a = { .rows = 1000000, .sample = 2000, .permille = 10, .seed = 1 };
	FILE *fin = NULL, *fidx = NULL, *frev = NULL, *freq = NULL, *fexp = NULL;
	X509 *issuer = NULL;
	int rc = 1;
	static char outbuf[1 << 20];

	if (parse_args(argc, argv, &a) != 0)
		return 2;
	if ((fin = fopen(a.issuer, "r")) == NULL || (issuer = PEM_read_X509(fin, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "bench_ocspgen: cannot read a PEM certificate from %s\n", a.issuer);
		goto out;
	}
	if ((fidx = fopen(a.index, "w")) == NULL || (frev = fopen(a.revocations, "w")) == NULL ||
	    (freq = fopen(a.requests, "wb")) == NULL || (fexp = fopen(a.expect, "w")) == NULL) {
		fprintf(stderr, "bench_ocspgen: cannot create the output files: %s\n", strerror(errno));
		goto out;
	}
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));

	time_t now = time(NULL);
	char nb[32], na[32], ra[32], na_utc[16], ra_utc[16];
	fmt_pg(nb, sizeof(nb), now - 30 * DAY);
	fmt_pg(na, sizeof(na), now + 335 * DAY);
	fmt_pg(ra, sizeof(ra), now - DAY);
	fmt_utc(na_utc, sizeof(na_utc), now + 335 * DAY);
	fmt_utc(ra_utc, sizeof(ra_utc), now - DAY);

	/* All serials first, sorted, so that COPY appends to the primary key's
	 * B-tree instead of writing all over it (several times faster). */
	struct row *rows = malloc((size_t)a.rows * sizeof(*rows));
	if (rows == NULL) {
		fprintf(stderr, "bench_ocspgen: out of memory\n");
		goto out;
	}
	uint64_t state = a.seed;
	for (long i = 0; i < a.rows; i++) {
		uint64_t x = next_u64(&state), y = next_u64(&state), r = next_u64(&state);
		for (int k = 0; k < 8; k++) {
			rows[i].s[k] = (unsigned char)(x >> (8 * k));
			rows[i].s[8 + k] = (unsigned char)(y >> (8 * k));
		}
		rows[i].s[0] = (unsigned char)(1 + rows[i].s[0] % 0x7f); /* positive, no leading zero octet */
		rows[i].revoked = r % 1000 < a.permille;
	}
	qsort(rows, (size_t)a.rows, sizeof(*rows), cmp_row);

	long stride = a.rows / a.sample, revoked = 0, sampled = 0, sampled_revoked = 0;
	static const char hex[] = "0123456789abcdef", HEX[] = "0123456789ABCDEF";
	for (long i = 0; i < a.rows; i++) {
		const unsigned char *s = rows[i].s;
		char sh[2 * SERIAL_OCTETS + 1], SH[2 * SERIAL_OCTETS + 1];
		for (int k = 0; k < SERIAL_OCTETS; k++) {
			sh[2 * k] = hex[s[k] >> 4];
			sh[2 * k + 1] = hex[s[k] & 15];
			SH[2 * k] = HEX[s[k] >> 4];
			SH[2 * k + 1] = HEX[s[k] & 15];
		}
		sh[2 * SERIAL_OCTETS] = SH[2 * SERIAL_OCTETS] = '\0';
		int is_revoked = rows[i].revoked;

		/* The stand-in DER: the serial's INTEGER (02 10 ...). */
		printf("%s\t%s\tissued\t\\\\x0210%s\t%s\t%s\tbench-ocsp\t%s\n", sh, a.ca, sh, nb, na, nb);
		if (is_revoked) {
			fprintf(frev, "%s\t%s\t%s\t%d\t0\t%s\n", sh, a.ca, ra, REASON_SUPERSEDED, na);
			fprintf(fidx, "R\t%s\t%s,superseded\t%s\tunknown\t/CN=bench-%ld\n", na_utc, ra_utc, SH, i);
			revoked++;
		} else {
			fprintf(fidx, "V\t%s\t\t%s\tunknown\t/CN=bench-%ld\n", na_utc, SH, i);
		}
		/* Every stride-th row, the offset moving so the sample is not periodic. */
		if (sampled < a.sample && i == sampled * stride + (sampled * 7919) % stride) {
			if (write_request(freq, issuer, s) != 0) {
				fprintf(stderr, "bench_ocspgen: cannot build an OCSP request\n");
				ERR_print_errors_fp(stderr);
				free(rows);
				goto out;
			}
			fprintf(fexp, "%s %s\n", sh, is_revoked ? "revoked" : "good");
			sampled++;
			sampled_revoked += is_revoked;
		}
	}
	free(rows);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "bench_ocspgen: writing the rows failed\n");
		goto out;
	}
	fprintf(stderr, "bench_ocspgen: %ld rows (%ld revoked), %ld requests (%ld for revoked serials)\n", a.rows,
		revoked, sampled, sampled_revoked);
	rc = 0;
out:
	if (fin != NULL)
		fclose(fin);
	X509_free(issuer);
	/* fclose flushes: a failed write of the last buffer is a failure too. */
	if (fidx != NULL && fclose(fidx) != 0)
		rc = 1;
	if (frev != NULL && fclose(frev) != 0)
		rc = 1;
	if (freq != NULL && fclose(freq) != 0)
		rc = 1;
	if (fexp != NULL && fclose(fexp) != 0)
		rc = 1;
	return rc;
}
