/* PKCS#11 signer through libp11: the CA private key stays on the token; OpenSSL
 * calls the token through the EVP_PKEY libp11 hands back.
 *
 * Two things a token does in production that this file survives:
 *
 * A lost session (HSM restarted, CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_ERROR
 * ...). libp11 keeps handing out the dead session handle, so the signer
 * re-opens the module itself: with every signer stopped (signing holds the
 * module's read-write lock shared, a re-open holds it exclusive) it frees
 * the keys, releases the slots, enumerates them again, logs in to each token
 * and takes each key again (a few ms); after a failed re-open the next one
 * also unloads and reloads the module. The signature that met the error is
 * retried once on the fresh keys; no signature is ever attempted with a
 * handle from before the re-open. Re-opens are at most one per
 * REOPEN_MIN_MS, so a dead token is not hammered; in between, signatures
 * fail at once with CA_E_SIGNER.
 *
 * A stalled token. A blocked C_Sign cannot be cancelled, so signatures are
 * made on a small pool of signer threads per module, and the caller waits
 * at most SIGN_DEADLINE_MS for its answer; after that it receives CA_E_SIGNER
 * and the stuck signature is abandoned (the signer thread discards it when
 * the token answers). Threads are started as needed, up to MAX_SIGNERS per
 * module; when all of them are stuck, callers time out too.
 *
 * Several threads may sign with one key at once (libp11 takes a session per
 * operation). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libp11.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include "mintca/log.h"
#include "sig_int.h"
/* Last: in its compatibility mode this header #defines common words
 * (value, count, params, device_error) until its end. */
#include <p11-kit/pkcs11.h>

#define MAX_MODULES 8
#define MAX_SIGNERS 16          /* signer threads per module */
#define SIGN_DEADLINE_MS 10000  /* longest a caller waits for a signature */
#define REOPEN_MIN_MS 1000      /* at most one re-open per this interval */
#define STOP_GRACE_S 2          /* at close, how long to wait for a stuck signer */

struct sign_job;

/* One PKCS11_CTX per module, shared by every token opened from it: a second
 * C_Initialize/C_Finalize of the same module would tear down the first's
 * sessions. */
struct p11_module {
	char *path;
	PKCS11_CTX *ctx;
	int refs;                /* under modules_mu */

	/* Signing holds rw shared; a re-open holds it exclusive. */
	pthread_rwlock_t rw;
	bool ok;                 /* keys usable: false after a failed re-open */
	unsigned gen;            /* bumped by every re-open attempt */
	struct timespec last_reopen; /* CLOCK_MONOTONIC; 0 = never */
	unsigned failed_reopens; /* in a row; the next re-open reloads the module */

	/* The slots, tokens and keys: changed by open, close and re-open. */
	pthread_mutex_t list_mu;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	struct sig_p11 *tokens;
	struct p11_key *keys;

	/* Signer threads and their queue. */
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct sign_job *head, *tail;
	int queued, idle, nthreads;
	pthread_t threads[MAX_SIGNERS];
	bool stopping;
};

static struct p11_module modules[MAX_MODULES];
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;

struct sig_p11 {
	struct p11_module *mod;
	PKCS11_SLOT *slot; /* the slot holding our token, logged in; NULL while re-opening */
	char *label;
	sec_str pin;       /* kept to log in again after a lost session */
	struct sig_p11 *next;
};

struct p11_key {
	struct sig_key base;
	struct p11_module *mod;
	struct sig_p11 *tok;
	char *label;
	EVP_PKEY *priv;    /* libp11's; replaced by a re-open, NULL while it failed */
	EVP_PKEY *pub;     /* a software copy: never touches the token */
	atomic_int refs;   /* the owner's, plus one per job in flight */
	atomic_bool closed; /* closed by its owner: no re-open touches it again */
	struct p11_key *next;
};

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* One signature handed to a signer thread. Freed by the caller once DONE,
 * or by the signer thread when the caller gave up (abandoned). */
struct sign_job {
	struct p11_key *key;               /* holds a reference */
	int (*fn)(EVP_PKEY *pk, void *obj); /* > 0 on success, as OpenSSL */
	void *obj;                         /* holds a reference, released by obj_free */
	void (*obj_free)(void *obj);
	enum job_state state;
	bool abandoned;
	int rc;
	struct ca_err err;
	sem_t done;                        /* posted (under pool_mu) when DONE */
	struct sign_job *next;
};

