/* Key generation inside a PKCS#11 token. libp11 0.4 cannot generate EC keys,
 * so this talks to the module directly: load it, find the token by label, log
 * in, refuse an existing label, generate a non-extractable pair, and unload
 * again so that sig_p11_open() (libp11) starts from a clean module. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include "mintca/log.h"
#include "sig_int.h"
/* Last: in its compatibility mode this header #defines common words
 * (value, count, params) until its end. */
#include <p11-kit/pkcs11.h>

#define P11_LABEL_LEN 32 /* CK_TOKEN_INFO.label: blank-padded, not NUL-terminated */
#define P11_ID_LEN 8     /* random CKA_ID shared by both halves of the pair */

static const struct key_kind {
	const char *name;
	CK_MECHANISM_TYPE mech;
	int curve_nid;      /* EC: the named curve */
	CK_ULONG rsa_bits;  /* RSA: modulus size */
} key_kinds[] = {
	{ "ec-p256", CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, 0 },
	{ "ec-p384", CKM_EC_KEY_PAIR_GEN, NID_secp384r1, 0 },
	{ "rsa-2048", CKM_RSA_PKCS_KEY_PAIR_GEN, NID_undef, 2048 },
	{ "rsa-3072", CKM_RSA_PKCS_KEY_PAIR_GEN, NID_undef, 3072 },
	{ "rsa-4096", CKM_RSA_PKCS_KEY_PAIR_GEN, NID_undef, 4096 },
};
#define N_KEY_KINDS (sizeof(key_kinds) / sizeof(key_kinds[0]))

