/* loadgen: an HTTP(S) load generator for tests/bench (OCSP and EST load).
 *
 *   loadgen -p PORT --path PATH [options]
 *
 * Keeps N connections to 127.0.0.1:PORT busy for a fixed time, each sending
 * the next of a set of prebuilt requests as soon as the last answer is in
 * (closed loop), or, with --rate, starting requests at a fixed overall rate
 * (open loop: a request that has to wait for a free connection is timed from
 * when it was due, so a slow server is not hidden). Reports responses per
 * second, latency p50/p99/max, errors and stalled requests (slower than
 * --stall-ms, or still unanswered at the end).
 *
 * Requests (built once, before the clock starts):
 *   --method GET|POST         (POST)
 *   --body FILE               one request body; repeatable (up to 64)
 *   --bodies FILE             many bodies: records of a 4-byte big-endian
 *                             length and the bytes (bench_ocspgen writes them)
 *   --get-b64                 GET PATH/<url-encoded base64 of each body>
 *                             (RFC 5019 §A.1 OCSP GET) instead of a POST
 *   --content-type TYPE       Content-Type of POST bodies
 *   --header-file FILE        header lines added to every request as they are
 *                             (e.g. Authorization); never printed
 * Connections:
 *   -c N        connections (16)            -t N   threads, each its own epoll (1)
 *   --tls       TLS (full handshake: no session cache, no tickets; the
 *               server certificate is not verified: this measures the server)
 *   --new-conn  a new connection (and handshake) for every request
 *   --sni NAME  (localhost)
 * Timing:
 *   -d SECONDS  measured time (10)          -w SECONDS  warm-up, not measured (2)
 *   --rate R    start R requests per second in all (default: closed loop)
 *   --stall-ms MS (1000)   --timeout-ms MS (10000: the request fails)
 * Checks:
 *   --expect STATUS (200)  --check-ocsp (every 64th answer must decode as a
 *   successful OCSPResponse)   --label NAME (for the output)
 *
 * A server that answers HTTP/1.0 or "Connection: close" (openssl ocsp does)
 * makes loadgen open a new connection for the next request; the connect is part of that
 * request's latency. Answers need a Content-Length or end at close; chunked
 * answers are counted as errors (none of the servers measured sends them).
 *
 * Output: a human line, then one line for scripts:
 *   RESULT label=L n=N seconds=S rps=R p50_ms=A p99_ms=B max_ms=C errors=E
 *          stalled=S body_avg=BYTES conns_opened=K
 * Exit status 0 when the run took place (whatever the figures), 1 on a usage
 * or set-up error. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>

#define MAX_BODIES_ARGS 64
#define MAX_REQUESTS (1u << 20)
#define MAX_BODY (64u * 1024)
#define MAX_HEADERS_FILE 4096
#define MAX_ANSWER (4u * 1024 * 1024)
#define MAX_CONNS 4096
#define MAX_THREADS 16
#define MAX_SAMPLES_PER_THREAD (1u << 26)
#define OCSP_CHECK_EVERY 64

struct opts {
	unsigned port;
	const char *path, *method, *ctype, *header_file, *sni, *label;
	const char *body_files[MAX_BODIES_ARGS];
	unsigned n_body_files;
	const char *bodies_file;
	bool get_b64, tls, new_conn, check_ocsp;
	unsigned conns, threads, stall_ms, timeout_ms;
	int expect;
	double seconds, warmup, rate;
};

struct request {
	char *buf;
	size_t len;
};

enum err_kind { E_CONNECT, E_TLS, E_SEND, E_CLOSED, E_STATUS, E_PARSE, E_TIMEOUT, E_BODY, E_KINDS };
static const char *const err_names[E_KINDS] = {
	"connect", "tls", "send", "closed_early", "status", "parse", "timeout", "bad_body",
};

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_SEND, C_RECV };

struct thr;

struct conn {
	struct thr *t;
	int fd;
	SSL *ssl;
	enum cstate st;
	bool open;          /* connected (and handshake done) */
	bool reused;        /* the current request went out on a kept-alive connection */
	uint32_t mask;      /* events registered with epoll, 0 = not registered */
	size_t next_req;
	const struct request *req;
	size_t sent;
	char *rbuf;
	size_t rlen, rcap;
	size_t head_len;    /* 0 until the header block is complete */
	long long body_len; /* -1: until the server closes */
	bool close_after;
	int status;
	double t_start;     /* when the request started (in --rate mode: was due) */
	double wake_at;     /* an idle connection after a failure waits until then */
};