static struct timespec mono_after(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static long ms_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - then->tv_sec) * 1000 + (now.tv_nsec - then->tv_nsec) / 1000000L;
}

/* --- what went wrong -------------------------------------------------------- */

static const struct {
	unsigned long rv;
	const char *name;
} lost_codes[] = {
#define LOST(x) { x, #x }
	/* The session or the login is gone: a re-open brings them back. */
	LOST(CKR_SESSION_HANDLE_INVALID),
	LOST(CKR_SESSION_CLOSED),
	LOST(CKR_USER_NOT_LOGGED_IN),
	/* The device failed or went away, maybe for good. */
	LOST(CKR_DEVICE_ERROR),
	LOST(CKR_DEVICE_REMOVED),
	LOST(CKR_DEVICE_MEMORY),
	LOST(CKR_TOKEN_NOT_PRESENT),
	LOST(CKR_TOKEN_NOT_RECOGNIZED),
	/* Handles from before a token restart. */
	LOST(CKR_KEY_HANDLE_INVALID),
	LOST(CKR_OBJECT_HANDLE_INVALID),
	LOST(CKR_CRYPTOKI_NOT_INITIALIZED),
	LOST(CKR_GENERAL_ERROR),
#undef LOST
};

/* The PKCS#11 code on the error queue when it says the session or token is
 * lost, else NULL. libp11 reports a failed call as an error of its "CKR"
 * library whose reason is the CK_RV. The queue is left as it is. */
static const char *session_lost(void)
{
	unsigned long e[2] = { ERR_peek_error(), ERR_peek_last_error() };
	int ckr_lib = ERR_get_CKR_code();

	for (size_t i = 0; i < 2; i++) {
		if (e[i] == 0 || ERR_GET_LIB(e[i]) != ckr_lib)
			continue;
		for (size_t j = 0; j < sizeof(lost_codes) / sizeof(lost_codes[0]); j++)
			if ((unsigned long)ERR_GET_REASON(e[i]) == lost_codes[j].rv)
				return lost_codes[j].name;
	}
	return NULL;
}

/* --- tokens and keys --------------------------------------------------------- */

/* The key labelled `label` among the token's private (priv=1) or public keys. */
static PKCS11_KEY *find_key(PKCS11_TOKEN *t, const char *label, int priv)
{
	PKCS11_KEY *keys = NULL;
	unsigned int n = 0, i;
	int rc = priv ? PKCS11_enumerate_keys(t, &keys, &n)
		      : PKCS11_enumerate_public_keys(t, &keys, &n);

	if (rc != 0)
		return NULL;
	for (i = 0; i < n; i++)
		if (keys[i].label != NULL && strcmp(keys[i].label, label) == 0)
			return &keys[i];
	return NULL;
}

/* libp11 0.4.12 waits forever for a session when C_OpenSession fails on a
 * slot that has none yet (a fresh slot, as after a re-open). So before it
 * logs in, see that the token opens a session for us, through the module's
 * own function list (the module is already loaded and initialised). */
static int token_probe(struct p11_module *m, PKCS11_SLOT *slot, struct ca_err *err)
{
	void *so = dlopen(m->path, RTLD_NOW | RTLD_NOLOAD);
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR) = NULL;
	CK_FUNCTION_LIST_PTR fl = NULL;
	CK_SESSION_HANDLE h;
	CK_RV rv = CKR_GENERAL_ERROR;

	if (so != NULL)
		*(void **)&get_list = dlsym(so, "C_GetFunctionList");
	if (get_list != NULL && get_list(&fl) == CKR_OK && fl != NULL) {
		rv = fl->C_OpenSession(PKCS11_get_slotid_from_slot(slot), CKF_SERIAL_SESSION,
				       NULL, NULL, &h);
		if (rv == CKR_OK)
			fl->C_CloseSession(h);
	}
	if (so != NULL)
		dlclose(so);
	if (rv != CKR_OK) {
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token '%s' opens no session (CK_RV 0x%lx)",
			   slot->token->label, (unsigned long)rv);
		return -1;
	}
	return 0;
}

