/* Secrets: PBKDF2 password hashes (sec_hash_password, sec_check_password,
 * sec_hash_valid) and secret files (sec_read_file). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include "mintca/secret.h"
#include "suites.h"

#define ITER 1000 /* the lowest count the checker accepts: keeps tests fast */
#define SALT "c2FsdHNhbHRzYWx0c2FsdA=="                      /* 16 bytes */
#define DK "ZGVyaXZlZGRlcml2ZWRkZXJpdmVkZGVyaXZlZDEyMzQ=" /* 32 bytes */

/* ---- password hashes ---- */

static char long_pw[1025];

static const struct {
	const char *what;
	const char *pw; /* NULL: the 1024-byte password */
} pw_rows[] = {
	{ "empty password", "" },
	{ "1-byte password", "x" },
	{ "ordinary password", "correct horse battery staple" },
	{ "UTF-8 password", "p\xc3\xa4ssw\xc3\xb6rd" },
	{ "1024-byte password", NULL },
};

static const char *row_pw(int i)
{
	if (pw_rows[i].pw != NULL)
		return pw_rows[i].pw;
	for (size_t j = 0; j < sizeof(long_pw) - 1; j++)
		long_pw[j] = (char)('!' + j % 90);
	long_pw[sizeof(long_pw) - 1] = '\0';
	return long_pw;
}

START_TEST(password_hash_accepts_right_and_refuses_wrong_password)
{
	const char *pw = row_pw(_i);
	size_t len = strlen(pw);
	char *h = sec_hash_password(pw, ITER);
	char *wrong = malloc(len + 2);

	ck_assert_msg(h != NULL, "%s: no hash", pw_rows[_i].what);
	ck_assert_msg(strncmp(h, "pbkdf2-sha256$1000$", 19) == 0, "%s: hash '%s'", pw_rows[_i].what, h);
	ck_assert_int_eq(sec_hash_valid(h), 0);
	ck_assert_msg(sec_check_password(h, pw, len) == 1, "%s: right password refused", pw_rows[_i].what);
	/* One more byte. */
	memcpy(wrong, pw, len);
	wrong[len] = 'x';
	wrong[len + 1] = '\0';
	ck_assert_msg(sec_check_password(h, wrong, len + 1) == 0, "%s: longer password accepted",
		      pw_rows[_i].what);
	if (len > 0) {
		/* One byte less, and the last byte changed. */
		ck_assert_msg(sec_check_password(h, pw, len - 1) == 0, "%s: prefix accepted", pw_rows[_i].what);
		memcpy(wrong, pw, len);
		wrong[len - 1] ^= 0x01;
		ck_assert_msg(sec_check_password(h, wrong, len) == 0, "%s: changed byte accepted",
			      pw_rows[_i].what);
	}
	free(wrong);
	free(h);
}
END_TEST

START_TEST(password_hash_uses_fresh_salt_each_time)
{
	char *a = sec_hash_password("same password", ITER);
	char *b = sec_hash_password("same password", ITER);

	ck_assert(a != NULL && b != NULL);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(sec_check_password(a, "same password", 13), 1);
	ck_assert_int_eq(sec_check_password(b, "same password", 13), 1);
	free(a);
	free(b);
}
END_TEST

static const struct {
	const char *what;
	const char *hash;
} malformed_rows[] = {
	{ "empty string", "" },
	{ "prefix only, no separator", "pbkdf2-sha256" },
	{ "prefix only", "pbkdf2-sha256$" },
	{ "wrong algorithm", "pbkdf2-sha1$1000$" SALT "$" DK },
	{ "upper-case prefix", "PBKDF2-SHA256$1000$" SALT "$" DK },
	{ "no iterations", "pbkdf2-sha256$$" SALT "$" DK },
	{ "iterations below 1000", "pbkdf2-sha256$999$" SALT "$" DK },
	{ "iterations above 10000000", "pbkdf2-sha256$10000001$" SALT "$" DK },
	{ "negative iterations", "pbkdf2-sha256$-1000$" SALT "$" DK },
	{ "iterations overflow", "pbkdf2-sha256$99999999999999999999999$" SALT "$" DK },
	{ "letters after iterations", "pbkdf2-sha256$1000x$" SALT "$" DK },
	{ "no hash part", "pbkdf2-sha256$1000$" SALT },
	{ "empty hash part", "pbkdf2-sha256$1000$" SALT "$" },
	{ "empty salt", "pbkdf2-sha256$1000$$" DK },
	{ "salt not base64", "pbkdf2-sha256$1000$!!!!!!!!!!!!!!!!!!!!!!!!$" DK },
	{ "hash not base64", "pbkdf2-sha256$1000$" SALT "$ZGVyaXZlZGRlcml2ZWRkZXJpdmVkZGVyaXZlZDEyM*Q=" },
	{ "salt too short", "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2Fs$" DK },
	{ "hash too short", "pbkdf2-sha256$1000$" SALT "$ZGVyaXZlZGRlcml2ZWRkZXJpdmVkZGVyaXZlZA==" },
	{ "hash too long", "pbkdf2-sha256$1000$" SALT "$" DK "AAAA" },
	{ "extra field", "pbkdf2-sha256$1000$" SALT "$" DK "$x" },
	{ "trailing newline", "pbkdf2-sha256$1000$" SALT "$" DK "\n" },
	{ "salt over 31 characters", "pbkdf2-sha256$1000$" SALT SALT "$" DK },
};