struct thr {
	pthread_t id;
	unsigned index;
	int ep;
	struct conn *conns;
	unsigned nconns;
	double rate;        /* this thread's share, 0 = closed loop */
	double next_due;
	/* results, in the measured window only */
	uint32_t *lat_us;
	size_t nlat, caplat;
	unsigned long long ok, errors[E_KINDS], stalled, dropped_samples, conns_opened, answers;
	unsigned long long body_bytes;
	int first_bad_status;
};

static struct opts o = {
	.method = "POST", .sni = "localhost", .label = "loadgen", .conns = 16, .threads = 1,
	.stall_ms = 1000, .timeout_ms = 10000, .expect = 200, .seconds = 10, .warmup = 2,
};
static struct request *reqs;
static size_t nreqs;
static SSL_CTX *tls_ctx;
static struct sockaddr_in target;
static double t_measure, t_end;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen -p PORT --path PATH [--method GET|POST] [--body FILE]... [--bodies FILE]\n"
		"               [--get-b64] [--content-type T] [--header-file FILE] [-c CONNS] [-t THREADS]\n"
		"               [--tls] [--new-conn] [--sni NAME] [-d SECONDS] [-w SECONDS] [--rate R]\n"
		"               [--stall-ms MS] [--timeout-ms MS] [--expect STATUS] [--check-ocsp] [--label L]\n"
		"(the comment at the top of tests/bench/loadgen.c says what each does)\n");
}

/* --- building the requests ---------------------------------------------- */

/* The whole of a file, at most max bytes; caller frees *out. 0 or -1. */
static int read_file(const char *path, size_t max, unsigned char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (n == cap) {
			size_t ncap = cap == 0 ? 4096 : cap * 2;
			unsigned char *nb;
			if (cap >= max + 1) {
				fprintf(stderr, "loadgen: %s: larger than %zu bytes\n", path, max);
				goto out;
			}
			if (ncap > max + 1)
				ncap = max + 1;
			if ((nb = realloc(buf, ncap)) == NULL)
				goto out;
			buf = nb;
			cap = ncap;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f) || n > max) {
		fprintf(stderr, "loadgen: %s: read error or larger than %zu bytes\n", path, max);
		goto out;
	}
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

/* Append to a growable string with a cap. 0 or -1. */
struct sbuf {
	char *p;
	size_t len, cap, max;
};

static int sb_add(struct sbuf *b, const void *data, size_t n)
{
	if (n > b->max - b->len)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap == 0 ? 512 : b->cap;
		char *np;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int sb_str(struct sbuf *b, const char *s)
{
	return sb_add(b, s, strlen(s));
}

/* One complete HTTP/1.1 request for body (b64 GET or POST). 0 or -1. */
static int build_request(const unsigned char *body, size_t blen, const unsigned char *extra,
			 size_t extra_len, struct request *r)
{
	struct sbuf b = { .max = 4 * MAX_BODY + MAX_HEADERS_FILE + 1024 };
	char line[256];
	unsigned char *b64 = NULL;
	int rc = -1;

	if (sb_str(&b, o.get_b64 ? "GET " : o.method) != 0)
		goto out;
	if (!o.get_b64 && sb_str(&b, " ") != 0)
		goto out;
	if (sb_str(&b, o.path) != 0)
		goto out;
	if (o.get_b64) {
		/* RFC 5019 §A.1: base64 of the DER, then URL-encoded. */
		if ((b64 = malloc(4 * ((blen + 2) / 3) + 1)) == NULL)
			goto out;
		int n = EVP_EncodeBlock(b64, body, (int)blen);
		if (n < 0 || (o.path[strlen(o.path) - 1] != '/' && sb_str(&b, "/") != 0))
			goto out;
		for (int i = 0; i < n; i++) {
			const char *enc = b64[i] == '+' ? "%2B" : b64[i] == '/' ? "%2F" : b64[i] == '=' ? "%3D" : NULL;
			if (enc != NULL ? sb_str(&b, enc) != 0 : sb_add(&b, &b64[i], 1) != 0)
				goto out;
		}
	}
	snprintf(line, sizeof(line), " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: %s\r\n", o.port,
		 o.new_conn ? "close" : "keep-alive");
	if (sb_str(&b, line) != 0)
		goto out;
	if (!o.get_b64 && strcmp(o.method, "GET") != 0) {
		if (o.ctype != NULL) {
			snprintf(line, sizeof(line), "Content-Type: %s\r\n", o.ctype);
			if (sb_str(&b, line) != 0)
				goto out;
		}
		snprintf(line, sizeof(line), "Content-Length: %zu\r\n", blen);
		if (sb_str(&b, line) != 0)
			goto out;
	}
	if (extra_len > 0 && sb_add(&b, extra, extra_len) != 0)
		goto out;
	if (sb_str(&b, "\r\n") != 0)
		goto out;
	if (!o.get_b64 && strcmp(o.method, "GET") != 0 && sb_add(&b, body, blen) != 0)
		goto out;
	r->buf = b.p;
	r->len = b.len;
	b.p = NULL;
	rc = 0;
out:
	free(b.p);
	free(b64);
	return rc;
}

/* The header file as CRLF-terminated lines (blank lines dropped). */
static int load_headers(unsigned char **out, size_t *out_len)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	struct sbuf b = { .max = 2 * MAX_HEADERS_FILE };
	int rc = -1;

	*out = NULL;
	*out_len = 0;
	if (o.header_file == NULL)
		return 0;
	if (read_file(o.header_file, MAX_HEADERS_FILE, &raw, &len) != 0)
		return -1;
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && raw[j] != '\n')
			j++;
		size_t e = j;
		if (e > i && raw[e - 1] == '\r')
			e--;
		if (e > i) {
			if (memchr(raw + i, ':', e - i) == NULL) {
				fprintf(stderr, "loadgen: %s: a line without ':'\n", o.header_file);
				goto out;
			}
			if (sb_add(&b, raw + i, e - i) != 0 || sb_str(&b, "\r\n") != 0)
				goto out;
		}
		i = j + 1;
	}
	*out = (unsigned char *)b.p;
	*out_len = b.len;
	b.p = NULL;
	rc = 0;
