/* Secrets: wiped on free, read from 0600 files, passwords stored as PBKDF2. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "mintca/secret.h"

#define SEC_FILE_MAX 1024
#define HASH_PREFIX "pbkdf2-sha256$"
#define SALT_LEN 16
#define DK_LEN 32

int sec_set(sec_str *s, const char *v, size_t len)
{
	sec_clear(s);
	if ((s->buf = malloc(len + 1)) == NULL)
		return -1;
	memcpy(s->buf, v, len);
	s->buf[len] = '\0';
	s->len = len;
	return 0;
}

void sec_clear(sec_str *s)
{
	if (s->buf != NULL) {
		OPENSSL_cleanse(s->buf, s->len);
		free(s->buf);
	}
	s->buf = NULL;
	s->len = 0;
}

int sec_read_file(sec_str *s, const char *path)
{
	char buf[SEC_FILE_MAX + 1];
	size_t n;
	FILE *f = fopen(path, "r");
	int rc;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n > SEC_FILE_MAX) {
		OPENSSL_cleanse(buf, sizeof(buf));
		errno = EFBIG;
		return -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	rc = sec_set(s, buf, n);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

static int derive(const char *pw, size_t pwlen, const unsigned char *salt, size_t saltlen,
		  unsigned iter, unsigned char dk[DK_LEN])
{
	return PKCS5_PBKDF2_HMAC(pw, (int)pwlen, salt, (int)saltlen, (int)iter, EVP_sha256(),
				 DK_LEN, dk) == 1 ? 0 : -1;
}

char *sec_hash_password(const char *password, unsigned iterations)
{
	unsigned char salt[SALT_LEN], dk[DK_LEN];
	char salt64[32], dk64[64], *out;
	size_t cap = sizeof(HASH_PREFIX) + 12 + sizeof(salt64) + sizeof(dk64);

	/* The same bounds sec_check_password accepts. */
	if (iterations < 1000 || iterations > 10000000 || RAND_bytes(salt, sizeof(salt)) != 1 ||
	    derive(password, strlen(password), salt, sizeof(salt), iterations, dk) != 0)
		return NULL;
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)dk64, dk, sizeof(dk));
	if ((out = malloc(cap)) != NULL)
		snprintf(out, cap, HASH_PREFIX "%u$%s$%s", iterations, salt64, dk64);
	OPENSSL_cleanse(dk, sizeof(dk));
	return out;
}

/* Split a hash string into its parts; 0 or -1. */
static int parse_hash(const char *hash, unsigned *iter, unsigned char salt[SALT_LEN],
		      unsigned char dk[DK_LEN])
{
	char s64[32], d64[64];
	unsigned char tmp[64];
	const char *p, *q;
	char *end;
	unsigned long it;

	if (strncmp(hash, HASH_PREFIX, strlen(HASH_PREFIX)) != 0)
		return -1;
	p = hash + strlen(HASH_PREFIX);
	it = strtoul(p, &end, 10);
	if (end == p || *end != '$' || it < 1000 || it > 10000000)
		return -1;
	p = end + 1;
	if ((q = strchr(p, '$')) == NULL || (size_t)(q - p) >= sizeof(s64) ||
	    strlen(q + 1) >= sizeof(d64))
		return -1;
	memcpy(s64, p, (size_t)(q - p));
	s64[q - p] = '\0';
	strcpy(d64, q + 1);
	/* EVP_DecodeBlock keeps the padding bytes: 16 bytes -> 24 chars -> 18 out. */
	if (strlen(s64) != 24 || EVP_DecodeBlock(tmp, (unsigned char *)s64, 24) != 18)
		return -1;
	memcpy(salt, tmp, SALT_LEN);
	if (strlen(d64) != 44 || EVP_DecodeBlock(tmp, (unsigned char *)d64, 44) != 33)
		return -1;
	memcpy(dk, tmp, DK_LEN);
	*iter = (unsigned)it;
	return 0;
}