/* Find tok's token among the module's slots and log in. Under list_mu. */
static int token_attach(struct p11_module *m, struct sig_p11 *tok, struct ca_err *err)
{
	PKCS11_SLOT *slot = NULL;
	int logged = 0;

	for (unsigned int i = 0; i < m->nslots && slot == NULL; i++) {
		PKCS11_TOKEN *t = m->slots[i].token;
		if (t != NULL && t->label != NULL && strcmp(t->label, tok->label) == 0)
			slot = &m->slots[i];
	}
	if (slot == NULL) {
		ca_err_set(err, CA_E_SIGNER, "no PKCS#11 token labelled '%s' in %s", tok->label, m->path);
		return -1;
	}
	/* Logging in to an uninitialised token can hang some modules. */
	if (!slot->token->initialized) {
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token '%s' is not initialised", tok->label);
		return -1;
	}
	/* Two CAs on one token share its login. */
	if (PKCS11_is_logged_in(slot, 0, &logged) != 0)
		logged = 0;
	if (!logged && (token_probe(m, slot, err) != 0 || PKCS11_login(slot, 0, tok->pin.buf) != 0)) {
		ca_err_ssl(err, CA_E_SIGNER, "PKCS#11 login to token '%s' failed (PIN %s)",
			   tok->label, LOG_REDACTED);
		return -1;
	}
	tok->slot = slot;
	return 0;
}

/* Take k's private key from its token. Under list_mu. */
static int key_attach(struct p11_key *k, struct ca_err *err)
{
	PKCS11_KEY *priv;

	if (k->tok->slot == NULL) {
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token '%s' is not open", k->tok->label);
		return -1;
	}
	if ((priv = find_key(k->tok->slot->token, k->label, 1)) == NULL) {
		ca_err_ssl(err, CA_E_SIGNER, "no private key labelled '%s' on the token", k->label);
		return -1;
	}
	if ((k->priv = PKCS11_get_private_key(priv)) == NULL) {
		ca_err_ssl(err, CA_E_SIGNER, "cannot use key '%s' on the token", k->label);
		return -1;
	}
	return 0;
}

/* Drop every key handle and slot. Under rw (exclusive) and list_mu. */
static void module_detach(struct p11_module *m)
{
	for (struct p11_key *k = m->keys; k != NULL; k = k->next) {
		EVP_PKEY_free(k->priv);
		k->priv = NULL;
	}
	for (struct sig_p11 *t = m->tokens; t != NULL; t = t->next)
		t->slot = NULL;
	if (m->slots != NULL)
		PKCS11_release_all_slots(m->ctx, m->slots, m->nslots);
	m->slots = NULL;
	m->nslots = 0;
}

/* Re-open the module after a lost session: every token logged in again,
 * every key taken again. `seen` is the generation the failed signature ran
 * under: when another thread has re-opened since, there is nothing to do.
 * 0 when the keys are usable again, -1 (err set) when not. */
static int module_reopen(struct p11_module *m, unsigned seen, struct ca_err *err)
{
	struct timespec deadline = mono_after(SIGN_DEADLINE_MS), started;
	int rc = -1;
	bool reload;
	char ms[24];

	/* A signer stuck in the token holds rw shared: do not wait for it forever. */
	if (pthread_rwlock_clockwrlock(&m->rw, CLOCK_MONOTONIC, &deadline) != 0) {
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 module %s is busy: cannot re-open it", m->path);
		return -1;
	}
	if (m->gen != seen) {
		rc = m->ok ? 0 : -1;
		if (rc != 0)
			ca_err_set(err, CA_E_SIGNER, "PKCS#11 token unavailable (re-open failed)");
		goto out_rw;
	}
	if (m->last_reopen.tv_sec != 0 && ms_since(&m->last_reopen) < REOPEN_MIN_MS) {
		/* Too soon: the keys stay unusable until then, so that no
		 * signature goes to the lost session meanwhile. */
		m->ok = false;
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token unavailable (next re-open within %d ms)",
			   REOPEN_MIN_MS);
		goto out_rw;
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	m->last_reopen = started;
	m->gen++;
	m->ok = false;
	reload = m->failed_reopens > 0;
	pthread_mutex_lock(&m->list_mu);
	module_detach(m);
	/* A module that failed to come back once is unloaded and loaded again:
	 * some only recover from C_Finalize/C_Initialize. */
	if (reload) {
		PKCS11_CTX_unload(m->ctx);
		if (PKCS11_CTX_load(m->ctx, m->path) != 0) {
			ca_err_ssl(err, CA_E_SIGNER, "cannot load PKCS#11 module %s again", m->path);
			goto out_list;
		}
	}
	if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
		ca_err_ssl(err, CA_E_SIGNER, "cannot list PKCS#11 slots of %s", m->path);
		m->slots = NULL;
		m->nslots = 0;
		goto out_list;
	}
	for (struct sig_p11 *t = m->tokens; t != NULL; t = t->next)
		if (token_attach(m, t, err) != 0)
			goto out_list;
	for (struct p11_key *k = m->keys; k != NULL; k = k->next)
		if (key_attach(k, err) != 0)
			goto out_list;
	m->ok = true;
	rc = 0;
