/* Test client for tests/integration/hostile.sh: talks to mintcad the way a
 * broken or hostile client does, which curl will not.
 *
 *   slowtls send PORT [-p] [-i MS] [-c BYTES] [-o FILE] < REQUEST
 *       One connection. The request on standard input (sent as it is, so it
 *       may hold anything) goes out in pieces of BYTES (default: all at once)
 *       with MS milliseconds between them; then the answer is read until it
 *       is complete, the server closes, or 30 s pass. Prints the HTTP status
 *       ("000" when none came); -o FILE keeps the whole answer.
 *   slowtls hold PORT -n N -s SECONDS [-p] [-m tcp|tls|headers|body] [-i MS]
 *       N connections held for SECONDS. tcp: connected, no TLS handshake;
 *       tls: handshake done, then silent; headers: a request whose headers
 *       come one byte every MS ms (default 1000) and never end; body: a
 *       complete request head announcing 60000 body bytes that come one byte
 *       every MS ms. Prints "opened A failed F" once all are open, and at the
 *       end "closed_by_server C answered R still_open S".
 *
 * -p: plain HTTP instead of TLS. The server's certificate is not verified:
 * this tests the server, not TLS. Connects to 127.0.0.1 only.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define REQ_MAX (8u * 1024 * 1024)
#define ANSWER_MAX (1024u * 1024)

struct conn {
	int fd;
	SSL *ssl;   /* NULL: plain */
	size_t sent; /* trickled bytes so far */
	bool open;
};

static SSL_CTX *ctx;
static bool plain;
static unsigned port;

static void usage(void)
{
	fprintf(stderr, "usage: slowtls send PORT [-p] [-i MS] [-c BYTES] [-o FILE] < REQUEST\n"
			"       slowtls hold PORT -n N -s SECONDS [-p] [-m tcp|tls|headers|body] [-i MS]\n");
	exit(2);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A TCP connection to 127.0.0.1:port, and the TLS handshake unless tcp_only
 * or plain. Reads and writes time out after timeout_s. 0 or -1. */
static int conn_open(struct conn *c, bool tcp_only, unsigned timeout_s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = timeout_s };

	memset(c, 0, sizeof(*c));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto fail;
	c->open = true;
	if (tcp_only || plain)
		return 0;
	if ((c->ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd) ||
	    !SSL_set_tlsext_host_name(c->ssl, "localhost") || SSL_connect(c->ssl) != 1)
		goto fail;
	return 0;
fail:
	ERR_clear_error();
	SSL_free(c->ssl);
	c->ssl = NULL;
	close(c->fd);
	c->fd = -1;
	c->open = false;
	return -1;
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->open = false;
}

/* Bytes written (> 0), 0 when it would block, -1 when the connection is gone. */
static long conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->ssl == NULL) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		return (long)w;
	}
	int w = SSL_write(c->ssl, p, (int)n);
	if (w > 0)
		return w;
	int e = SSL_get_error(c->ssl, w);
	ERR_clear_error();
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Bytes read (> 0), 0 when the peer closed or failed, -2 when nothing is
 * there yet (would block or timed out). */
static long conn_read(struct conn *c, void *p, size_t n)
{
	if (c->ssl == NULL) {
		ssize_t r = recv(c->fd, p, n, 0);
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : 0;
		return (long)r;
	}
	int r = SSL_read(c->ssl, p, (int)n);
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -2;
	if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -2;
	return 0;
}

/* The answer is complete once its head and Content-Length bytes are in. */
static bool answer_complete(const char *a, size_t n)
{
	const char *end = memmem(a, n, "\r\n\r\n", 4), *p;
	size_t head, cl;

	if (end == NULL)
		return false;
	head = (size_t)(end - a) + 4;
	for (p = a; p < end; p++) {
		if ((p == a || p[-1] == '\n') && (size_t)(end - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
			cl = strtoul(p + 15, NULL, 10);
			return n >= head + cl;
		}
	}
	return false; /* no length: read until the server closes */
}

static int cmd_send(int argc, char **argv)
{
	unsigned interval = 0;
	size_t chunk = 0, len = 0, got = 0;
	const char *out = NULL;
	char *req = malloc(REQ_MAX), *ans = malloc(ANSWER_MAX + 1);
	struct conn c;
	int opt;
	ssize_t r;
	double deadline;

	while ((opt = getopt(argc, argv, "pi:c:o:")) != -1) {
		if (opt == 'p')
			plain = true;
		else if (opt == 'i')
			interval = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'c')
			chunk = strtoul(optarg, NULL, 10);
		else if (opt == 'o')
			out = optarg;
		else
			usage();
	}
	if (req == NULL || ans == NULL)
		return 2;
	while (len < REQ_MAX && (r = read(0, req + len, REQ_MAX - len)) > 0)
		len += (size_t)r;
	if (chunk == 0)
		chunk = len ? len : 1;
	if (conn_open(&c, false, 30) != 0) {
		printf("000\n");
		free(req);
		free(ans);
		return 1;
	}
	for (size_t off = 0; off < len;) {
		size_t n = len - off < chunk ? len - off : chunk;
		long w = conn_write(&c, req + off, n);
		if (w <= 0)
			break; /* the server answered early or closed: read what it said */
		off += (size_t)w;
		if (interval && off < len)
			sleep_ms(interval);
	}
	deadline = now_s() + 30;
	while (got < ANSWER_MAX && now_s() < deadline) {
		long n = conn_read(&c, ans + got, ANSWER_MAX - got);
		if (n == -2)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (answer_complete(ans, got))
			break;
	}
	conn_close(&c);
	ans[got] = '\0';
	if (out != NULL) {
		FILE *f = fopen(out, "w");
		if (f != NULL) {
			fwrite(ans, 1, got, f);
			fclose(f);
		}
	}
	if (got >= 12 && strncmp(ans, "HTTP/1.", 7) == 0 && ans[8] == ' ')
		printf("%.3s\n", ans + 9);
	else
		printf("000\n");
	free(req);
	free(ans);
	return 0;
}

