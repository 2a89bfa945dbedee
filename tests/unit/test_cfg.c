/* cfg_load: a valid file loads with its defaults; each broken file is refused
 * with CA_E_CONFIG and a detail naming the file, the line and the key path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include "mintca/cfg.h"
#include "suites.h"

#define HASH "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$ZGVyaXZlZGRlcml2ZWRkZXJpdmVkZGVyaXZlZDEyMzQ="

/* The valid file, one key per line so that every row below can replace one
 * line and name the line the error must point to. Line n is base[n - 1]. */
static const char *const base[] = {
	/*  1 */ "{",
	/*  2 */ "  \"server\": {",
	/*  3 */ "    \"listen\": \"127.0.0.1\",",
	/*  4 */ "    \"port\": 8443,",
	/*  5 */ "    \"threads\": 2",
	/*  6 */ "  },",
	/*  7 */ "  \"tls\": {",
	/*  8 */ "    \"cert_file\": \"tls.pem\",",
	/*  9 */ "    \"key_file\": \"tls.key\"",
	/* 10 */ "  },",
	/* 11 */ "  \"database\": {",
	/* 12 */ "    \"dsn\": \"host=/nonexistent dbname=mintca\"",
	/* 13 */ "  },",
	/* 14 */ "  \"ca\": {",
	/* 15 */ "    \"name\": \"test-ca\",",
	/* 16 */ "    \"root_subject\": \"/CN=Test Root\",",
	/* 17 */ "    \"issuing_subject\": \"/CN=Test Issuing\",",
	/* 18 */ "    \"signer\": {",
	/* 19 */ "      \"type\": \"file\",",
	/* 20 */ "      \"root_key_file\": \"root.pem\",",
	/* 21 */ "      \"issuing_key_file\": \"issuing.pem\"",
	/* 22 */ "    }",
	/* 23 */ "  },",
	/* 24 */ "  \"log\": { \"level\": \"info\" },",
	/* 25 */ "  \"est\": { \"default_profile\": \"device\" },",
	/* 26 */ "  \"users\": [",
	/* 27 */ "    { \"name\": \"factory\", \"password_hash\": \"" HASH "\" }",
	/* 28 */ "  ],",
	/* 29 */ "  \"client_cert_anchors\": [",
	/* 30 */ "    { \"name\": \"plant\", \"ca_file\": \"plant.pem\" }",
	/* 31 */ "  ],",
	/* 32 */ "  \"profiles\": [",
	/* 33 */ "    {",
	/* 34 */ "      \"name\": \"device\",",
	/* 35 */ "      \"key_types\": [\"ec-p256\", \"rsa\"],",
	/* 36 */ "      \"validity_days\": 30,",
	/* 37 */ "      \"extended_key_usage\": [\"clientAuth\"],",
	/* 38 */ "      \"auth\": {",
	/* 39 */ "        \"basic_users\": [\"factory\"],",
	/* 40 */ "        \"client_cert_anchors\": [\"plant\"],",
	/* 41 */ "        \"reenroll\": true",
	/* 42 */ "      }",
	/* 43 */ "    },",
	/* 44 */ "    {",
	/* 45 */ "      \"name\": \"server\",",
	/* 46 */ "      \"key_types\": [\"ec-p256\"],",
	/* 47 */ "      \"validity_seconds\": 86400,",
	/* 48 */ "      \"auth\": { \"operator\": true }",
	/* 49 */ "    }",
	/* 50 */ "  ]",
	/* 51 */ "}",
};
#define BASE_LINES ((int)(sizeof(base) / sizeof(base[0])))

static char dir[64];
static char path[128];

static void setup_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/mintca-cfg-XXXXXX", tmp && tmp[0] && strlen(tmp) < 30 ? tmp : "/tmp");
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/mintca.json", dir);
}

static void teardown_dir(void)
{
	unlink(path);
	rmdir(dir);
}