out_list:
	pthread_mutex_unlock(&m->list_mu);
	snprintf(ms, sizeof(ms), "%ld", ms_since(&started));
	if (rc == 0) {
		m->failed_reopens = 0;
		log_kv(LOG_WARN, "signer.reopened", "module", m->path, "reload", reload ? "true" : "false",
		       "ms", ms, NULL);
	} else {
		m->failed_reopens++;
		log_kv(LOG_ERROR, "signer.reopen_failed", "module", m->path, "reload", reload ? "true" : "false",
		       "ms", ms, "detail", err != NULL ? err->detail : NULL, NULL);
	}
out_rw:
	pthread_rwlock_unlock(&m->rw);
	return rc;
}

/* --- signer threads ---------------------------------------------------------- */

static void key_unref(struct p11_key *k);

static void job_free(struct sign_job *j)
{
	j->obj_free(j->obj);
	key_unref(j->key);
	sem_destroy(&j->done);
	free(j);
}

/* Sign on this (signer) thread; one re-open and one retry on a lost session. */
static int job_run(struct sign_job *j, struct ca_err *err)
{
	struct p11_key *k = j->key;
	struct p11_module *m = k->mod;

	for (int attempt = 0;; attempt++) {
		const char *lost;
		unsigned gen;

		pthread_rwlock_rdlock(&m->rw);
		gen = m->gen;
		if (atomic_load(&k->closed)) {
			pthread_rwlock_unlock(&m->rw);
			ca_err_set(err, CA_E_SIGNER, "PKCS#11 key '%s' is closed", k->label);
			return -1;
		}
		if (!m->ok || k->priv == NULL) {
			pthread_rwlock_unlock(&m->rw);
			if (attempt > 0 || module_reopen(m, gen, err) != 0)
				return -1;
			continue;
		}
		ERR_clear_error();
		if (j->fn(k->priv, j->obj) > 0) {
			pthread_rwlock_unlock(&m->rw);
			return 0;
		}
		lost = session_lost();
		pthread_rwlock_unlock(&m->rw);
		if (lost == NULL || attempt > 0) {
			ca_err_ssl(err, CA_E_SIGNER, "PKCS#11 signature with key '%s' failed", k->label);
			return -1;
		}
		log_kv(LOG_WARN, "signer.session_lost", "module", m->path, "key", k->label, "ckr", lost, NULL);
		ERR_clear_error();
		if (module_reopen(m, gen, err) != 0)
			return -1;
	}
}

static void *signer_main(void *arg)
{
	struct p11_module *m = arg;

	pthread_mutex_lock(&m->pool_mu);
	for (;;) {
		struct sign_job *j;
		struct ca_err err = { 0 };
		int rc;

		while (m->head == NULL && !m->stopping) {
			m->idle++;
			pthread_cond_wait(&m->pool_cv, &m->pool_mu);
			m->idle--;
		}
		if (m->head == NULL)
			break;
		j = m->head;
		m->head = j->next;
		if (m->head == NULL)
			m->tail = NULL;
		m->queued--;
		if (j->abandoned) {
			pthread_mutex_unlock(&m->pool_mu);
			job_free(j);
			pthread_mutex_lock(&m->pool_mu);
			continue;
		}
		j->state = JOB_RUNNING;
		pthread_mutex_unlock(&m->pool_mu);
		rc = job_run(j, &err);
		ERR_clear_error();
		pthread_mutex_lock(&m->pool_mu);
		if (j->abandoned) {
			pthread_mutex_unlock(&m->pool_mu);
			log_kv(LOG_WARN, "signer.late_answer", "module", m->path, "key", j->key->label,
			       "result", rc == 0 ? "signed, discarded" : "failed", NULL);
			job_free(j);
			pthread_mutex_lock(&m->pool_mu);
			continue;
		}
		j->rc = rc;
		j->err = err;
		j->state = JOB_DONE;
		/* Under pool_mu, so a caller that timed out meanwhile sees DONE
		 * only once the post is made and may then free the job. */
		sem_post(&j->done);
	}
	pthread_mutex_unlock(&m->pool_mu);
	return NULL;
}