START_TEST(password_check_refuses_malformed_hash)
{
	const char *h = malformed_rows[_i].hash;

	ck_assert_msg(sec_hash_valid(h) == -1, "%s: sec_hash_valid accepted '%s'", malformed_rows[_i].what, h);
	ck_assert_msg(sec_check_password(h, "pw", 2) == -1, "%s: sec_check_password did not return -1",
		      malformed_rows[_i].what);
}
END_TEST

/* The request-path check remembers matches only, per user, hash and
 * password: a wrong password, another user or a changed hash never hits. */
START_TEST(cached_check_remembers_matches_only)
{
	char *h1 = sec_hash_password("correct horse", 1000), *h2 = sec_hash_password("correct horse", 1000);

	ck_assert(h1 != NULL && h2 != NULL);
	ck_assert_int_eq(sec_check_password_cached("alice", h1, "correct horse", 13), 1);
	ck_assert_int_eq(sec_check_password_cached("alice", h1, "correct horse", 13), 1);
	ck_assert_int_eq(sec_check_password_cached("alice", h1, "correct horsE", 13), 0);
	ck_assert_int_eq(sec_check_password_cached("alice", h1, "correct hors", 12), 0);
	ck_assert_int_eq(sec_check_password_cached("alice", h1, "", 0), 0);
	/* the same password under a new hash (reload): verified again, still 1 */
	ck_assert_int_eq(sec_check_password_cached("alice", h2, "correct horse", 13), 1);
	ck_assert_int_eq(sec_check_password_cached("bob", h1, "correct horse", 13), 1);
	ck_assert_int_eq(sec_check_password_cached("bob", "pbkdf2-sha256$x", "correct horse", 13), -1);
	free(h1);
	free(h2);
}
END_TEST

START_TEST(password_hash_iteration_bounds_are_inclusive)
{
	/* Same shape as the malformed rows: only the count differs. */
	ck_assert_int_eq(sec_hash_valid("pbkdf2-sha256$1000$" SALT "$" DK), 0);
	ck_assert_int_eq(sec_hash_valid("pbkdf2-sha256$10000000$" SALT "$" DK), 0);
	/* Well-formed but not this password's hash: 0, not -1. */
	ck_assert_int_eq(sec_check_password("pbkdf2-sha256$1000$" SALT "$" DK, "pw", 2), 0);
}
END_TEST

/* ---- secret files ---- */

static char dir[64];
static char file[128];

static void setup_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/mintca-secret-XXXXXX", tmp && tmp[0] && strlen(tmp) < 30 ? tmp : "/tmp");
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(file, sizeof(file), "%s/secret", dir);
}

static void teardown_dir(void)
{
	unlink(file);
	rmdir(dir);
}

