/* libFuzzer target: CSR intake (decode, proof of possession, key checks). */
#include <stdint.h>
#include <stdlib.h>
#include <openssl/x509.h>
#include "mintca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_err err = { 0 };
	struct ca_profile p = {
		.name = "fuzz", .key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA | CA_KEY_ED25519,
		.rsa_min_bits = 2048, .rsa_max_bits = 4096,
	};
	X509_REQ *r = ca_csr_decode(data, size, &err);

	if (r != NULL)
		(void)ca_csr_check_key(r, &p, &err);
	X509_REQ_free(r);
	return 0;
}
