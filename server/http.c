/* HTTPS routing on libmicrohttpd: collects the body within its limit,
 * establishes who is asking (client certificate or HTTP Basic), hands EST
 * requests to protocols/est and writes the answer. */
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "mintca/est.h"
#include "mintca/log.h"
#include "mintca/secret.h"
#include "http.h"
#include "http_int.h"

#define EST_PREFIX "/.well-known/est/"
#define MAX_PEER_CERTS 8
/* A body announced over the limit but at most this big is read and dropped
 * before the 413: closing a connection on unread bytes may reset it before
 * the client has read the answer. */
#define DRAIN_MAX (1024 * 1024)

/* What a listener hands its requests: with a thread pool, a connection
 * belongs to a worker daemon, so the listener is told by its own cls. */
struct listener {
	struct srv_http *h;
	bool plain;
};

struct srv_http {
	struct MHD_Daemon *d;
	struct MHD_Daemon *plain;        /* OCSP and CRLs over plain HTTP, or NULL */
	struct listener tls_l, plain_l;
	_Atomic(struct srv_state *) cur; /* swapped whole on reload, never locked */
	srv_workpool *pool;              /* runs EST and API requests (they wait on HSM and store) */
	char *cert_pem, *key_pem;
};


static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < 1024 * 1024 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static struct req_state *state_new(void)
{
	struct req_state *s = calloc(1, sizeof(*s));
	unsigned char r[8];

	if (s == NULL)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(s->id + 2 * i, 3, "%02x", r[i]);
	return s;
}

static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct req_state *s = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (s != NULL) {
		if (s->answer != NULL)
			MHD_destroy_response(s->answer);
		free(s->body);
		free(s);
	}
	*con_cls = NULL;
}

/* Keep at most max bytes of the body; note when more came. */
static void append_body(struct req_state *s, const char *data, size_t n, size_t max)
{
	if (s->too_large || s->len + n > max) {
		s->too_large = true;
		return;
	}
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		unsigned char *b;
		while (cap < s->len + n)
			cap *= 2;
		if (cap > max)
			cap = max;
		if ((b = realloc(s->body, cap)) == NULL) {
			s->too_large = true;
			return;
		}
		s->body = b;
		s->cap = cap;
	}
	memcpy(s->body + s->len, data, n);
	s->len += n;
}

enum MHD_Result srv_send(struct MHD_Connection *c, struct req_state *s, const char *method,
			 const char *url, unsigned status, const char *ctype,
			 const struct srv_hdr *hdrs, size_t n_hdrs, const void *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	struct timespec end;
	char ms[32], st[8];
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	if (ctype != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (size_t i = 0; i < n_hdrs; i++)
		if (hdrs[i].name != NULL && hdrs[i].value != NULL)
			MHD_add_response_header(r, hdrs[i].name, hdrs[i].value);
	MHD_add_response_header(r, "X-Request-Id", s->id);
	if (s->deferred) { /* on a pool thread: queued once the connection is resumed */
		s->answer = r;
		s->answer_status = status;
		ret = MHD_YES;
	} else {
		ret = MHD_queue_response(c, status, r);
		MHD_destroy_response(r);
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	snprintf(ms, sizeof(ms), "%.1f", (double)(end.tv_sec - s->start.tv_sec) * 1e3 +
		 (double)(end.tv_nsec - s->start.tv_nsec) / 1e6);
	snprintf(st, sizeof(st), "%u", status);
	/* Relying parties' OCSP and CRL fetches come by the ten thousand per
	 * second: their successes are logged at debug level only. */
	log_kv(s->relying_party && status < 400 ? LOG_DEBUG : LOG_INFO, "http.request", "req", s->id,
	       "method", method, "path", url, "status", st, "ms", ms, NULL);
	return ret;
}

enum MHD_Result srv_send_text(struct MHD_Connection *c, struct req_state *s, const char *method,
			      const char *url, unsigned status, const char *text)
{
	return srv_send(c, s, method, url, status, "text/plain; charset=utf-8", NULL, 0, text, strlen(text));
}

/* The verified client certificate of this connection, if any. */
X509 *srv_peer_identity(struct MHD_Connection *c, struct req_state *s, char anchor[CA_NAME_MAX])
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const gnutls_datum_t *peers;
	unsigned int n = 0;
	const unsigned char *ders[MAX_PEER_CERTS];
	size_t lens[MAX_PEER_CERTS];
	char why[160];
	X509 *leaf;

	if (ci == NULL || ci->tls_session == NULL)
		return NULL;
	peers = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n);
	if (peers == NULL || n == 0)
		return NULL;
	if (n > MAX_PEER_CERTS)
		n = MAX_PEER_CERTS;
	for (unsigned int i = 0; i < n; i++) {
		ders[i] = peers[i].data;
		lens[i] = peers[i].size;
	}
	leaf = srv_trust_verify(s->st->trust, ders, lens, n, anchor, why, sizeof(why));
	if (leaf == NULL)
		log_kv(LOG_INFO, "tls.client_cert_refused", "req", s->id, "why", why, NULL);
	return leaf;
}

