/* libFuzzer target: the HTTP Basic path as the server runs it. libmicrohttpd
 * parses the request and decodes the Authorization header; the server's
 * srv_basic_identity() (server/http.c) looks the user up and checks the
 * password. Each input becomes one request on a socket pair handed to an
 * in-process daemon. The first byte picks how the rest is used:
 *   0: the Authorization header value as it is
 *   1: "Basic " + base64(rest)
 *   2: "Basic " + base64("factory:" + rest)
 *   3: no Authorization header, the rest in another header
 * Checked on every request: only the configured user with exactly its
 * password is accepted; an Authorization header that is not accepted is
 * a failed attempt; no header, no identity and no failure. */
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include "mintca/cfg.h"
#include "mintca/log.h"
#include "mintca/secret.h"
#include "../../server/http_int.h"

#define PASSWORD "fuzz-password"
#define REQ_MAX (4 * 65536 + 1024)

static struct cfg cfg;
static struct cfg_user user;
static struct MHD_Daemon *d;
static bool closed;

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_data_size,
			       void **con_cls)
{
	struct ca_requester who = { .kind = CA_AUTH_NONE, .id = "anonymous" };
	const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	bool failed = false;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	srv_basic_identity(&cfg, c, &who, &failed);
	if (who.kind == CA_AUTH_BASIC) {
		char *pass = NULL, *name = MHD_basic_auth_get_username_password(c, &pass);
		/* accepted: the one user, the whole password, not a failure */
		if (failed || strcmp(who.id, "factory") != 0 || name == NULL || strcmp(name, "factory") != 0 ||
		    pass == NULL || strcmp(pass, PASSWORD) != 0)
			abort();
		MHD_free(name);
		MHD_free(pass);
	} else if (who.kind != CA_AUTH_NONE || (hdr != NULL) != failed) {
		abort();
	}
	if ((r = MHD_create_response_from_buffer(3, (void *)"ok\n", MHD_RESPMEM_PERSISTENT)) == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, who.kind == CA_AUTH_BASIC ? 200 : 401, r);
	MHD_destroy_response(r);
	return ret;
}

static void notify(void *cls, struct MHD_Connection *c, void **socket_context,
		   enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)c;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
		closed = true;
}

static void setup(void)
{
	log_set_level(LOG_ERROR);
	user.name = "factory";
	/* the least work sec_check_password accepts: the target stays fast */
	if ((user.password_hash = sec_hash_password(PASSWORD, 1000)) == NULL)
		abort();
	cfg.users = &user;
	cfg.n_users = 1;
	d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, handler, NULL,
			     MHD_OPTION_NOTIFY_CONNECTION, notify, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, 0u, MHD_OPTION_END);
	if (d == NULL)
		abort();
}

/* Append n bytes; returns the new length, or cap when they do not fit. */
static size_t put(char *buf, size_t len, size_t cap, const void *p, size_t n)
{
	if (len + n > cap)
		return cap;
	memcpy(buf + len, p, n);
	return len + n;
}

static size_t put_b64(char *buf, size_t len, size_t cap, const uint8_t *p, size_t n)
{
	if (len + 4 * ((n + 2) / 3) + 1 > cap)
		return cap;
	return len + (size_t)EVP_EncodeBlock((unsigned char *)buf + len, p, (int)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "GET /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n"
				   "Connection: close\r\n";
	static char req[REQ_MAX], junk[4096];
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
	size_t len = 0;
	int sv[2];

	if (d == NULL)
		setup();
	if (size == 0)
		return 0;
	len = put(req, len, sizeof(req), head, sizeof(head) - 1);
	switch (data[0] & 3) {
	case 0:
		len = put(req, len, sizeof(req), "Authorization: ", 15);
		len = put(req, len, sizeof(req), data + 1, size - 1);
		break;
	case 1:
		len = put(req, len, sizeof(req), "Authorization: Basic ", 21);
		len = put_b64(req, len, sizeof(req), data + 1, size - 1);
		break;
	case 2: {
		uint8_t *cred = malloc(size + 8);
		if (cred == NULL)
			return 0;
		memcpy(cred, "factory:", 8);
		memcpy(cred + 8, data + 1, size - 1);
		len = put(req, len, sizeof(req), "Authorization: Basic ", 21);
		len = put_b64(req, len, sizeof(req), cred, size + 7);
		free(cred);
		break;
	}
	default:
		len = put(req, len, sizeof(req), "X-Other: ", 9);
		len = put(req, len, sizeof(req), data + 1, size - 1);
		break;
	}
	len = put(req, len, sizeof(req), "\r\n\r\n", 4);
	if (len >= sizeof(req))
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	closed = false;
	if (MHD_add_connection(d, sv[0], (struct sockaddr *)&peer, sizeof(peer)) != MHD_YES)
		abort();
	if (write(sv[1], req, len) != (ssize_t)len)
		abort();
	/* Until the daemon answers and closes (Connection: close) or, for a
	 * request it cannot parse, gives up on it. */
	for (int i = 0; i < 200 && !closed; i++) {
		struct pollfd p = { .fd = sv[1], .events = POLLIN };
		(void)MHD_run(d);
		if (poll(&p, 1, 0) > 0 && read(sv[1], junk, sizeof(junk)) == 0)
			break;
	}
	close(sv[1]);
	for (int i = 0; i < 200 && !closed; i++)
		(void)MHD_run(d);
	if (!closed)
		abort(); /* a connection the daemon never lets go of */
	return 0;
}
