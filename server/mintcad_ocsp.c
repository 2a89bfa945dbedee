/* mintcad's OCSP responders: the delegated responder key and certificate of
 * every CA (set up at start and on reload, renewed at half life without a
 * restart), and the process-wide cache with its revocation LISTEN thread. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "mintca/log.h"
#include "mintcad_ocsp_int.h"

#define OCSP_LOCK 0x6f637370L        /* "ocsp": one node issues a responder at a time */
#define LABEL_MAX 128
#define KEY_TYPE "ec-p256"           /* fast on an HSM, small in every response */
#define RENEW_CHECK_S 60
#define RETRY_S 10
#define LISTEN_WAIT_MS 250
#define LISTEN_PING_S 10
#define SWEEP_S 60

/* --- the process-wide part: cache and LISTEN thread ---------------------- */

struct srv_ocsp_svc {
	db_store *store;
	ocsp_cache *cache;
	pthread_t thread;
	atomic_bool stop;
};

static void on_notify(void *arg, const char *payload)
{
	srv_ocsp_svc *svc = arg;
	char serial[48];
	size_t i;

	/* The store's form: lower-case hex. */
	for (i = 0; payload[i] != '\0' && i + 1 < sizeof(serial); i++)
		serial[i] = (char)(payload[i] >= 'A' && payload[i] <= 'F' ? payload[i] + 32 : payload[i]);
	serial[i] = '\0';
	ocsp_cache_invalidate(svc->cache, serial);
	log_kv(LOG_DEBUG, "ocsp.invalidated", "serial", serial, NULL);
}

static void *listen_main(void *arg)
{
	srv_ocsp_svc *svc = arg;
	db_listen *l = NULL;
	struct ca_err err;
	time_t last_ping = 0, last_sweep = time(NULL);
	bool warned = false;

	while (!atomic_load(&svc->stop)) {
		time_t now = time(NULL);
		ca_err_clear(&err);
		if (l == NULL) {
			if ((l = db_listen_open(svc->store, &err)) == NULL) {
				if (!warned)
					log_kv(LOG_WARN, "ocsp.listen_down", "detail", err.detail, "why",
					       "responses are signed per request until revocations can be heard", NULL);
				warned = true;
				for (int k = 0; k < 4 && !atomic_load(&svc->stop); k++)
					nanosleep(&(struct timespec){ .tv_nsec = LISTEN_WAIT_MS * 1000000L }, NULL);
				continue;
			}
			/* Whatever was revoked while nobody listened is read afresh. */
			ocsp_cache_flush(svc->cache);
			ocsp_cache_set_live(svc->cache, true);
			log_kv(warned ? LOG_INFO : LOG_DEBUG, "ocsp.listen_up", "channel", DB_OCSP_CHANNEL, NULL);
			warned = false;
			last_ping = now;
		}
		if (db_listen_wait(l, LISTEN_WAIT_MS, on_notify, svc, &err) != 0 ||
		    (now - last_ping >= LISTEN_PING_S && (last_ping = now, db_listen_ping(l, &err) != 0))) {
			ocsp_cache_set_live(svc->cache, false);
			ocsp_cache_flush(svc->cache);
			db_listen_close(l);
			l = NULL;
			log_kv(LOG_WARN, "ocsp.listen_lost", "detail", err.detail, "why",
			       "cache flushed; listening again", NULL);
			warned = true;
			continue;
		}
		if (now - last_sweep >= SWEEP_S) {
			ocsp_cache_sweep(svc->cache, now);
			last_sweep = now;
		}
	}
	ocsp_cache_set_live(svc->cache, false);
	db_listen_close(l);
	return NULL;
}

srv_ocsp_svc *srv_ocsp_svc_start(db_store *st, struct ca_err *err)
{
	srv_ocsp_svc *svc = calloc(1, sizeof(*svc));

	if (svc == NULL || (svc->cache = ocsp_cache_new(0)) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto fail;
	}
	svc->store = st;
	atomic_init(&svc->stop, false);
	if (pthread_create(&svc->thread, NULL, listen_main, svc) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "cannot start the OCSP LISTEN thread");
		goto fail;
	}
	return svc;