out:
	if (raw != NULL)
		OPENSSL_cleanse(raw, len);
	free(raw);
	free(b.p);
	return rc;
}

static int add_request(const unsigned char *body, size_t blen, const unsigned char *extra, size_t elen)
{
	struct request *nr;

	if (nreqs >= MAX_REQUESTS) {
		fprintf(stderr, "loadgen: more than %u requests\n", MAX_REQUESTS);
		return -1;
	}
	if ((nreqs & (nreqs - 1)) == 0) { /* grow at powers of two */
		if ((nr = realloc(reqs, (nreqs == 0 ? 1 : nreqs * 2) * sizeof(*reqs))) == NULL)
			return -1;
		reqs = nr;
	}
	if (build_request(body, blen, extra, elen, &reqs[nreqs]) != 0) {
		fprintf(stderr, "loadgen: cannot build request %zu\n", nreqs + 1);
		return -1;
	}
	nreqs++;
	return 0;
}

static int build_requests(void)
{
	unsigned char *extra = NULL, *data = NULL;
	size_t elen = 0, dlen = 0;
	int rc = -1;

	if (load_headers(&extra, &elen) != 0)
		goto out;
	for (unsigned i = 0; i < o.n_body_files; i++) {
		if (read_file(o.body_files[i], MAX_BODY, &data, &dlen) != 0 || add_request(data, dlen, extra, elen) != 0)
			goto out;
		free(data);
		data = NULL;
	}
	if (o.bodies_file != NULL) {
		if (read_file(o.bodies_file, (size_t)MAX_REQUESTS * 512, &data, &dlen) != 0)
			goto out;
		size_t i = 0;
		while (i < dlen) {
			if (dlen - i < 4) {
				fprintf(stderr, "loadgen: %s: truncated record\n", o.bodies_file);
				goto out;
			}
			size_t n = (size_t)data[i] << 24 | (size_t)data[i + 1] << 16 | (size_t)data[i + 2] << 8 | data[i + 3];
			i += 4;
			if (n > MAX_BODY || n > dlen - i) {
				fprintf(stderr, "loadgen: %s: bad record length %zu\n", o.bodies_file, n);
				goto out;
			}
			if (add_request(data + i, n, extra, elen) != 0)
				goto out;
			i += n;
		}
	}
	if (o.n_body_files == 0 && o.bodies_file == NULL && add_request((const unsigned char *)"", 0, extra, elen) != 0)
		goto out;
	if (nreqs == 0) {
		fprintf(stderr, "loadgen: no requests\n");
		goto out;
	}
	rc = 0;
out:
	if (extra != NULL)
		OPENSSL_cleanse(extra, elen);
	free(extra);
	free(data);
	return rc;
}

