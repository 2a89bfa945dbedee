/* libFuzzer target: client certificate chains as the TLS layer hands them
 * over (DER certificates, leaf first). Input: 2-byte big-endian lengths, each
 * followed by that many bytes, up to 8 certificates. */
#include <stdint.h>
#include "mintca/log.h"
#include "../../server/srv_int.h"
#include "fuzz_ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static srv_cas *cas; /* kept for the life of the process */
	static srv_trust *trust;
	const unsigned char *ders[8];
	size_t lens[8], n = 0;
	char anchor[CA_NAME_MAX], why[160];
	X509 *leaf;

	if (cas == NULL) {
		struct cfg c = { .path = "fuzz", .ca_name = "fuzz" };
		struct ca_err err = { 0 };
		log_set_level(LOG_ERROR);
		if ((cas = srv_cas_wrap(fuzz_make_ca())) == NULL ||
		    (trust = srv_trust_new(&c, cas, &err)) == NULL)
			abort();
	}
	while (size >= 2 && n < 8) {
		size_t len = ((size_t)data[0] << 8) | data[1];
		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		ders[n] = data;
		lens[n++] = len;
		data += len;
		size -= len;
	}
	leaf = srv_trust_verify(trust, ders, lens, n, anchor, why, sizeof(why));
	X509_free(leaf);
	return 0;
}