fail:
	if (svc != NULL)
		ocsp_cache_free(svc->cache);
	free(svc);
	return NULL;
}

void srv_ocsp_svc_stop(srv_ocsp_svc *svc)
{
	if (svc == NULL)
		return;
	atomic_store(&svc->stop, true);
	pthread_join(svc->thread, NULL);
	ocsp_cache_free(svc->cache);
	free(svc);
}

/* --- per state: responder keys and certificates --------------------------- */

struct resp_ca {
	ca_ctx *ca;                 /* borrowed from the state's CAs */
	sig_p11 *p11;               /* its token, or NULL (file signer) */
	const char *module, *token_label, *pin_file; /* from the state's cfg */
	char label[LABEL_MAX];      /* responder key label ("memory" for a key in memory) */
	sig_key *key;
	int idx;                    /* in the responder */
	time_t retry_at;            /* after a failure */
};

struct srv_ocsp {
	ocsp_responder *resp;
	struct resp_ca *cas;
	size_t n;
	db_store *store;
	long long validity_s;
	pthread_t thread;
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

ocsp_responder *srv_ocsp_responder(const struct srv_ocsp *o)
{
	return o != NULL ? o->resp : NULL;
}

/* The responder key of a CA: on its token (generated there the first time),
 * or in memory for a development file signer. 0 or -1. */
static int open_key(struct resp_ca *rc, struct ca_err *err)
{
	sec_str pin = { 0 };
	struct ca_err gen = { 0 };
	int rc_ = -1;

	if (rc->key != NULL)
		return 0;
	if (rc->p11 == NULL) {
		EVP_PKEY *pk = EVP_EC_gen("P-256");
		if (pk == NULL || (rc->key = sig_mem_key(pk)) == NULL) {
			ca_err_ssl(err, CA_E_INTERNAL, "cannot generate an OCSP responder key");
			return -1;
		}
		return 0;
	}
	if ((rc->key = sig_p11_key(rc->p11, rc->label, err)) != NULL)
		return 0;
	ERR_clear_error();
	ca_err_clear(err);
	if (sec_read_file(&pin, rc->pin_file) != 0) {
		ca_err_set(err, CA_E_CONFIG, "cannot read PIN file %s: %s", rc->pin_file, strerror(errno));
		goto out;
	}
	/* Another node may have made it meanwhile: then it "already exists". */
	if (sig_p11_generate(rc->module, rc->token_label, &pin, rc->label, KEY_TYPE, &gen) != 0 &&
	    gen.code != CA_E_CONFIG) {
		ca_err_set(err, gen.code, "%s", gen.detail);
		goto out;
	}
	if (gen.code == CA_OK)
		log_kv(LOG_INFO, "ocsp.key_generated", "ca", ca_name(rc->ca), "key", rc->label,
		       "token", rc->token_label, NULL);
	if ((rc->key = sig_p11_key(rc->p11, rc->label, err)) == NULL)
		goto out;
	rc_ = 0;
out:
	sec_clear(&pin);
	return rc_;
}

static X509 *d2i_cert(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static time_t not_after_of(const X509 *x)
{
	struct tm tm;

	return ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1 ? timegm(&tm) : 0;
}

/* The recorded responder certificate of the CA when it is for our key and
 * good for more than half a lifetime; NULL otherwise. */
static X509 *recorded(struct srv_ocsp *o, struct resp_ca *rc, time_t now, struct ca_err *err, int *failed)
{
	char label[LABEL_MAX];
	unsigned char *der = NULL;
	size_t len = 0;
	time_t na = 0;
	X509 *x = NULL;
	int r = db_ocsp_responder_get(o->store, ca_name(rc->ca), label, sizeof(label), &der, &len, &na, err);

	*failed = r < 0;
	if (r == 0 && strcmp(label, rc->label) == 0 && na - now > o->validity_s / 2 &&
	    (x = d2i_cert(der, len)) != NULL &&
	    (EVP_PKEY_eq(X509_get0_pubkey(x), sig_pubkey(rc->key)) != 1 ||
	     X509_check_issued(ca_issuing_cert(rc->ca), x) != X509_V_OK)) {
		X509_free(x);
		x = NULL;
	}
	free(der);
	ERR_clear_error();
	return x;
}

/* Make sure CA rc has a responder certificate valid for more than half its
 * lifetime: the current one, the recorded one, or a new one. 0 or -1. */
static int ensure_signer(struct srv_ocsp *o, struct resp_ca *rc, struct ca_err *err)
{
	time_t now = time(NULL), cur = ocsp_responder_signer_expiry(o->resp, (size_t)rc->idx);
	struct ca_issue_res res = { 0 };
	X509 *x = NULL;
	bool locked = false;
	int failed = 0, ret = -1;

	if (cur - now > o->validity_s / 2)
		return 0;
	if (open_key(rc, err) != 0)
		goto out;
	if (db_lock(o->store, OCSP_LOCK, err) != 0)
		goto out;
	locked = true;
	if ((x = recorded(o, rc, now, err, &failed)) == NULL && failed)
		goto out;
	if (x == NULL) {
		if (ocsp_issue_responder(rc->ca, rc->key, &res, err) != 0 ||
		    (x = d2i_cert(res.der, res.der_len)) == NULL) {
			if (err->code == CA_OK)
				ca_err_ssl(err, CA_E_INTERNAL, "issued responder certificate does not decode");
			goto out;
		}
		if (EVP_PKEY_eq(X509_get0_pubkey(x), sig_pubkey(rc->key)) != 1) {
			ca_err_set(err, CA_E_INTERNAL, "issued responder certificate is not for the responder key");
			goto out;
		}
		if (db_ocsp_responder_put(o->store, ca_name(rc->ca), rc->label, res.der, res.der_len,
					  not_after_of(x), err) != 0)
			goto out;
		log_kv(LOG_INFO, "ocsp.responder_issued", "ca", ca_name(rc->ca), "serial", res.serial_hex,
		       "key", rc->label, NULL);
	} else {
		log_kv(LOG_INFO, "ocsp.responder_reused", "ca", ca_name(rc->ca), "key", rc->label, NULL);
	}
	if (ocsp_responder_set_signer(o->resp, (size_t)rc->idx, x, rc->key, err) != 0)
		goto out;
	ret = 0;
out:
	if (locked)
		db_unlock(o->store, OCSP_LOCK, NULL);
	X509_free(x);
	ca_issue_res_free(&res);
	ERR_clear_error();
	return ret;
}

/* Returns the seconds until the next look. */
static unsigned renew_all(struct srv_ocsp *o)
{
	time_t now = time(NULL);
	unsigned next = RENEW_CHECK_S;

	for (size_t i = 0; i < o->n; i++) {
		struct resp_ca *rc = &o->cas[i];
		struct ca_err err = { 0 };
		if (rc->retry_at > now) {
			next = RETRY_S;
			continue;
		}
		if (ensure_signer(o, rc, &err) != 0) {
			log_kv(LOG_ERROR, "ocsp.responder_failed", "ca", ca_name(rc->ca), "code",
			       ca_code_str(err.code), "detail", err.detail, "why",
			       "OCSP answers tryLater for this CA until a responder certificate is issued", NULL);
			rc->retry_at = now + RETRY_S;
			next = RETRY_S;
		}
	}
	return next;
}

static void *renew_main(void *arg)
{
	struct srv_ocsp *o = arg;
	unsigned wait_s = RENEW_CHECK_S;

	pthread_mutex_lock(&o->mu);
	while (!o->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait_s;
		if (pthread_cond_timedwait(&o->cv, &o->mu, &until) == 0 || o->stop)
			continue;
		pthread_mutex_unlock(&o->mu);
		wait_s = renew_all(o);
		pthread_mutex_lock(&o->mu);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* Which token, key label and PIN CA i of the state has. */
static int describe(const struct cfg *c, const srv_cas *cas, size_t i, struct resp_ca *rc,
		    struct ca_err *err)
{
	const char *issuing_label;

	rc->ca = srv_cas_at(cas, i);
	rc->p11 = srv_cas_p11(cas, i);
	if (i == 0) {
		rc->module = c->p11_module;
		rc->token_label = c->p11_token_label;
		rc->pin_file = c->p11_pin_file;
		issuing_label = c->p11_issuing_key_label;
	} else if (i - 1 < c->n_issuing_cas && strcmp(c->issuing_cas[i - 1].name, ca_name(rc->ca)) == 0) {
		rc->module = c->issuing_cas[i - 1].module;
		rc->token_label = c->issuing_cas[i - 1].token_label;
		rc->pin_file = c->issuing_cas[i - 1].pin_file;
		issuing_label = c->issuing_cas[i - 1].key_label;
	} else {
		ca_err_set(err, CA_E_INTERNAL, "CA %zu is not in the configuration's order", i);
		return -1;
	}
	if (rc->p11 == NULL || issuing_label == NULL) {
		rc->p11 = NULL;
		snprintf(rc->label, sizeof(rc->label), "memory");
		return 0;
	}
	if (snprintf(rc->label, sizeof(rc->label), "%s-ocsp", issuing_label) >= (int)sizeof(rc->label)) {
		ca_err_set(err, CA_E_CONFIG, "key label '%s' too long for its OCSP responder key", issuing_label);
		return -1;
	}
	return 0;
}

struct srv_ocsp *srv_ocsp_new(struct srv_state *st, srv_ocsp_svc *svc, struct ca_err *err)
{
	struct srv_ocsp *o = calloc(1, sizeof(*o));
	size_t n = srv_cas_count(st->cas);

	if (o == NULL || (o->cas = calloc(n, sizeof(*o->cas))) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		free(o);
		return NULL;
	}
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	o->store = st->store;
	o->validity_s = st->cfg->ocsp_responder_validity_s;
	if ((o->resp = ocsp_responder_new(st->store, svc != NULL ? svc->cache : NULL,
					  st->cfg->ocsp_validity_s, err)) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct resp_ca *rc = &o->cas[i];
		struct ca_profile p;
		if (describe(st->cfg, st->cas, i, rc, err) != 0)
			goto fail;
		o->n++;
		if (ocsp_responder_profile(&p, o->validity_s, err) != 0)
			goto fail;
		if (ca_ctx_add_profile(rc->ca, &p, err) != 0) {
			ca_profile_free_lists(&p);
			goto fail;
		}
		if ((rc->idx = ocsp_responder_add_ca(o->resp, rc->ca, err)) < 0)
			goto fail;
	}
	/* The first certificates now, so OCSP answers from the first request. */
	(void)renew_all(o);
	if (pthread_create(&o->thread, NULL, renew_main, o) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "cannot start the OCSP responder renewal thread");
		goto fail;
	}
	o->running = true;
	return o;
fail:
	srv_ocsp_free(o);
	return NULL;
}

void srv_ocsp_quiesce(struct srv_ocsp *o)
{
	if (o == NULL || !o->running)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->thread, NULL);
	o->running = false;
}

void srv_ocsp_free(struct srv_ocsp *o)
{
	if (o == NULL)
		return;
	srv_ocsp_quiesce(o);
	/* the responder holds references to the keys: free it first */
	ocsp_responder_free(o->resp);
	for (size_t i = 0; i < o->n; i++)
		sig_close(o->cas[i].key);
	free(o->cas);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}