/* Write the base file with line `line` (1-based, 0: none) replaced by text. */
static void write_config(int line, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert(f != NULL);
	for (int i = 1; i <= BASE_LINES; i++)
		fprintf(f, "%s\n", i == line ? text : base[i - 1]);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(cfg_loads_valid_file_with_defaults)
{
	struct ca_err err = { 0 };
	struct cfg *c;
	const struct ca_profile *p;

	write_config(0, NULL);
	c = cfg_load(path, &err);
	ck_assert_msg(c != NULL, "valid file refused: %s", err.detail);
	ck_assert_int_eq(err.code, CA_OK);
	ck_assert_str_eq(c->listen, "127.0.0.1");
	ck_assert_uint_eq(c->port, 8443);
	ck_assert_uint_eq(c->threads, 2);
	ck_assert_uint_eq(c->max_body_bytes, 65536);  /* default */
	ck_assert_str_eq(c->public_name, "localhost"); /* default */
	ck_assert_str_eq(c->db_dsn, "host=/nonexistent dbname=mintca");
	ck_assert_str_eq(c->ca_name, "test-ca");
	ck_assert_int_eq(c->signer, CFG_SIGNER_FILE);
	ck_assert_str_eq(c->file_root_key, "root.pem");
	ck_assert_str_eq(c->file_issuing_key, "issuing.pem");
	ck_assert_uint_eq(c->root_validity_days, 7300);
	ck_assert_str_eq(c->est_default_profile, "device");
	ck_assert_uint_eq(c->n_users, 1);
	ck_assert_ptr_nonnull(cfg_user_find(c, "factory"));
	ck_assert_ptr_null(cfg_user_find(c, "ghost"));
	ck_assert_uint_eq(c->n_anchors, 1);
	ck_assert_str_eq(c->anchors[0].ca_file, "plant.pem");
	ck_assert_uint_eq(c->n_profiles, 2);
	p = &c->profiles[0];
	ck_assert_str_eq(p->name, "device");
	ck_assert_uint_eq(p->key_types, CA_KEY_EC_P256 | CA_KEY_RSA);
	ck_assert_int_eq(p->validity_seconds, 30LL * 86400);
	ck_assert_int_eq(p->backdate_seconds, 60);
	ck_assert_uint_eq(p->rsa_min_bits, 2048);
	ck_assert_uint_eq(p->rsa_max_bits, 4096);
	ck_assert_uint_eq(p->max_sans, 4);
	ck_assert_uint_eq(p->eku, CA_EKU_CLIENT_AUTH);
	ck_assert(p->allow_reenroll);
	ck_assert(!p->operator_allowed);
	ck_assert_uint_eq(p->n_basic_users, 1);
	ck_assert_str_eq(p->basic_users[0], "factory");
	ck_assert_uint_eq(p->n_cert_anchors, 1);
	ck_assert_str_eq(p->cert_anchors[0], "plant");
	p = &c->profiles[1];
	ck_assert_int_eq(p->validity_seconds, 86400);
	ck_assert(p->operator_allowed);
	ck_assert(!p->allow_reenroll);
	ck_assert_uint_eq(p->n_basic_users, 0);
	cfg_free(c);
}
END_TEST

static const struct bad_cfg {
	const char *what;
	int line;         /* line replaced */
	const char *text; /* its new text */
	int want_line;    /* the line the detail must name */
	const char *want_path; /* key path the detail must name (NULL: none) */
} bad_rows[] = {
	{ "unknown top-level key", 24, "  \"bogus\": true,", 24, "bogus" },
	{ "unknown key in server", 5, "    \"thread\": 2", 5, "server.thread" },
	{ "unknown key in a profile", 37, "      \"extended_key_usage\": [\"clientAuth\"], \"colour\": \"red\",",
	  37, "profiles[0].colour" },
	{ "unknown key in a profile's auth", 41, "        \"reenroll\": true, \"admin\": true", 41,
	  "profiles[0].auth.admin" },
	{ "port 0", 4, "    \"port\": 0,", 4, "server.port" },
	{ "port 70000", 4, "    \"port\": 70000,", 4, "server.port" },
	{ "port as a string", 4, "    \"port\": \"8443\",", 4, "server.port" },
	{ "threads 257", 5, "    \"threads\": 257", 5, "server.threads" },
	{ "workers 0", 5, "    \"threads\": 2, \"workers\": 0", 5, "server.workers" },
	{ "max_body_bytes below 1 KiB", 5, "    \"threads\": 2, \"max_body_bytes\": 100", 5,
	  "server.max_body_bytes" },
	/* A missing key has no line of its own: the object that lacks it. */
	{ "missing database.dsn", 12, "", 11, "database.dsn" },
	{ "empty ca.name", 15, "    \"name\": \"\",", 15, "ca.name" },
	{ "bad signer type", 19, "      \"type\": \"hsm\",", 19, "ca.signer.type" },
	{ "log level unknown", 24, "  \"log\": { \"level\": \"verbose\" },", 24, "log.level" },
	{ "profile name not an EST label", 34, "      \"name\": \"Device One\",", 34, "profiles[0]" },
	{ "profile with unknown key type", 35, "      \"key_types\": [\"ec-p256\", \"dsa\"],", 35,
	  "profiles[0].key_types" },
	{ "profile with no key type", 35, "      \"key_types\": [],", 35, "profiles[0].key_types" },
	{ "profile rsa_min_bits 1024", 35, "      \"key_types\": [\"rsa\"], \"rsa_min_bits\": 1024,", 35,
	  "profiles[0].rsa_min_bits" },
	{ "profile with validity_days and validity_seconds", 36,
	  "      \"validity_days\": 30, \"validity_seconds\": 60,", 36, "profiles[0]" },
	{ "profile naming an undefined user", 39, "        \"basic_users\": [\"factory\", \"ghost\"],", 39,
	  "profiles[0].auth" },
	{ "profile naming an undefined anchor", 40, "        \"client_cert_anchors\": [\"nowhere\"],", 40,
	  "profiles[0].auth" },
	{ "est.default_profile unknown", 25, "  \"est\": { \"default_profile\": \"printer\" },", 25,
	  "est.default_profile" },
	{ "bad password hash", 27, "    { \"name\": \"factory\", \"password_hash\": \"hunter2\" }", 27, "users[0]" },
	{ "user name with ':'", 27, "    { \"name\": \"fac:tory\", \"password_hash\": \"" HASH "\" }", 27,
	  "users[0]" },
	{ "anchor named like the CA", 30, "    { \"name\": \"test-ca\", \"ca_file\": \"plant.pem\" }", 30,
	  "client_cert_anchors[0]" },
	{ "duplicate profile names", 45, "      \"name\": \"device\",", 45, "profiles[1]" },
	{ "JSON syntax error", 16, "    \"root_subject\": /CN=Test Root\",", 16, NULL },
	{ "duplicate JSON keys", 9, "    \"key_file\": \"tls.key\", \"cert_file\": \"other.pem\"", 9, NULL },
};

START_TEST(cfg_refuses_broken_file_naming_file_line_and_key)
{
	const struct bad_cfg *row = &bad_rows[_i];
	struct ca_err err = { 0 };
	struct cfg *c;
	char line[16];

	write_config(row->line, row->text);
	c = cfg_load(path, &err);
	ck_assert_msg(c == NULL, "%s: accepted", row->what);
	ck_assert_msg(err.code == CA_E_CONFIG, "%s: code %s", row->what, ca_code_str(err.code));
	ck_assert_msg(strstr(err.detail, path) != NULL, "%s: file not named: %s", row->what, err.detail);
	snprintf(line, sizeof(line), ":%d:", row->want_line);
	ck_assert_msg(strstr(err.detail, line) != NULL, "%s: want line %d: %s", row->what, row->want_line,
		      err.detail);
	ck_assert_msg(row->want_path == NULL || strstr(err.detail, row->want_path) != NULL,
		      "%s: key path %s not named: %s", row->what, row->want_path, err.detail);
}
END_TEST

START_TEST(cfg_refuses_missing_file)
{
	struct ca_err err = { 0 };

	unlink(path);
	ck_assert_ptr_null(cfg_load(path, &err));
	ck_assert_int_eq(err.code, CA_E_CONFIG);
	ck_assert_msg(strstr(err.detail, path) != NULL, "file not named: %s", err.detail);
}
END_TEST

START_TEST(cfg_refuses_file_that_is_not_an_object)
{
	struct ca_err err = { 0 };
	FILE *f = fopen(path, "w");

	ck_assert(f != NULL);
	fputs("[]\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_null(cfg_load(path, &err));
	ck_assert_int_eq(err.code, CA_E_CONFIG);
	ck_assert_msg(strstr(err.detail, path) != NULL, "file not named: %s", err.detail);
}
END_TEST

START_TEST(cfg_refuses_file_over_1_mib)
{
	struct ca_err err = { 0 };
	FILE *f = fopen(path, "w");

	/* Valid JSON (whitespace is allowed anywhere), too large to read. */
	ck_assert(f != NULL);
	for (int i = 1; i <= BASE_LINES; i++)
		fprintf(f, "%s\n", base[i - 1]);
	for (int i = 0; i < 1024 * 1024; i++)
		fputc(' ', f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_null(cfg_load(path, &err));
	ck_assert_int_eq(err.code, CA_E_CONFIG);
	ck_assert_msg(strstr(err.detail, path) != NULL, "file not named: %s", err.detail);
}
END_TEST

Suite *cfg_suite(void)
{
	Suite *s = suite_create("cfg");
	TCase *tc = tcase_create("cfg_load");

	/* Unchecked: made and removed by the parent, so a failing test (whose
	 * child exits at once) leaves nothing behind. */
	tcase_add_unchecked_fixture(tc, setup_dir, teardown_dir);
	tcase_add_test(tc, cfg_loads_valid_file_with_defaults);
	tcase_add_loop_test(tc, cfg_refuses_broken_file_naming_file_line_and_key, 0,
			    (int)(sizeof(bad_rows) / sizeof(bad_rows[0])));
	tcase_add_test(tc, cfg_refuses_missing_file);
	tcase_add_test(tc, cfg_refuses_file_that_is_not_an_object);
	tcase_add_test(tc, cfg_refuses_file_over_1_mib);
	suite_add_tcase(s, tc);
	return s;
}