/* --- one connection ------------------------------------------------------- */

static void watch(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->mask == events)
		return;
	if (epoll_ctl(c->t->ep, c->mask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->mask = events;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		/* One close_notify, not waited for. */
		if (c->open)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	ERR_clear_error();
	c->fd = -1;
	c->mask = 0;
	c->open = false;
}

static bool measured(const struct conn *c)
{
	return c->t_start >= t_measure;
}

static void fail(struct conn *c, enum err_kind k)
{
	double now = now_s();

	if (measured(c) && now <= t_end) {
		c->t->errors[k]++;
		if (k == E_TIMEOUT)
			c->t->stalled++;
	}
	conn_close(c);
	c->st = C_IDLE;
	/* A server that refuses connections must not make us spin. */
	c->wake_at = now + (k == E_CONNECT ? 0.01 : 0);
}

static void record(struct thr *t, double lat_s)
{
	if (t->nlat == t->caplat) {
		size_t ncap = t->caplat == 0 ? 65536 : t->caplat * 2;
		uint32_t *np;
		if (ncap > MAX_SAMPLES_PER_THREAD || (np = realloc(t->lat_us, ncap * sizeof(*np))) == NULL) {
			t->dropped_samples++;
			return;
		}
		t->lat_us = np;
		t->caplat = ncap;
	}
	double us = lat_s * 1e6;
	t->lat_us[t->nlat++] = us >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Whether the body is a successful OCSPResponse. */
static bool ocsp_ok(const unsigned char *p, size_t n)
{
	const unsigned char *q = p;
	OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &q, (long)n);
	bool ok = r != NULL && q == p + n && OCSP_response_status(r) == OCSP_RESPONSE_STATUS_SUCCESSFUL;

	OCSP_RESPONSE_free(r);
	ERR_clear_error();
	return ok;
}

static void complete(struct conn *c)
{
	struct thr *t = c->t;
	double now = now_s();
	bool in_window = measured(c) && now <= t_end;

	t->answers++;
	if (c->status != o.expect) {
		if (t->first_bad_status == 0)
			t->first_bad_status = c->status;
		if (in_window)
			t->errors[E_STATUS]++;
	} else if (o.check_ocsp && (t->answers <= 16 || t->answers % OCSP_CHECK_EVERY == 0) &&
		   !ocsp_ok((unsigned char *)c->rbuf + c->head_len, c->rlen - c->head_len)) {
		if (in_window)
			t->errors[E_BODY]++;
	} else if (in_window) {
		double lat = now - c->t_start;
		t->ok++;
		t->body_bytes += c->rlen - c->head_len;
		record(t, lat);
		if (lat * 1000.0 > o.stall_ms)
			t->stalled++;
	}
	if (o.new_conn || c->close_after)
		conn_close(c);
	c->st = C_IDLE;
	c->wake_at = 0;
}

/* Parse the status line and the headers we need. 0 or -1. */
static int parse_head(struct conn *c, size_t head_len)
{
	char *p = c->rbuf, *end = c->rbuf + head_len;
	bool http10;

	if (head_len < 12 || strncmp(p, "HTTP/1.", 7) != 0)
		return -1;
	http10 = p[7] == '0';
	if (p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	c->body_len = -1;
	c->close_after = http10;
	p = memchr(p, '\n', (size_t)(end - p));
	while (p != NULL && ++p < end) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol == NULL ? (size_t)(end - p) : (size_t)(eol - p);
		if (n >= 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
			char *q = p + 15, *qe;
			while (*q == ' ' || *q == '\t')
				q++;
			errno = 0;
			long long v = strtoll(q, &qe, 10);
			if (errno != 0 || qe == q || v < 0 || v > (long long)MAX_ANSWER)
				return -1;
			c->body_len = v;
		} else if (n >= 11 && strncasecmp(p, "Connection:", 11) == 0) {
			const char *q = p + 11;
			while (*q == ' ' || *q == '\t')
				q++;
			if (strncasecmp(q, "close", 5) == 0)
				c->close_after = true;
			else if (strncasecmp(q, "keep-alive", 10) == 0)
				c->close_after = false;
		} else if (n >= 18 && strncasecmp(p, "Transfer-Encoding:", 18) == 0) {
			return -1; /* chunked: not supported, see the top */
		}
		p = eol;
	}
	/* 1xx, 204 and 304 have no body. */
	if (c->status < 200 || c->status == 204 || c->status == 304)
		c->body_len = 0;
	if (c->body_len < 0)
		c->close_after = true;
	return 0;
}

static void step(struct conn *c);

static void begin(struct conn *c, double t_start)
{
	struct thr *t = c->t;

	c->req = &reqs[c->next_req];
	c->next_req = (c->next_req + 1) % nreqs;
	c->sent = 0;
	c->rlen = 0;
	c->head_len = 0;
	c->t_start = t_start;
	c->reused = c->open;
	if (c->open) {
		c->st = C_SEND;
		step(c);
		return;
	}
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		fail(c, E_CONNECT);
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (now_s() >= t_measure)
		t->conns_opened++;
	if (connect(c->fd, (struct sockaddr *)&target, sizeof(target)) != 0 && errno != EINPROGRESS) {
		fail(c, E_CONNECT);
		return;
	}
	c->st = C_CONNECTING;
	watch(c, EPOLLOUT);
}

/* Drive the connection as far as it goes without blocking. */
static void step(struct conn *c)
{
	for (;;) {
		switch (c->st) {
		case C_IDLE:
			return;
		case C_CONNECTING: {
			int err = 0;
			socklen_t len = sizeof(err);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == EINPROGRESS) {
				watch(c, EPOLLOUT);
				return;
			}
			if (err != 0) {
				fail(c, E_CONNECT);
				return;
			}
			struct sockaddr_in peer;
			socklen_t plen = sizeof(peer);
			if (getpeername(c->fd, (struct sockaddr *)&peer, &plen) != 0) {
				watch(c, EPOLLOUT); /* a stale event: not connected yet */
				return;
			}
			if (!o.tls) {
				c->open = true;
				c->st = C_SEND;
				break;
			}
			if ((c->ssl = SSL_new(tls_ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd) ||
			    !SSL_set_tlsext_host_name(c->ssl, o.sni)) {
				fail(c, E_TLS);
				return;
			}
			SSL_set_connect_state(c->ssl);
			c->st = C_HANDSHAKE;
			break;
		}
		case C_HANDSHAKE: {
			int r = SSL_do_handshake(c->ssl);
			if (r == 1) {
				c->open = true;
				c->st = C_SEND;
				break;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				watch(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			fail(c, E_TLS);
			return;
		}
		case C_SEND: {
			const char *p = c->req->buf + c->sent;
			size_t n = c->req->len - c->sent;
			long w;
			if (c->ssl == NULL) {
				ssize_t sw = send(c->fd, p, n, MSG_NOSIGNAL);
				if (sw < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
					watch(c, EPOLLOUT);
					return;
				}
				w = (long)sw;
			} else {
				int r = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
				if (r <= 0) {
					int e = SSL_get_error(c->ssl, r);
					if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
						watch(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
						return;
					}
				}
				w = r;
			}
			if (w <= 0) {
				/* A kept-alive connection the server had closed: once more on a new one. */
				if (c->reused && c->sent == 0) {
					conn_close(c);
					begin(c, c->t_start);
					return;
				}
				fail(c, E_SEND);
				return;
			}
			c->sent += (size_t)w;
			if (c->sent == c->req->len) {
				c->st = C_RECV;
				watch(c, EPOLLIN);
				return; /* the answer cannot be there yet */
			}
			break;
		}
		case C_RECV: {
			if (c->rcap - c->rlen < 4096) {
				size_t ncap = c->rcap == 0 ? 16384 : c->rcap * 2;
				char *nb;
				if (ncap > MAX_ANSWER + 65536 || (nb = realloc(c->rbuf, ncap + 1)) == NULL) {
					fail(c, E_PARSE);
					return;
				}
				c->rbuf = nb;
				c->rcap = ncap;
			}
			long r;
			bool eof = false;
			if (c->ssl == NULL) {
				ssize_t rr = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
				if (rr < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
					watch(c, EPOLLIN);
					return;
				}
				if (rr < 0 && errno == EINTR)
					break;
				r = (long)rr;
				eof = rr <= 0;
			} else {
				size_t want = c->rcap - c->rlen;
				int rr = SSL_read(c->ssl, c->rbuf + c->rlen, want > INT_MAX ? INT_MAX : (int)want);
				if (rr <= 0) {
					int e = SSL_get_error(c->ssl, rr);
					if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
						watch(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
						return;
					}
					eof = true;
				}
				r = rr;
			}
			if (!eof)
				c->rlen += (size_t)r;
			c->rbuf[c->rlen] = '\0';
			if (c->head_len == 0) {
				char *h = strstr(c->rbuf, "\r\n\r\n");
				if (h != NULL) {
					c->head_len = (size_t)(h - c->rbuf) + 4;
					if (parse_head(c, c->head_len) != 0) {
						fail(c, E_PARSE);
						return;
					}
				} else if (c->rlen > 65536) {
					fail(c, E_PARSE);
					return;
				}
			}
			if (c->head_len != 0 && c->body_len >= 0 &&
			    c->rlen - c->head_len >= (size_t)c->body_len) {
				c->rlen = c->head_len + (size_t)c->body_len; /* nothing is pipelined */
				complete(c);
				return;
			}
			if (eof) {
				if (c->head_len != 0 && c->body_len < 0) {
					c->open = false; /* the server closed: the answer ends here */
					complete(c);
					conn_close(c);
					return;
				}
				if (c->reused && c->rlen == 0) {
					/* Closed between requests: once more on a new connection. */
					conn_close(c);
					begin(c, c->t_start);
					return;
				}
				fail(c, c->rlen == 0 ? E_CLOSED : E_PARSE);
				return;
			}
			break;
		}
		}
	}
}

/* --- the threads ---------------------------------------------------------- */

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	struct epoll_event evs[256];
	double interval = t->rate > 0 ? 1.0 / t->rate : 0;

	t->next_due = now_s();
	for (;;) {
		double now = now_s();
		if (now >= t_end)
			break;
		bool waiting = false, idle = false;
		for (unsigned i = 0; i < t->nconns; i++) {
			struct conn *c = &t->conns[i];
			if (c->st != C_IDLE) {
				if (now - c->t_start > o.timeout_ms / 1000.0)
					fail(c, E_TIMEOUT);
				continue;
			}
			if (c->wake_at > now) {
				waiting = true;
				continue;
			}
			if (interval == 0) {
				begin(c, now);
			} else if (t->next_due <= now) {
				double due = t->next_due;
				t->next_due += interval;
				begin(c, due);
			} else {
				idle = true;
			}
		}
		int timeout_ms = 50;
		/* Due requests without a free connection wait for an answer (an
		 * event), not in a busy loop that would take the server's CPU. */
		if (interval > 0 && idle) {
			double d = (t->next_due - now_s()) * 1000.0;
			timeout_ms = d <= 0 ? 0 : d < 50 ? (int)ceil(d) : 50;
		} else if (waiting) {
			timeout_ms = 10;
		}
		int n = epoll_wait(t->ep, evs, 256, timeout_ms);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->st != C_IDLE)
				step(c);
			else if (c->open)
				conn_close(c); /* an idle kept-alive connection: the server closed it */
		}
	}
	/* Requests still open at the end: stalled if they are already late. */
	double now = now_s();
	for (unsigned i = 0; i < t->nconns; i++) {
		struct conn *c = &t->conns[i];
		if (c->st != C_IDLE && measured(c) && (now - c->t_start) * 1000.0 > o.stall_ms)
			t->stalled++;
		conn_close(c);
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)ceil(p * (double)n) - 1;
	if (i >= n)
		i = n - 1;
	return v[i] / 1000.0;
}