/* HTTP Basic (RFC 7617) against the configured users. */
void srv_basic_identity(const struct cfg *cfg, struct MHD_Connection *c, struct ca_requester *who,
			bool *failed)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(c, &pass);
	const struct cfg_user *u;

	if (user == NULL) {
		/* An Authorization header we could not read is a failed attempt too. */
		*failed = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
		MHD_free(pass);
		return;
	}
	u = cfg_user_find(cfg, user);
	if (u != NULL && pass != NULL && strlen(user) < sizeof(who->id) &&
	    sec_check_password_cached(user, u->password_hash, pass, strlen(pass)) == 1) {
		who->kind = CA_AUTH_BASIC;
		snprintf(who->id, sizeof(who->id), "%s", user);
	} else {
		if (u == NULL && pass != NULL)
			sec_check_password_unknown_user(pass, strlen(pass));
		*failed = true;
	}
	if (pass != NULL) {
		OPENSSL_cleanse(pass, strlen(pass));
		MHD_free(pass);
	}
	MHD_free(user);
}

static enum MHD_Result handle_est(struct MHD_Connection *c, struct req_state *s,
				  const char *method, const char *url)
{
	char path[256], *label = NULL, *op, anchor[CA_NAME_MAX] = "";
	struct ca_requester who = { .kind = CA_AUTH_NONE, .id = "anonymous" };
	bool failed = false;
	X509 *peer = NULL;
	struct est_response resp;
	enum MHD_Result ret;

	if (strlen(url) - strlen(EST_PREFIX) >= sizeof(path))
		return srv_send_text(c, s, method, url, 404, "RFC 7030 §3.2.2: no such EST path\n");
	snprintf(path, sizeof(path), "%s", url + strlen(EST_PREFIX));
	if ((op = strchr(path, '/')) != NULL) {
		*op++ = '\0';
		label = path;
		if (strchr(op, '/') != NULL || label[0] == '\0')
			return srv_send_text(c, s, method, url, 404, "RFC 7030 §3.2.2: no such EST path\n");
	} else {
		op = path;
	}
	peer = srv_peer_identity(c, s, anchor);
	if (peer != NULL) {
		who.kind = CA_AUTH_CLIENT_CERT;
		snprintf(who.anchor, sizeof(who.anchor), "%s", anchor);
		X509_NAME_oneline(X509_get_subject_name(peer), who.id, sizeof(who.id));
	}
	/* Basic credentials, when given, name the requester (RFC 7030 §3.2.3). */
	srv_basic_identity(s->st->cfg, c, &who, &failed);
	struct est_request req = {
		.method = method, .label = label, .op = op,
		.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
		.body = s->body, .body_len = s->len, .body_too_large = s->too_large,
		.who = &who, .auth_failed = failed, .peer_cert = peer, .reqid = s->id,
	};
	{
		ca_ctx *ca;
		const char *profile;
		(void)srv_cas_route(s->st->cas, label, s->st->cfg->est_default_profile, &ca, &profile);
		est_handle(ca, profile, &req, &resp);
	}
	{
		char retry[16];
		bool get_op = strcmp(op, "cacerts") == 0 || strcmp(op, "csrattrs") == 0;
		struct srv_hdr h[4] = {
			{ "Content-Transfer-Encoding", resp.base64_transfer ? "base64" : NULL },
			{ MHD_HTTP_HEADER_WWW_AUTHENTICATE, resp.ask_basic_auth ? "Basic realm=\"mintca EST\"" : NULL },
			{ MHD_HTTP_HEADER_RETRY_AFTER, NULL },
			/* RFC 9110 §15.5.6: a 405 says what is allowed. */
			{ MHD_HTTP_HEADER_ALLOW, resp.status != 405 ? NULL : get_op ? "GET" : "POST" },
		};
		if (resp.retry_after > 0) {
			snprintf(retry, sizeof(retry), "%u", resp.retry_after);
			h[2].value = retry;
		}
		ret = srv_send(c, s, method, url, resp.status, resp.content_type, h, 4,
			       resp.body ? resp.body : "", resp.body_len);
	}
	est_response_free(&resp);
	X509_free(peer);
	return ret;
}