/* Start one more signer thread, with every signal blocked (mintcad takes
 * them with sigwait). Under pool_mu. */
static int signer_spawn(struct p11_module *m)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&m->threads[m->nthreads], NULL, signer_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	m->nthreads++;
	return 0;
}

/* A token in trouble is worth asking again after a re-open could have
 * happened: the protocols pass this on (EST: Retry-After on the 503). */
static void retry_hint(struct ca_err *err, long ms)
{
	if (err != NULL && err->code == CA_E_SIGNER && err->retry_after == 0)
		err->retry_after = (unsigned)((ms + 999) / 1000);
}

/* Run fn(private key, obj) on a signer thread and wait at most
 * SIGN_DEADLINE_MS. Takes over one reference to obj (released with
 * obj_free, possibly on another thread, possibly after this returned). */
static int p11_submit(struct p11_key *k, int (*fn)(EVP_PKEY *, void *), void *obj,
		      void (*obj_free)(void *), struct ca_err *err)
{
	struct p11_module *m = k->mod;
	struct sign_job *j;
	struct timespec deadline;
	int rc = 0;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		obj_free(obj);
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return -1;
	}
	*j = (struct sign_job){ .key = k, .fn = fn, .obj = obj, .obj_free = obj_free };
	sem_init(&j->done, 0, 0);
	atomic_fetch_add(&k->refs, 1);
	deadline = mono_after(SIGN_DEADLINE_MS);

	pthread_mutex_lock(&m->pool_mu);
	if (m->stopping || (m->queued >= m->idle && m->nthreads < MAX_SIGNERS &&
			    signer_spawn(m) != 0 && m->nthreads == 0)) {
		pthread_mutex_unlock(&m->pool_mu);
		job_free(j);
		ca_err_set(err, CA_E_SIGNER, "no PKCS#11 signer thread for %s", m->path);
		return -1;
	}
	if (m->tail != NULL)
		m->tail->next = j;
	else
		m->head = j;
	m->tail = j;
	m->queued++;
	pthread_mutex_unlock(&m->pool_mu);
	/* Signalled and waited for outside pool_mu: the woken thread does not
	 * have to wait for us to let go of it (one hand-off each way). */
	pthread_cond_signal(&m->pool_cv);
	while ((rc = sem_clockwait(&j->done, CLOCK_MONOTONIC, &deadline)) != 0 && errno == EINTR)
		;
	pthread_mutex_lock(&m->pool_mu);
	if (j->state != JOB_DONE) {
		/* The signer thread that holds (or will pop) it frees it. */
		j->abandoned = true;
		pthread_mutex_unlock(&m->pool_mu);
		log_kv(LOG_ERROR, "signer.timeout", "module", m->path, "key", k->label, NULL);
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token gave no signature within %d ms",
			   SIGN_DEADLINE_MS);
		retry_hint(err, SIGN_DEADLINE_MS);
		return -1;
	}
	pthread_mutex_unlock(&m->pool_mu);
	rc = j->rc;
	if (rc != 0 && err != NULL && err->code == CA_OK)
		*err = j->err;
	if (rc != 0)
		retry_hint(err, REOPEN_MIN_MS);
	job_free(j);
	return rc;
}

/* --- modules ----------------------------------------------------------------- */

/* Stop the signer threads; false when one is still stuck in the token. */
static bool pool_stop(struct p11_module *m)
{
	bool all = true;
	int n;

	pthread_mutex_lock(&m->pool_mu);
	m->stopping = true;
	pthread_cond_broadcast(&m->pool_cv);
	n = m->nthreads;
	pthread_mutex_unlock(&m->pool_mu);
	for (int i = 0; i < n; i++) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += STOP_GRACE_S;
		if (pthread_timedjoin_np(m->threads[i], NULL, &t) != 0) {
			pthread_detach(m->threads[i]);
			all = false;
		}
	}
	return all;
}