static int cmd_hold(int argc, char **argv)
{
	static const char head_req[] = "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n";
	static const char body_req[] = "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n"
				       "Content-Type: application/pkcs10\r\nContent-Length: 60000\r\n\r\n";
	unsigned n = 0, secs = 0, interval = 1000, opened = 0, failed = 0, closed = 0, answered = 0, still = 0;
	const char *mode = "tls";
	struct conn *cs;
	struct pollfd *pf;
	int opt;
	double end;

	while ((opt = getopt(argc, argv, "pn:s:m:i:")) != -1) {
		if (opt == 'p')
			plain = true;
		else if (opt == 'n')
			n = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 's')
			secs = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'm')
			mode = optarg;
		else if (opt == 'i')
			interval = (unsigned)strtoul(optarg, NULL, 10);
		else
			usage();
	}
	bool tcp = strcmp(mode, "tcp") == 0, heads = strcmp(mode, "headers") == 0,
	     body = strcmp(mode, "body") == 0;
	if (n == 0 || n > 10000 || secs == 0 || interval == 0 ||
	    !(tcp || heads || body || strcmp(mode, "tls") == 0))
		usage();
	if ((cs = calloc(n, sizeof(*cs))) == NULL || (pf = calloc(n, sizeof(*pf))) == NULL)
		return 2;
	for (unsigned i = 0; i < n; i++) {
		if (conn_open(&cs[i], tcp, 10) != 0) {
			failed++;
			continue;
		}
		opened++;
		fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK);
		if (body) { /* the whole head now, the body later */
			if (conn_write(&cs[i], body_req, sizeof(body_req) - 1) != (long)sizeof(body_req) - 1)
				conn_close(&cs[i]);
		}
	}
	printf("opened %u failed %u\n", opened, failed);
	fflush(stdout);
	end = now_s() + secs;
	while (now_s() < end) {
		unsigned np = 0;
		for (unsigned i = 0; i < n; i++)
			if (cs[i].open)
				pf[np++] = (struct pollfd){ .fd = cs[i].fd, .events = POLLIN };
		(void)poll(pf, np, 0);
		np = 0;
		for (unsigned i = 0; i < n; i++) {
			struct conn *c = &cs[i];
			char buf[4096];
			if (!c->open)
				continue;
			if (pf[np++].revents != 0) {
				long r = conn_read(c, buf, sizeof(buf));
				if (r == 0) {
					closed++;
					conn_close(c);
					continue;
				}
				if (r > 0) { /* an answer to a request that never ended */
					answered++;
					conn_close(c);
					continue;
				}
			}
			if (heads || body) {
				char b;
				if (heads)
					b = c->sent < sizeof(head_req) - 1 ? head_req[c->sent] : "X-Slow: 1\r\n"[(c->sent - (sizeof(head_req) - 1)) % 11];
				else
					b = 'A';
				long w = conn_write(c, &b, 1);
				if (w < 0) {
					closed++;
					conn_close(c);
				} else {
					c->sent += (size_t)w;
				}
			}
		}
		sleep_ms(interval);
	}
	for (unsigned i = 0; i < n; i++) {
		if (cs[i].open)
			still++;
		conn_close(&cs[i]);
	}
	printf("closed_by_server %u answered %u still_open %u\n", closed, answered, still);
	free(cs);
	free(pf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 3)
		usage();
	cmd = argv[1];
	port = (unsigned)strtoul(argv[2], NULL, 10);
	if (port == 0 || port > 65535)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return 2;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	argc -= 2;
	argv += 2;
	if (strcmp(cmd, "send") == 0)
		return cmd_send(argc, argv);
	if (strcmp(cmd, "hold") == 0)
		return cmd_hold(argc, argv);
	usage();
	return 2;
}