/* --- options -------------------------------------------------------------- */

static int num(const char *name, const char *s, double lo, double hi, double *out)
{
	char *e;

	errno = 0;
	double v = strtod(s, &e);
	if (errno != 0 || e == s || *e != '\0' || !(v >= lo && v <= hi)) {
		fprintf(stderr, "loadgen: %s must be a number in %g..%g\n", name, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		double d;
		bool flag = true;

		if (strcmp(a, "--tls") == 0)
			o.tls = true;
		else if (strcmp(a, "--new-conn") == 0)
			o.new_conn = true;
		else if (strcmp(a, "--get-b64") == 0)
			o.get_b64 = true;
		else if (strcmp(a, "--check-ocsp") == 0)
			o.check_ocsp = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			exit(0);
		} else
			flag = false;
		if (flag)
			continue;
		if (v == NULL) {
			fprintf(stderr, "loadgen: %s needs a value\n", a);
			return -1;
		}
		i++;
		if (strcmp(a, "-p") == 0) {
			if (num(a, v, 1, 65535, &d) != 0)
				return -1;
			o.port = (unsigned)d;
		} else if (strcmp(a, "--path") == 0) {
			if (v[0] != '/' || strpbrk(v, " \r\n") != NULL) {
				fprintf(stderr, "loadgen: --path must start with / and hold no space\n");
				return -1;
			}
			o.path = v;
		} else if (strcmp(a, "--method") == 0) {
			if (strcmp(v, "GET") != 0 && strcmp(v, "POST") != 0) {
				fprintf(stderr, "loadgen: --method GET or POST\n");
				return -1;
			}
			o.method = v;
		} else if (strcmp(a, "--body") == 0) {
			if (o.n_body_files == MAX_BODIES_ARGS) {
				fprintf(stderr, "loadgen: at most %d --body\n", MAX_BODIES_ARGS);
				return -1;
			}
			o.body_files[o.n_body_files++] = v;
		} else if (strcmp(a, "--bodies") == 0) {
			o.bodies_file = v;
		} else if (strcmp(a, "--content-type") == 0) {
			if (strpbrk(v, "\r\n") != NULL || strlen(v) > 128)
				return -1;
			o.ctype = v;
		} else if (strcmp(a, "--header-file") == 0) {
			o.header_file = v;
		} else if (strcmp(a, "--sni") == 0) {
			o.sni = v;
		} else if (strcmp(a, "--label") == 0) {
			o.label = v;
		} else if (strcmp(a, "-c") == 0) {
			if (num(a, v, 1, MAX_CONNS, &d) != 0)
				return -1;
			o.conns = (unsigned)d;
		} else if (strcmp(a, "-t") == 0) {
			if (num(a, v, 1, MAX_THREADS, &d) != 0)
				return -1;
			o.threads = (unsigned)d;
		} else if (strcmp(a, "-d") == 0) {
			if (num(a, v, 0.1, 86400, &o.seconds) != 0)
				return -1;
		} else if (strcmp(a, "-w") == 0) {
			if (num(a, v, 0, 3600, &o.warmup) != 0)
				return -1;
		} else if (strcmp(a, "--rate") == 0) {
			if (num(a, v, 0.01, 1e7, &o.rate) != 0)
				return -1;
		} else if (strcmp(a, "--stall-ms") == 0) {
			if (num(a, v, 1, 3600000, &d) != 0)
				return -1;
			o.stall_ms = (unsigned)d;
		} else if (strcmp(a, "--timeout-ms") == 0) {
			if (num(a, v, 1, 3600000, &d) != 0)
				return -1;
			o.timeout_ms = (unsigned)d;
		} else if (strcmp(a, "--expect") == 0) {
			if (num(a, v, 100, 599, &d) != 0)
				return -1;
			o.expect = (int)d;
		} else {
			fprintf(stderr, "loadgen: unknown option %s\n", a);
			return -1;
		}
	}
	if (o.port == 0 || o.path == NULL) {
		usage();
		return -1;
	}
	if (o.threads > o.conns)
		o.threads = o.conns;
	return 0;
}

