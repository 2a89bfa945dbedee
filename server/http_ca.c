/* /ca/<name>.crt: a CA certificate (DER, RFC 5280 §4.2.2.1 caIssuers), so
 * relying parties can build the chain from a certificate's AIA. */
#include <stdio.h>
#include <string.h>
#include <openssl/x509.h>
#include "http_int.h"

#define CA_PREFIX "/ca/"

enum MHD_Result srv_http_ca(struct MHD_Connection *c, struct req_state *s, const char *method,
			    const char *url)
{
	const char *name = url + strlen(CA_PREFIX);
	size_t n = strlen(name);
	char want[CA_NAME_MAX];
	ca_ctx *ca;
	unsigned char *der = NULL;
	int len;
	enum MHD_Result r;
	struct srv_hdr h[1] = { { "Cache-Control", "public, max-age=86400" } };

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return srv_send_text(c, s, method, url, 405, "use GET\n");
	if (n <= 4 || n - 4 >= sizeof(want) || strcmp(name + n - 4, ".crt") != 0)
		return srv_send_text(c, s, method, url, 404, "no such CA certificate\n");
	memcpy(want, name, n - 4);
	want[n - 4] = '\0';
	if ((ca = srv_cas_find(s->st->cas, want)) == NULL)
		return srv_send_text(c, s, method, url, 404, "no such CA certificate\n");
	if ((len = i2d_X509(ca_issuing_cert(ca), &der)) <= 0)
		return srv_send_text(c, s, method, url, 500, "internal error\n");
	r = srv_send(c, s, method, url, 200, "application/pkix-cert", h, 1, der, (size_t)len);
	OPENSSL_free(der);
	return r;
}
