/* The server configuration: one JSON file, validated as a whole at start
 * (and by `mintcad --check-config`). Every key is documented in README.md. */
#ifndef MINTCA_CFG_H
#define MINTCA_CFG_H

#include <stddef.h>
#include "mintca/ca.h"

struct cfg_user {
	char *name;
	char *password_hash; /* sec_hash_password() format */
};

struct cfg_anchor {
	char *name;    /* referenced by profiles' auth.client_cert_anchors */
	char *ca_file; /* PEM, one or more CA certificates */
};

enum cfg_signer { CFG_SIGNER_PKCS11, CFG_SIGNER_FILE };

/* A further issuing CA ("issuing_cas"[i]): its certificate is in the store
 * (mintctl ca init / create / import); its key on its own token or file. */
struct cfg_ca {
	char *name;
	enum cfg_signer signer;
	char *module, *token_label, *pin_file, *key_label; /* pkcs11 */
	char *key_file;                                    /* file: development only */
	char **replaces;   /* rollover: CAs whose certificates re-enroll here */
	size_t n_replaces;
};

struct cfg {
	char *path;
	/* server */
	char *listen;
	unsigned port;
	unsigned threads;   /* HTTP threads (TLS, parsing); 0 in the file: one per two CPUs */
	unsigned workers;   /* threads answering EST and API requests (they wait on HSM and store) */
	unsigned max_connections;
	unsigned max_connections_per_ip; /* 0: no limit */
	unsigned connection_timeout_s;
	size_t max_body_bytes;
	char *public_name;  /* DNS name in the server's own TLS certificate */
	unsigned http_port; /* plain-HTTP listener for OCSP and CRLs only; 0 = none */
	char *public_base_url; /* "http://ca.example:8080": CDP and AIA URLs in certificates */
	/* tls */
	char *tls_cert_file, *tls_key_file;
	/* database */
	char *db_dsn;
	/* ca */
	char *ca_name;
	char *root_subject, *issuing_subject;
	unsigned root_validity_days, issuing_validity_days;
	enum cfg_signer signer;
	char *p11_module, *p11_token_label, *p11_pin_file;
	char *p11_root_key_label, *p11_issuing_key_label;
	char *file_root_key, *file_issuing_key;
	struct cfg_ca *issuing_cas;
	size_t n_issuing_cas;
	/* log */
	char *log_level;
	/* est */
	char *est_default_profile;
	/* credentials and profiles */
	struct cfg_user *users;
	size_t n_users;
	struct cfg_anchor *anchors;
	size_t n_anchors;
	struct ca_profile *profiles; /* the lists inside are owned here */
	size_t n_profiles;
	/* revocation: CRLs and OCSP (seconds; 0 = off where said) */
	unsigned crl_period_s;        /* the server publishes each CA's CRL this often */
	unsigned crl_next_update_s;   /* nextUpdate = thisUpdate + this */
	unsigned crl_retention_s;     /* a revoked certificate stays listed this long past notAfter */
	unsigned crl_shards;          /* 0: one CRL per CA; N: certificates spread over N shard CRLs */
	unsigned delta_crl_period_s;  /* 0: no delta CRLs */
	unsigned ocsp_validity_s;     /* OCSP response nextUpdate - thisUpdate */
	unsigned ocsp_responder_validity_s; /* lifetime of the delegated OCSP responder certificate */
	/* operators: client-certificate anchors whose certificates may use /api/ */
	char **operator_anchors;
	size_t n_operator_anchors;
	/* name bindings and rate limits of users and anchors that have them */
	struct ca_credential *creds;
	size_t n_creds;
};

/* Load and validate. On error returns NULL and err->detail names the file,
 * the line where it can be found, the key path and the reason. Caller frees
 * with cfg_free(). */
struct cfg *cfg_load(const char *path, struct ca_err *err);
void cfg_free(struct cfg *c);

const struct cfg_user *cfg_user_find(const struct cfg *c, const char *name);

#endif
