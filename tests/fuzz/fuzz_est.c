/* libFuzzer target: EST request bodies and Content-Type through est_handle()
 * and the whole issuance path, with a software CA and no store. The first
 * input byte picks the operation; the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "mintca/est.h"
#include "mintca/log.h"
#include "fuzz_ca.h"

static ca_ctx *ca;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ops[] = { "simpleenroll", "simplereenroll", "cacerts", "csrattrs" };
	struct ca_requester who = { .kind = CA_AUTH_BASIC, .id = "factory" };
	struct est_response resp;

	if (ca == NULL) {
		log_set_level(LOG_ERROR);
		ca = fuzz_make_ca();
	}
	if (size == 0)
		return 0;
	struct est_request req = {
		.method = data[0] & 4 ? "GET" : "POST", .op = ops[data[0] & 3],
		.content_type = data[0] & 8 ? "text/plain" : "application/pkcs10",
		.body = data + 1, .body_len = size - 1, .who = &who, .reqid = "fuzz",
	};
	est_handle(ca, "device", &req, &resp);
	if (resp.status == 0)
		abort();
	est_response_free(&resp);
	return 0;
}