static void module_release(struct p11_module *m)
{
	pthread_mutex_lock(&modules_mu);
	if (--m->refs == 0) {
		if (!pool_stop(m)) {
			/* A thread is still inside the module: unloading it
			 * now would pull the code from under it. Keep it. */
			log_kv(LOG_WARN, "signer.stuck_at_close", "module", m->path, NULL);
			m->refs = 1;
			pthread_mutex_unlock(&modules_mu);
			return;
		}
		if (m->slots != NULL)
			PKCS11_release_all_slots(m->ctx, m->slots, m->nslots);
		PKCS11_CTX_unload(m->ctx);
		PKCS11_CTX_free(m->ctx);
		free(m->path);
		pthread_rwlock_destroy(&m->rw);
		pthread_mutex_destroy(&m->list_mu);
		pthread_mutex_destroy(&m->pool_mu);
		pthread_cond_destroy(&m->pool_cv);
		memset(m, 0, sizeof(*m));
	}
	pthread_mutex_unlock(&modules_mu);
}

static struct p11_module *module_get(const char *path, struct ca_err *err)
{
	struct p11_module *m = NULL, *free_slot = NULL;

	pthread_mutex_lock(&modules_mu);
	for (int i = 0; i < MAX_MODULES && m == NULL; i++) {
		if (modules[i].refs > 0 && strcmp(modules[i].path, path) == 0)
			m = &modules[i];
		else if (modules[i].refs == 0 && free_slot == NULL)
			free_slot = &modules[i];
	}
	if (m == NULL && free_slot == NULL)
		ca_err_set(err, CA_E_SIGNER, "more than %d PKCS#11 modules", MAX_MODULES);
	if (m == NULL && free_slot != NULL) {
		m = free_slot;
		if ((m->path = strdup(path)) == NULL || (m->ctx = PKCS11_CTX_new()) == NULL ||
		    PKCS11_CTX_load(m->ctx, path) != 0) {
			ca_err_ssl(err, CA_E_SIGNER, "cannot load PKCS#11 module %s", path);
			if (m->ctx != NULL)
				PKCS11_CTX_free(m->ctx);
			free(m->path);
			memset(m, 0, sizeof(*m));
			m = NULL;
		} else if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
			ca_err_ssl(err, CA_E_SIGNER, "cannot list PKCS#11 slots of %s", path);
			PKCS11_CTX_unload(m->ctx);
			PKCS11_CTX_free(m->ctx);
			free(m->path);
			memset(m, 0, sizeof(*m));
			m = NULL;
		} else {
			pthread_rwlockattr_t ra;
			/* A waiting re-open holds back new signers: it is not starved. */
			pthread_rwlockattr_init(&ra);
			pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
			pthread_rwlock_init(&m->rw, &ra);
			pthread_rwlockattr_destroy(&ra);
			pthread_mutex_init(&m->list_mu, NULL);
			pthread_mutex_init(&m->pool_mu, NULL);
			pthread_cond_init(&m->pool_cv, NULL);
			m->ok = true;
		}
	}
	if (m != NULL)
		m->refs++;
	pthread_mutex_unlock(&modules_mu);
	return m;
}

void sig_p11_close(sig_p11 *p)
{
	if (p == NULL)
		return;
	if (p->mod != NULL) {
		struct p11_module *m = p->mod;
		pthread_mutex_lock(&m->list_mu);
		for (struct sig_p11 **pp = &m->tokens; *pp != NULL; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		pthread_mutex_unlock(&m->list_mu);
		module_release(m);
	}
	sec_clear(&p->pin);
	free(p->label);
	free(p);
}

sig_p11 *sig_p11_open(const char *module, const char *token_label,
		      const sec_str *pin, struct ca_err *err)
{
	sig_p11 *p;
	struct p11_module *m;
	int rc;

	if ((p = calloc(1, sizeof(*p))) == NULL || (p->label = strdup(token_label)) == NULL ||
	    sec_set(&p->pin, pin->buf, pin->len) != 0) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		goto fail;
	}
	if ((p->mod = module_get(module, err)) == NULL)
		goto fail;
	m = p->mod;
	pthread_mutex_lock(&m->list_mu);
	if ((rc = token_attach(m, p, err)) == 0) {
		p->next = m->tokens;
		m->tokens = p;
	}
	pthread_mutex_unlock(&m->list_mu);
	if (rc != 0)
		goto fail;
	return p;
fail:
	sig_p11_close(p);
	return NULL;
}

/* --- the sig_ops of a PKCS#11 key -------------------------------------------- */

static int x509_sign_cb(EVP_PKEY *pk, void *x)
{
	return X509_sign(x, pk, sig_digest_for(pk));
}