static void write_file(const char *data, size_t len)
{
	FILE *f = fopen(file, "w");

	ck_assert(f != NULL);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static const struct {
	const char *what;
	const char *data;
	size_t len;
	const char *want;
	size_t want_len;
} read_rows[] = {
	{ "one trailing newline is removed", "s3cret\n", 7, "s3cret", 6 },
	{ "no newline: unchanged", "s3cret", 6, "s3cret", 6 },
	{ "empty file: empty secret", "", 0, "", 0 },
	{ "only a newline: empty secret", "\n", 1, "", 0 },
	{ "inner newline is kept", "a\nb\n", 4, "a\nb", 3 },
	{ "leading spaces are kept", "  pin\n", 6, "  pin", 5 },
	{ "a NUL byte is kept", "ab\0cd\n", 6, "ab\0cd", 5 },
};

START_TEST(read_file_returns_content_less_trailing_newline)
{
	sec_str s = { 0 };

	write_file(read_rows[_i].data, read_rows[_i].len);
	ck_assert_msg(sec_read_file(&s, file) == 0, "%s: %s", read_rows[_i].what, strerror(errno));
	ck_assert_msg(s.len == read_rows[_i].want_len, "%s: length %zu", read_rows[_i].what, s.len);
	ck_assert_msg(memcmp(s.buf, read_rows[_i].want, s.len) == 0, "%s: wrong content", read_rows[_i].what);
	ck_assert_int_eq(s.buf[s.len], '\0');
	sec_clear(&s);
	ck_assert_ptr_null(s.buf);
	ck_assert_uint_eq(s.len, 0);
}
END_TEST

static const struct {
	size_t size;
	int newline; /* last byte is '\n' */
	int ok;
} size_rows[] = {
	{ 1024, 0, 1 }, /* the maximum */
	{ 1024, 1, 1 },
	{ 1025, 0, 0 },
	{ 1025, 1, 0 },
	{ 2048, 1, 0 }, /* 2 KiB */
	{ 65536, 0, 0 },
};

START_TEST(read_file_takes_at_most_1_kib)
{
	size_t n = size_rows[_i].size;
	char *data = malloc(n);
	sec_str s = { 0 };
	int rc;

	memset(data, 'k', n);
	if (size_rows[_i].newline)
		data[n - 1] = '\n';
	write_file(data, n);
	errno = 0;
	rc = sec_read_file(&s, file);
	if (size_rows[_i].ok) {
		ck_assert_msg(rc == 0, "%zu bytes refused", n);
		ck_assert_uint_eq(s.len, n - (size_t)size_rows[_i].newline);
		ck_assert(memcmp(s.buf, data, s.len) == 0);
	} else {
		ck_assert_msg(rc == -1, "%zu bytes accepted", n);
		ck_assert_int_eq(errno, EFBIG);
		ck_assert_ptr_null(s.buf);
	}
	sec_clear(&s);
	free(data);
}
END_TEST

START_TEST(read_file_fails_on_missing_file)
{
	sec_str s = { 0 };

	unlink(file);
	errno = 0;
	ck_assert_int_eq(sec_read_file(&s, file), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(s.buf);
}
END_TEST

START_TEST(set_copies_and_clear_empties)
{
	sec_str s = { 0 };

	sec_clear(&s); /* safe on an empty secret */
	ck_assert_int_eq(sec_set(&s, "abc", 3), 0);
	ck_assert_uint_eq(s.len, 3);
	ck_assert_str_eq(s.buf, "abc");
	ck_assert_int_eq(sec_set(&s, "de", 2), 0); /* replaces, frees the old one */
	ck_assert_str_eq(s.buf, "de");
	sec_clear(&s);
	ck_assert_ptr_null(s.buf);
	ck_assert_uint_eq(s.len, 0);
}
END_TEST

Suite *secret_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *hash = tcase_create("password_hash");
	TCase *files = tcase_create("secret_file");

	tcase_set_timeout(hash, 30);
	tcase_add_loop_test(hash, password_hash_accepts_right_and_refuses_wrong_password, 0,
			    (int)(sizeof(pw_rows) / sizeof(pw_rows[0])));
	tcase_add_test(hash, password_hash_uses_fresh_salt_each_time);
	tcase_add_loop_test(hash, password_check_refuses_malformed_hash, 0,
			    (int)(sizeof(malformed_rows) / sizeof(malformed_rows[0])));
	tcase_add_test(hash, password_hash_iteration_bounds_are_inclusive);
	tcase_add_test(hash, cached_check_remembers_matches_only);
	suite_add_tcase(s, hash);

	/* Unchecked: made and removed by the parent, so a failing test (whose
	 * child exits at once) leaves nothing behind. */
	tcase_add_unchecked_fixture(files, setup_dir, teardown_dir);
	tcase_add_loop_test(files, read_file_returns_content_less_trailing_newline, 0,
			    (int)(sizeof(read_rows) / sizeof(read_rows[0])));
	tcase_add_loop_test(files, read_file_takes_at_most_1_kib, 0,
			    (int)(sizeof(size_rows) / sizeof(size_rows[0])));
	tcase_add_test(files, read_file_fails_on_missing_file);
	tcase_add_test(files, set_copies_and_clear_empties);
	suite_add_tcase(s, files);
	return s;
}
