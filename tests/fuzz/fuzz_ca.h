/* A software CA for fuzz targets: P-256 root and issuing CA, one profile
 * "device" open to the Basic user "factory", no store. */
#ifndef MINTCA_FUZZ_CA_H
#define MINTCA_FUZZ_CA_H

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "mintca/ca.h"

static inline ca_ctx *fuzz_make_ca(void)
{
	struct ca_err err = { 0 };
	sig_key *root = sig_mem_key(EVP_EC_gen("P-256"));
	sig_key *iss = sig_mem_key(EVP_EC_gen("P-256"));
	X509 *rc = ca_make_root(root, "/CN=fuzz root", 86400LL * 365, &err);
	X509 *ic = ca_make_intermediate(root, rc, sig_pubkey(iss), "/CN=fuzz issuing", 86400LL * 365, &err);
	ca_ctx *c = ca_ctx_new("fuzz", iss, ic, rc, NULL, &err);
	struct ca_profile p = {
		.name = "device", .key_types = CA_KEY_EC_P256 | CA_KEY_EC_P384 | CA_KEY_RSA | CA_KEY_ED25519,
		.rsa_min_bits = 2048, .rsa_max_bits = 4096, .validity_seconds = 86400, .max_sans = 4,
		.eku = CA_EKU_CLIENT_AUTH, .allow_reenroll = true,
	};

	p.basic_users = calloc(2, sizeof(char *));
	p.basic_users[0] = strdup("factory");
	p.n_basic_users = 1;
	if (c == NULL || ca_ctx_add_profile(c, &p, &err) != 0)
		abort();
	sig_close(root);
	return c;
}

#endif