static void x509_free_cb(void *x)
{
	X509_free(x);
}

static int p11_sign(sig_key *k, X509 *x, struct ca_err *err)
{
	if (!X509_up_ref(x)) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot reference the certificate");
		return -1;
	}
	return p11_submit((struct p11_key *)k, x509_sign_cb, x, x509_free_cb, err);
}

static int p11_submit_op(sig_key *k, int (*fn)(EVP_PKEY *, void *), void *obj, void (*obj_free)(void *),
			 struct ca_err *err)
{
	return p11_submit((struct p11_key *)k, fn, obj, obj_free, err);
}

/* On the calling thread, under the module lock: no deadline, but the key
 * cannot be re-opened (freed) while fn uses it. */
static int p11_with_privkey(sig_key *k, int (*fn)(EVP_PKEY *, void *), void *arg,
			    struct ca_err *err)
{
	struct sign_job j = { .key = (struct p11_key *)k, .fn = fn, .obj = arg };
	int rc = job_run(&j, err);

	ERR_clear_error();
	return rc;
}

static EVP_PKEY *p11_pub(sig_key *k)
{
	return ((struct p11_key *)k)->pub;
}

static EVP_PKEY *p11_priv(sig_key *k)
{
	return ((struct p11_key *)k)->priv;
}

/* Take k off its module's list: no re-open touches it after this. */
static void key_unlink(struct p11_key *k)
{
	if (k->mod == NULL)
		return;
	pthread_mutex_lock(&k->mod->list_mu);
	for (struct p11_key **pp = &k->mod->keys; *pp != NULL; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	pthread_mutex_unlock(&k->mod->list_mu);
}

static void key_free(struct p11_key *k)
{
	key_unlink(k);
	EVP_PKEY_free(k->priv);
	EVP_PKEY_free(k->pub);
	free(k->label);
	free(k);
}

static void key_unref(struct p11_key *k)
{
	if (atomic_fetch_sub(&k->refs, 1) == 1)
		key_free(k);
}

/* A job the caller gave up on may still hold the key: it is freed by
 * whoever lets go last, but leaves the module's list now (its token may be
 * closed next). */
static void p11_close(sig_key *k)
{
	struct p11_key *pk = (struct p11_key *)k;

	atomic_store(&pk->closed, true);
	key_unlink(pk);
	key_unref(pk);
}

static const struct sig_ops p11_ops = {
	.name = "pkcs11", .sign_x509 = p11_sign, .with_privkey = p11_with_privkey, .submit = p11_submit_op,
	.pubkey = p11_pub, .privkey = p11_priv, .close = p11_close,
};

/* A software copy of the token's public key: it stays valid across re-opens
 * and costs no token round trip. */
static EVP_PKEY *pub_copy(PKCS11_KEY *pub)
{
	EVP_PKEY *tok = PKCS11_get_public_key(pub), *copy = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;

	if (tok != NULL && (len = i2d_PUBKEY(tok, &der)) > 0) {
		p = der;
		copy = d2i_PUBKEY(NULL, &p, len);
	}
	OPENSSL_free(der);
	EVP_PKEY_free(tok);
	return copy;
}

sig_key *sig_p11_key(sig_p11 *p, const char *key_label, struct ca_err *err)
{
	struct p11_module *m = p->mod;
	struct p11_key *k;
	PKCS11_KEY *pub;

	if ((k = calloc(1, sizeof(*k))) == NULL || (k->label = strdup(key_label)) == NULL) {
		free(k);
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	k->base.ops = &p11_ops;
	k->tok = p;
	atomic_init(&k->refs, 1);
	atomic_init(&k->closed, false);
	pthread_mutex_lock(&m->list_mu);
	if (key_attach(k, err) != 0)
		; /* err says why */
	else if ((pub = find_key(p->slot->token, key_label, 0)) == NULL)
		ca_err_ssl(err, CA_E_SIGNER, "no public key labelled '%s' on the token", key_label);
	else if ((k->pub = pub_copy(pub)) == NULL)
		ca_err_ssl(err, CA_E_SIGNER, "cannot read public key '%s' on the token", key_label);
	else {
		k->mod = m;
		k->next = m->keys;
		m->keys = k;
	}
	pthread_mutex_unlock(&m->list_mu);
	if (k->mod == NULL) {
		key_free(k);
		return NULL;
	}
	return &k->base;
}