int sec_hash_valid(const char *hash)
{
	unsigned iter;
	unsigned char salt[SALT_LEN], dk[DK_LEN];

	return parse_hash(hash, &iter, salt, dk);
}

int sec_check_password(const char *hash, const char *password, size_t pwlen)
{
	unsigned iter;
	unsigned char salt[SALT_LEN], want[DK_LEN], got[DK_LEN];
	int ok;

	if (parse_hash(hash, &iter, salt, want) != 0)
		return -1;
	if (derive(password, pwlen, salt, sizeof(salt), iter, got) != 0)
		return -1;
	ok = CRYPTO_memcmp(want, got, DK_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

/* --- verified credentials ------------------------------------------------ */

#define VERIFIED_SLOTS 256

struct verified {
	pthread_mutex_t mu;
	unsigned char mac[32];
	time_t until;             /* 0: empty */
};

static struct verified verified[VERIFIED_SLOTS];
static unsigned char verified_key[32];
static pthread_once_t verified_once = PTHREAD_ONCE_INIT;
static int verified_ready;

static void verified_init(void)
{
	for (size_t i = 0; i < VERIFIED_SLOTS; i++)
		pthread_mutex_init(&verified[i].mu, NULL);
	verified_ready = RAND_bytes(verified_key, sizeof(verified_key)) == 1;
}

/* HMAC over user, hash and password, each length-prefixed. 0 or -1. */
static int verified_mac(const char *user, const char *hash, const char *pw, size_t pwlen,
			unsigned char mac[32])
{
	const void *parts[3] = { user, hash, pw };
	size_t lens[3] = { strlen(user), strlen(hash), pwlen }, total = 24, off = 0, n = 0;
	unsigned char *buf;
	int rc;

	for (int i = 0; i < 3; i++)
		total += lens[i];
	if ((buf = malloc(total)) == NULL)
		return -1;
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 8; k++)
			buf[off++] = (unsigned char)(lens[i] >> (8 * (7 - k)));
		memcpy(buf + off, parts[i], lens[i]);
		off += lens[i];
	}
	rc = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, verified_key, sizeof(verified_key), buf, total,
		       mac, 32, &n) != NULL && n == 32 ? 0 : -1;
	OPENSSL_cleanse(buf, total);
	free(buf);
	return rc;
}

static size_t verified_slot(const char *user)
{
	size_t h = 5381;

	for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
		h = h * 33 + *p;
	return h % VERIFIED_SLOTS;
}

int sec_check_password_cached(const char *user, const char *hash, const char *password, size_t pwlen)
{
	unsigned char mac[32];
	struct verified *v;
	time_t now = time(NULL);
	int hit, ok;

	pthread_once(&verified_once, verified_init);
	if (!verified_ready || verified_mac(user, hash, password, pwlen, mac) != 0)
		return sec_check_password(hash, password, pwlen);
	v = &verified[verified_slot(user)];
	pthread_mutex_lock(&v->mu);
	hit = v->until > now && CRYPTO_memcmp(v->mac, mac, sizeof(mac)) == 0;
	pthread_mutex_unlock(&v->mu);
	if (hit) {
		OPENSSL_cleanse(mac, sizeof(mac));
		return 1;
	}
	ok = sec_check_password(hash, password, pwlen);
	if (ok == 1) {
		pthread_mutex_lock(&v->mu);
		memcpy(v->mac, mac, sizeof(mac));
		v->until = now + SEC_VERIFIED_TTL_S;
		pthread_mutex_unlock(&v->mu);
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* --- unknown users ----------------------------------------------------------- */

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define DUMMY_ITERATIONS 1000  /* fuzz targets: speed over timing */
#else
#define DUMMY_ITERATIONS 50000 /* mintctl passwd's default */
#endif

static char *dummy_hash;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
	dummy_hash = sec_hash_password("mintca: no such user", DUMMY_ITERATIONS);
}

void sec_check_password_unknown_user(const char *password, size_t pwlen)
{
	pthread_once(&dummy_once, dummy_init);
	if (dummy_hash != NULL)
		(void)sec_check_password(dummy_hash, password, pwlen);
}