static void run_deferred(struct srv_job *j)
{
	struct req_state *s = (struct req_state *)((char *)j - offsetof(struct req_state, job));
	struct MHD_Connection *c = s->conn;

	(void)s->route(c, s, s->method, s->url);
	s->answered = true; /* with s->answer NULL, the connection is closed */
	MHD_resume_connection(c);
}

/* The HTTP thread goes on with other connections' handshakes and requests
 * while this one waits on the HSM or the store. */
enum MHD_Result srv_defer(struct MHD_Connection *c, struct req_state *s, const char *method,
			  const char *url,
			  enum MHD_Result (*route)(struct MHD_Connection *, struct req_state *,
						   const char *, const char *))
{
	static const struct srv_hdr retry = { MHD_HTTP_HEADER_RETRY_AFTER, "1" };
	static const char busy[] = "server stopping or busy, retry shortly\n";

	s->conn = c;
	s->method = method;
	s->url = url;
	s->route = route;
	s->job.run = run_deferred;
	s->deferred = true;
	MHD_suspend_connection(c);
	if (!srv_workpool_submit(s->pool, &s->job)) { /* stopping: answered like a finished job */
		/* the operator API refuses with its own problem documents */
		if (strncmp(url, "/api/", 5) == 0)
			(void)srv_api_problem(c, s, method, url, 503, "server stopping or busy",
					      "retry shortly");
		else
			(void)srv_send(c, s, method, url, 503, "text/plain; charset=utf-8", &retry, 1,
				       busy, strlen(busy));
		s->answered = true;
		MHD_resume_connection(c);
	}
	return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c, const char *url,
				      const char *method, const char *version, const char *upload_data,
				      size_t *upload_data_size, void **con_cls)
{
	const struct listener *l = cls;
	struct srv_http *h = l->h;
	struct req_state *s = *con_cls;

	(void)version;
	if (s == NULL) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if ((s = state_new()) == NULL)
			return MHD_NO;
		*con_cls = s;
		s->st = atomic_load(&h->cur);
		s->plain = l->plain;
		s->pool = h->pool;
		/* Refuse an announced oversized body before reading it when the
		 * client waits for that (Expect: 100-continue) or it is huge. */
		if (cl != NULL && strtoull(cl, NULL, 10) > s->st->cfg->max_body_bytes &&
		    (strtoull(cl, NULL, 10) > DRAIN_MAX ||
		     MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT) != NULL))
			return srv_send_text(c, s, method, url, 413, "request body larger than the server accepts\n");
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		append_body(s, upload_data, *upload_data_size, s->st->cfg->max_body_bytes);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (s->answered) { /* resumed after a pool thread answered */
		enum MHD_Result ret = MHD_NO;
		if (s->answer != NULL) {
			ret = MHD_queue_response(c, s->answer_status, s->answer);
			MHD_destroy_response(s->answer);
			s->answer = NULL;
		}
		return ret;
	}
	if (s->too_large)
		return srv_send_text(c, s, method, url, 413, "request body larger than the server accepts\n");
	/* Relying parties fetch OCSP and CRLs over plain HTTP too (RFC 5019 §5,
	 * RFC 5280 §4.2.1.13); everything else needs TLS. */
	s->relying_party = strcmp(url, "/ocsp") == 0 || strncmp(url, "/ocsp/", 6) == 0 ||
			   strncmp(url, "/crl/", 5) == 0;
	if (strcmp(url, "/ocsp") == 0 || strncmp(url, "/ocsp/", 6) == 0)
		return srv_http_ocsp(c, s, method, url);
	if (strncmp(url, "/crl/", 5) == 0)
		return srv_http_crl(c, s, method, url);
	if (strncmp(url, "/ca/", 4) == 0)
		return srv_http_ca(c, s, method, url);
	if (strcmp(url, "/health") == 0) {
		static const struct srv_hdr allow = { MHD_HTTP_HEADER_ALLOW, "GET, HEAD" };
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return srv_send(c, s, method, url, 405, "text/plain; charset=utf-8", &allow, 1,
					"/health takes GET or HEAD\n", strlen("/health takes GET or HEAD\n"));
		return srv_send_text(c, s, method, url, 200, "ok\n");
	}
	if (s->plain)
		return srv_send_text(c, s, method, url, 404, "not found (over plain HTTP only /ocsp, /crl/ and /ca/)\n");
	if (strncmp(url, EST_PREFIX, strlen(EST_PREFIX)) == 0)
		return srv_defer(c, s, method, url, handle_est);
	if (strncmp(url, "/api/", 5) == 0)
		return srv_defer(c, s, method, url, srv_http_api);
	return srv_send_text(c, s, method, url, 404, "not found\n");
}

