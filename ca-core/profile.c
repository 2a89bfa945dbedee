/* Profile helpers: names of key types and EKUs, and freeing a profile's lists. */
#include <stdlib.h>
#include <string.h>
#include "mintca/ca.h"

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

void ca_profile_free_lists(struct ca_profile *p)
{
	if (p == NULL)
		return;
	free_list(p->basic_users, p->n_basic_users);
	free_list(p->cert_anchors, p->n_cert_anchors);
	p->basic_users = p->cert_anchors = NULL;
	p->n_basic_users = p->n_cert_anchors = 0;
}

static const struct { const char *name; unsigned bit; } key_names[] = {
	{ "ec-p256", CA_KEY_EC_P256 },
	{ "ec-p384", CA_KEY_EC_P384 },
	{ "rsa", CA_KEY_RSA },
	{ "ed25519", CA_KEY_ED25519 },
};

static const struct { const char *name; unsigned bit; } eku_names[] = {
	{ "clientAuth", CA_EKU_CLIENT_AUTH },
	{ "serverAuth", CA_EKU_SERVER_AUTH },
};

unsigned ca_key_type_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
		if (strcmp(name, key_names[i].name) == 0)
			return key_names[i].bit;
	return 0;
}

unsigned ca_eku_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(eku_names) / sizeof(eku_names[0]); i++)
		if (strcmp(name, eku_names[i].name) == 0)
			return eku_names[i].bit;
	return 0;
}