int main(int argc, char **argv)
{
	struct thr *thr = NULL;
	struct conn *conns = NULL;
	uint32_t *all = NULL;
	int rc = 1;

	if (parse_args(argc, argv) != 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	if (build_requests() != 0)
		goto out;
	memset(&target, 0, sizeof(target));
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)o.port);
	target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (o.tls) {
		if ((tls_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			goto out;
		/* Every connection a full handshake: nothing to resume from. */
		SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	}
	if ((thr = calloc(o.threads, sizeof(*thr))) == NULL || (conns = calloc(o.conns, sizeof(*conns))) == NULL)
		goto out;
	double start = now_s();
	t_measure = start + o.warmup;
	t_end = t_measure + o.seconds;
	for (unsigned i = 0; i < o.threads; i++) {
		struct thr *t = &thr[i];
		t->index = i;
		t->conns = conns + (size_t)o.conns * i / o.threads;
		t->nconns = (unsigned)((size_t)o.conns * (i + 1) / o.threads - (size_t)o.conns * i / o.threads);
		t->rate = o.rate / o.threads;
		t->ep = -1;
	}
	for (unsigned i = 0; i < o.threads; i++) {
		struct thr *t = &thr[i];
		if ((t->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
			perror("loadgen: epoll_create1");
			goto out;
		}
	}
	for (unsigned i = 0; i < o.conns; i++) {
		conns[i].fd = -1;
		conns[i].next_req = (size_t)i * nreqs / o.conns; /* spread over the set */
	}
	for (unsigned i = 0; i < o.threads; i++)
		for (unsigned k = 0; k < thr[i].nconns; k++)
			thr[i].conns[k].t = &thr[i];
	for (unsigned i = 0; i < o.threads; i++) {
		if (pthread_create(&thr[i].id, NULL, thread_main, &thr[i]) != 0) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			for (unsigned k = 0; k < i; k++)
				pthread_join(thr[k].id, NULL);
			goto out;
		}
	}
	for (unsigned i = 0; i < o.threads; i++)
		pthread_join(thr[i].id, NULL);

	/* Merge the threads' figures. */
	unsigned long long ok = 0, errors = 0, stalled = 0, dropped = 0, opened = 0, body = 0;
	unsigned long long ek[E_KINDS] = { 0 };
	size_t n = 0;
	int bad_status = 0;
	for (unsigned i = 0; i < o.threads; i++) {
		ok += thr[i].ok;
		stalled += thr[i].stalled;
		dropped += thr[i].dropped_samples;
		opened += thr[i].conns_opened;
		body += thr[i].body_bytes;
		n += thr[i].nlat;
		if (bad_status == 0)
			bad_status = thr[i].first_bad_status;
		for (int k = 0; k < E_KINDS; k++) {
			ek[k] += thr[i].errors[k];
			errors += thr[i].errors[k];
		}
	}
	if (n > 0 && (all = malloc(n * sizeof(*all))) == NULL)
		goto out;
	size_t at = 0;
	for (unsigned i = 0; i < o.threads; i++) {
		if (thr[i].nlat > 0)
			memcpy(all + at, thr[i].lat_us, thr[i].nlat * sizeof(*all));
		at += thr[i].nlat;
	}
	qsort(all, n, sizeof(*all), cmp_u32);
	double rps = ok / o.seconds;
	double p50 = pct_ms(all, n, 0.50), p99 = pct_ms(all, n, 0.99), mx = n ? all[n - 1] / 1000.0 : 0;
	/* A server that closes kept-alive connections makes us open more. */
	const char *ka = o.new_conn ? "new connection each"
			 : opened > o.conns ? "keep-alive asked, the server closed them"
					    : "keep-alive";
	printf("loadgen %s: %llu responses in %.1f s = %.1f/s (%u conns, %s%s%s); latency ms p50 %.3f "
	       "p99 %.3f max %.3f; errors %llu; stalled %llu (> %u ms); connections opened %llu\n",
	       o.label, ok, o.seconds, rps, o.conns, o.tls ? "TLS, " : "", ka, o.rate > 0 ? ", rate-limited" : "",
	       p50, p99, mx, errors, stalled, o.stall_ms, opened);
	if (errors > 0) {
		printf("loadgen %s: errors by kind:", o.label);
		for (int k = 0; k < E_KINDS; k++)
			if (ek[k] > 0)
				printf(" %s=%llu", err_names[k], ek[k]);
		if (bad_status != 0)
			printf(" (first unexpected HTTP status %d)", bad_status);
		printf("\n");
	}
	if (dropped > 0)
		printf("loadgen %s: %llu latency samples not kept (memory cap)\n", o.label, dropped);
	if (o.rate > 0)
		printf("loadgen %s: target rate %.1f/s\n", o.label, o.rate);
	printf("RESULT label=%s n=%llu seconds=%.1f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%llu "
	       "stalled=%llu body_avg=%llu conns_opened=%llu\n",
	       o.label, ok, o.seconds, rps, p50, p99, mx, errors, stalled, ok ? body / ok : 0, opened);
	fflush(stdout);
	rc = 0;
out:
	if (thr != NULL)
		for (unsigned i = 0; i < o.threads; i++) {
			free(thr[i].lat_us);
			if (thr[i].ep >= 0)
				close(thr[i].ep);
		}
	if (conns != NULL)
		for (unsigned i = 0; i < o.conns; i++)
			free(conns[i].rbuf);
	for (size_t i = 0; i < nreqs; i++) {
		OPENSSL_cleanse(reqs[i].buf, reqs[i].len); /* may hold an Authorization header */
		free(reqs[i].buf);
	}
	free(reqs);
	free(all);
	free(thr);
	free(conns);
	SSL_CTX_free(tls_ctx);
	return rc;
}