void srv_state_free(struct srv_state *st)
{
	if (st == NULL)
		return;
	srv_trust_free(st->trust);
	srv_cas_free(st->cas);
	cfg_free(st->cfg);
	free(st);
}

struct srv_state *srv_http_swap(srv_http *h, struct srv_state *next)
{
	return atomic_exchange(&h->cur, next);
}

srv_http *srv_http_start(struct srv_state *st, struct ca_err *err)
{
	srv_http *h = calloc(1, sizeof(*h));
	const struct cfg *c = st->cfg;
	const srv_trust *trust = st->trust;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };

	if (h == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		return NULL;
	}
	atomic_init(&h->cur, st);
	h->tls_l = (struct listener){ h, false };
	h->plain_l = (struct listener){ h, true };
	if (inet_pton(AF_INET, c->listen, &addr.sin_addr) != 1) {
		ca_err_set(err, CA_E_CONFIG, "%s: server.listen: '%s' is not an IPv4 address", c->path, c->listen);
		goto fail;
	}
	if ((h->cert_pem = slurp(c->tls_cert_file)) == NULL || (h->key_pem = slurp(c->tls_key_file)) == NULL) {
		ca_err_set(err, CA_E_CONFIG, "cannot read TLS files %s / %s", c->tls_cert_file, c->tls_key_file);
		goto fail;
	}
	/* One job per connection at most: the queue never needs more room. */
	if ((h->pool = srv_workpool_start(c->workers, c->max_connections)) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "cannot start %u worker threads", c->workers);
		goto fail;
	}
	h->d = MHD_start_daemon(
		MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
			MHD_ALLOW_SUSPEND_RESUME,
		0, NULL, NULL, access_handler, &h->tls_l,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_HTTPS_MEM_CERT, h->cert_pem,
		MHD_OPTION_HTTPS_MEM_KEY, h->key_pem,
		/* Ask for (not require) a client certificate; verified per request. */
		MHD_OPTION_HTTPS_MEM_TRUST, srv_trust_pem(trust),
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)c->threads,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)c->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)c->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)c->connection_timeout_s,
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
		MHD_OPTION_END);
	if (h->d == NULL) {
		ca_err_set(err, CA_E_CONFIG, "cannot listen on %s:%u (in use, or bad TLS files)", c->listen, c->port);
		goto fail;
	}
	if (c->http_port != 0) {
		struct sockaddr_in paddr = addr;
		paddr.sin_port = htons((uint16_t)c->http_port);
		h->plain = MHD_start_daemon(
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME,
			0, NULL, NULL, access_handler, &h->plain_l,
			MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&paddr,
			MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)c->threads,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned int)c->max_connections,
			MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)c->max_connections_per_ip,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)c->connection_timeout_s,
			MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
			MHD_OPTION_END);
		if (h->plain == NULL) {
			ca_err_set(err, CA_E_CONFIG, "cannot listen on %s:%u (server.http_port in use?)",
				   c->listen, c->http_port);
			goto fail;
		}
	}
	return h;
fail:
	srv_http_stop(h);
	return NULL;
}

void srv_http_stop(srv_http *h)
{
	if (h == NULL)
		return;
	/* Requests on the pool finish (and resume their connections) before
	 * the daemon stops: MHD must not be stopped with one suspended. Until
	 * then, new ones are answered 503 by the HTTP threads. */
	srv_workpool_stop(h->pool);
	if (h->plain != NULL)
		MHD_stop_daemon(h->plain);
	if (h->d != NULL)
		MHD_stop_daemon(h->d);
	srv_workpool_free(h->pool);
	free(h->cert_pem);
	if (h->key_pem != NULL) {
		OPENSSL_cleanse(h->key_pem, strlen(h->key_pem));
		free(h->key_pem);
	}
	free(h);
}