/* Names of the return codes an operator is likely to meet. */
static const struct {
	CK_RV rv;
	const char *name;
} ckr_names[] = {
#define CKR_ROW(x) { x, #x }
	CKR_ROW(CKR_HOST_MEMORY),
	CKR_ROW(CKR_SLOT_ID_INVALID),
	CKR_ROW(CKR_GENERAL_ERROR),
	CKR_ROW(CKR_FUNCTION_FAILED),
	CKR_ROW(CKR_ARGUMENTS_BAD),
	CKR_ROW(CKR_CANT_LOCK),
	CKR_ROW(CKR_ATTRIBUTE_READ_ONLY),
	CKR_ROW(CKR_ATTRIBUTE_TYPE_INVALID),
	CKR_ROW(CKR_ATTRIBUTE_VALUE_INVALID),
	CKR_ROW(CKR_DEVICE_ERROR),
	CKR_ROW(CKR_DEVICE_MEMORY),
	CKR_ROW(CKR_DEVICE_REMOVED),
	CKR_ROW(CKR_FUNCTION_NOT_SUPPORTED),
	CKR_ROW(CKR_KEY_SIZE_RANGE),
	CKR_ROW(CKR_MECHANISM_INVALID),
	CKR_ROW(CKR_MECHANISM_PARAM_INVALID),
	CKR_ROW(CKR_OPERATION_ACTIVE),
	CKR_ROW(CKR_PIN_INCORRECT),
	CKR_ROW(CKR_PIN_INVALID),
	CKR_ROW(CKR_PIN_LEN_RANGE),
	CKR_ROW(CKR_PIN_EXPIRED),
	CKR_ROW(CKR_PIN_LOCKED),
	CKR_ROW(CKR_SESSION_COUNT),
	CKR_ROW(CKR_SESSION_HANDLE_INVALID),
	CKR_ROW(CKR_SESSION_READ_ONLY),
	CKR_ROW(CKR_TEMPLATE_INCOMPLETE),
	CKR_ROW(CKR_TEMPLATE_INCONSISTENT),
	CKR_ROW(CKR_TOKEN_NOT_PRESENT),
	CKR_ROW(CKR_TOKEN_NOT_RECOGNIZED),
	CKR_ROW(CKR_TOKEN_WRITE_PROTECTED),
	CKR_ROW(CKR_USER_ALREADY_LOGGED_IN),
	CKR_ROW(CKR_USER_NOT_LOGGED_IN),
	CKR_ROW(CKR_USER_PIN_NOT_INITIALIZED),
	CKR_ROW(CKR_USER_TYPE_INVALID),
	CKR_ROW(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
	CKR_ROW(CKR_DOMAIN_PARAMS_INVALID),
	CKR_ROW(CKR_CURVE_NOT_SUPPORTED),
	CKR_ROW(CKR_BUFFER_TOO_SMALL),
	CKR_ROW(CKR_CRYPTOKI_NOT_INITIALIZED),
	CKR_ROW(CKR_CRYPTOKI_ALREADY_INITIALIZED),
#undef CKR_ROW
};

static const char *ckr_name(CK_RV rv)
{
	size_t i;

	for (i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++)
		if (ckr_names[i].rv == rv)
			return ckr_names[i].name;
	return "unknown CKR code";
}

/* CA_E_SIGNER: "<where>: <fn> failed: CKR_X (0x..)". Never pass the PIN. */
static void p11_fail(struct ca_err *err, const char *fn, CK_RV rv, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void p11_fail(struct ca_err *err, const char *fn, CK_RV rv, const char *fmt, ...)
{
	char where[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(where, sizeof(where), fmt, ap);
	va_end(ap);
	ca_err_set(err, CA_E_SIGNER, "%s: %s failed: %s (0x%lx)", where, fn, ckr_name(rv),
		   (unsigned long)rv);
}

static const struct key_kind *key_kind_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_KEY_KINDS; i++)
		if (strcmp(key_kinds[i].name, name) == 0)
			return &key_kinds[i];
	return NULL;
}

static void refuse_key_type(const char *name, struct ca_err *err)
{
	char list[128] = "";
	size_t i, off = 0;

	for (i = 0; i < N_KEY_KINDS && off < sizeof(list); i++) {
		int n = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
				 key_kinds[i].name);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	ca_err_set(err, CA_E_CONFIG, "unknown key type '%s' (accepted: %s)", name, list);
}

/* The token-present slots of the module. Caller frees *slots with free().
 * 0, or the failing CKR code. */
static CK_RV list_slots(CK_FUNCTION_LIST_PTR f, CK_SLOT_ID **slots, CK_ULONG *n)
{
	CK_SLOT_ID *s = NULL;
	CK_ULONG cnt = 0;
	CK_RV rv;
	int tries;

	*slots = NULL;
	*n = 0;
	/* The slot count can grow between the two calls; try a few times. */
	for (tries = 0; tries < 4; tries++) {
		if ((rv = f->C_GetSlotList(CK_TRUE, NULL, &cnt)) != CKR_OK)
			return rv;
		if (cnt == 0)
			return CKR_OK;
		free(s);
		if ((s = calloc(cnt, sizeof(*s))) == NULL)
			return CKR_HOST_MEMORY;
		rv = f->C_GetSlotList(CK_TRUE, s, &cnt);
		if (rv == CKR_OK) {
			*slots = s;
			*n = cnt;
			return CKR_OK;
		}
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	free(s);
	return rv;
}

int sig_p11_generate(const char *module, const char *token_label, const sec_str *pin,
		     const char *key_label, const char *key_type, struct ca_err *err)
{
	const struct key_kind *kind;
	void *dl = NULL;
	CK_C_GetFunctionList get_list;
	CK_FUNCTION_LIST_PTR f = NULL;
	CK_C_INITIALIZE_ARGS init_args;
	CK_SLOT_ID *slots = NULL, slot = 0;
	CK_ULONG nslots = 0, i, found = 0;
	CK_TOKEN_INFO info;
	CK_SESSION_HANDLE sess = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE obj, pub_h, priv_h;
	CK_RV rv, rv_final;
	bool initialized = false, have_slot = false, have_session = false, logged_in = false;
	char padded[P11_LABEL_LEN];
	unsigned char id[P11_ID_LEN], *ec_params = NULL;
	int ec_len = 0;
	size_t tlen;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG rsa_bits;
	CK_BYTE rsa_e[] = { 0x01, 0x00, 0x01 }; /* 65537 */
	CK_MECHANISM mech;
	CK_ATTRIBUTE find_tmpl[1], pub_tmpl[12], priv_tmpl[12];
	CK_ULONG npub = 0, npriv = 0;
	int rc = -1;

	/* Errors the module or OpenSSL leave on this thread's queue during the
	 * call are ours to drop at out:, and only those. */
	ERR_set_mark();

	if (module == NULL || token_label == NULL || pin == NULL || pin->buf == NULL ||
	    key_label == NULL || key_type == NULL) {
		ca_err_set(err, CA_E_CONFIG, "PKCS#11 key generation: module, token label, PIN, "
			   "key label and key type are all required");
		goto out;
	}
	if (*token_label == '\0' || *key_label == '\0') {
		ca_err_set(err, CA_E_CONFIG, "PKCS#11 key generation: empty token or key label");
		goto out;
	}
	if ((tlen = strlen(token_label)) > P11_LABEL_LEN) {
		ca_err_set(err, CA_E_CONFIG, "PKCS#11 token label '%s' is longer than %d bytes",
			   token_label, P11_LABEL_LEN);
		goto out;
	}
	if ((kind = key_kind_find(key_type)) == NULL) {
		refuse_key_type(key_type, err);
		goto out;
	}

	/* 1. Load the module and initialise it, unless someone in this process
	 *    already has (then it is theirs to finalise). */
	if ((dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		const char *why = dlerror();
		ca_err_set(err, CA_E_SIGNER, "cannot load PKCS#11 module %s: %s", module,
			   why != NULL ? why : "unknown error");
		goto out;
	}
	if ((get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList")) == NULL) {
		ca_err_set(err, CA_E_SIGNER, "%s is not a PKCS#11 module (no C_GetFunctionList)",
			   module);
		goto out;
	}
	if ((rv = get_list(&f)) != CKR_OK || f == NULL) {
		p11_fail(err, "C_GetFunctionList", rv, "PKCS#11 module %s", module);
		goto out;
	}
	memset(&init_args, 0, sizeof(init_args));
	init_args.flags = CKF_OS_LOCKING_OK;
	rv = f->C_Initialize(&init_args);
	if (rv == CKR_OK) {
		initialized = true;
	} else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p11_fail(err, "C_Initialize", rv, "PKCS#11 module %s", module);
		goto out;
	}

	/* 2. The token: first present one whose blank-padded label matches. */
	if ((rv = list_slots(f, &slots, &nslots)) != CKR_OK) {
		p11_fail(err, "C_GetSlotList", rv, "PKCS#11 module %s", module);
		goto out;
	}
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, token_label, tlen);
	for (i = 0; i < nslots && !have_slot; i++) {
		/* A slot we cannot read (token pulled meanwhile) is not ours. */
		if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK)
			continue;
		if (memcmp(info.label, padded, P11_LABEL_LEN) == 0) {
			slot = slots[i];
			have_slot = true;
		}
	}
	if (!have_slot) {
		ca_err_set(err, CA_E_SIGNER, "no PKCS#11 token labelled '%s' in %s",
			   token_label, module);
		goto out;
	}
	if (!(info.flags & CKF_TOKEN_INITIALIZED)) {
		ca_err_set(err, CA_E_SIGNER, "PKCS#11 token '%s' is not initialised", token_label);
		goto out;
	}

	/* 3. A read-write session, logged in as the user. */
	rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess);
	if (rv != CKR_OK) {
		p11_fail(err, "C_OpenSession", rv, "PKCS#11 token '%s'", token_label);
		goto out;
	}
	have_session = true;
	rv = f->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR)pin->buf, (CK_ULONG)pin->len);
	if (rv == CKR_OK) {
		logged_in = true;
	} else if (rv != CKR_USER_ALREADY_LOGGED_IN) {
		/* Login state is per token and process: log out only if we
		 * logged in, or another user of the module loses its login. */
		p11_fail(err, "C_Login", rv, "PKCS#11 token '%s' (PIN %s)", token_label,
			 LOG_REDACTED);
		goto out;
	}

	/* 4. Refuse a label already in use, by any object class: sig_p11_key()
	 *    finds keys by label and must not meet two. */
	find_tmpl[0] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)key_label, (CK_ULONG)strlen(key_label) };
	if ((rv = f->C_FindObjectsInit(sess, find_tmpl, 1)) != CKR_OK) {
		p11_fail(err, "C_FindObjectsInit", rv, "PKCS#11 token '%s'", token_label);
		goto out;
	}
	rv = f->C_FindObjects(sess, &obj, 1, &found);
	rv_final = f->C_FindObjectsFinal(sess);
	if (rv != CKR_OK || rv_final != CKR_OK) {
		p11_fail(err, rv != CKR_OK ? "C_FindObjects" : "C_FindObjectsFinal",
			 rv != CKR_OK ? rv : rv_final, "PKCS#11 token '%s'", token_label);
		goto out;
	}
	if (found > 0) {
		ca_err_set(err, CA_E_CONFIG, "a key labelled '%s' already exists on token '%s'",
			   key_label, token_label);
		goto out;
	}

	/* 5. Templates: both halves on the token with the label and a fresh
	 *    CKA_ID; the private half sensitive, never extractable, sign only
	 *    as far as we ask. */
	if (RAND_bytes(id, sizeof(id)) != 1) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot draw a random CKA_ID");
		goto out;
	}
	pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_VERIFY, &yes, sizeof(yes) };
	/* A CA key signs and does nothing else. */
	pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_ENCRYPT, &no, sizeof(no) };
	pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_WRAP, &no, sizeof(no) };
	pub_tmpl[npub++] = find_tmpl[0];
	pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_ID, id, sizeof(id) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &yes, sizeof(yes) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &yes, sizeof(yes) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &no, sizeof(no) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_SIGN, &yes, sizeof(yes) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_DECRYPT, &no, sizeof(no) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_UNWRAP, &no, sizeof(no) };
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_DERIVE, &no, sizeof(no) };
	priv_tmpl[npriv++] = find_tmpl[0];
	priv_tmpl[npriv++] = (CK_ATTRIBUTE){ CKA_ID, id, sizeof(id) };
	if (kind->mech == CKM_EC_KEY_PAIR_GEN) {
		/* CKA_EC_PARAMS: the DER of the curve's OID (namedCurve). */
		const ASN1_OBJECT *oid = OBJ_nid2obj(kind->curve_nid);
		if (oid == NULL || (ec_len = i2d_ASN1_OBJECT(oid, &ec_params)) <= 0) {
			ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the OID of curve %s",
				   OBJ_nid2sn(kind->curve_nid));
			goto out;
		}
		pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, ec_params, (CK_ULONG)ec_len };
	} else {
		rsa_bits = kind->rsa_bits;
		pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &rsa_bits, sizeof(rsa_bits) };
		pub_tmpl[npub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, rsa_e, sizeof(rsa_e) };
	}

	/* 6. Generate. */
	mech = (CK_MECHANISM){ kind->mech, NULL, 0 };
	rv = f->C_GenerateKeyPair(sess, &mech, pub_tmpl, npub, priv_tmpl, npriv, &pub_h, &priv_h);
	if (rv != CKR_OK) {
		p11_fail(err, "C_GenerateKeyPair", rv, "PKCS#11 token '%s', %s key '%s'",
			 token_label, kind->name, key_label);
		goto out;
	}
	rc = 0;
out:
	if (logged_in)
		(void)f->C_Logout(sess);
	if (have_session)
		(void)f->C_CloseSession(sess);
	if (initialized)
		(void)f->C_Finalize(NULL);
	if (dl != NULL)
		dlclose(dl);
	OPENSSL_free(ec_params);
	free(slots);
	ERR_pop_to_mark();
	return rc;
}
