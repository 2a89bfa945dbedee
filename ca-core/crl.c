/* Building and signing a CRL (RFC 5280 §5) fast enough for millions of
 * entries, with OpenSSL doing every encoding.
 *
 * The plain OpenSSL way (an X509_REVOKED per entry, X509_CRL_add0_revoked,
 * X509_CRL_sign, i2d_X509_CRL) costs about 3.5 µs per entry here and 300 MB
 * for a million: the objects are built one by one, and the 40 MB TBS is
 * encoded twice (to sign, then to output). Instead:
 *   - each entry is encoded by i2d_X509_REVOKED as it is added, from a
 *     reused X509_REVOKED per (reason, has invalidityDate) whose fields are
 *     overwritten, into one growing buffer (about 1 µs per entry, no object
 *     kept);
 *   - the rest of the CRL (version, algorithm, issuer, dates, extensions)
 *     is an X509_CRL without entries, signed once by X509_CRL_sign so that
 *     OpenSSL sets both signature AlgorithmIdentifiers for the key (one
 *     small extra signature), and encoded by i2d_re_X509_CRL_tbs;
 *   - the TBS is that encoding with the entries' SEQUENCE inserted before
 *     the [0] extensions (headers by ASN1_put_object, the split found by
 *     ASN1_get_object), signed once with EVP_DigestSign (both signatures
 *     through sig_with_privkey, so a token re-open cannot free the key
 *     under them), and wrapped with
 *     i2d_X509_ALGOR and i2d_ASN1_BIT_STRING in the outer SEQUENCE.
 * The result is byte for byte what X509_CRL_add0_revoked + X509_CRL_sign +
 * i2d_X509_CRL give for the same entries (tests/unit/test_crl.c checks it
 * with a deterministic Ed25519 key). */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>
#include "mintca/crl.h"
#include "ca_int.h"

#define N_REASONS 11            /* RFC 5280 §5.3.1: 0..10 */
#define ENTRY_MAX 256           /* one encoded entry: serial, two times, two extensions */
#define ENTRIES_MAX (1u << 30)  /* lengths stay in int (ASN1_put_object) */
#define SERIAL_HEX_MAX 40

struct crl_builder {
	ca_ctx *ca;
	time_t expired_before;
	bool delta;
	bool finished;
	unsigned char *buf;         /* the encoded entries, back to back */
	size_t len, cap;
	/* Reused per entry: one X509_REVOKED per reason and invalidityDate
	 * presence (created on first use), the serial and the date. */
	X509_REVOKED *tpl[N_REASONS][2];
	ASN1_INTEGER *serial;
	ASN1_TIME *when;
	time_t when_t;
	bool when_set;
	ASN1_GENERALIZEDTIME *inv;
	struct crl_build_stats stats;
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned crl_shard_of(const char *serial_hex, unsigned n_shards)
{
	uint32_t v = 0;

	if (n_shards == 0)
		return 0;
	for (size_t i = 0; i < 8 && serial_hex != NULL && serial_hex[i] != '\0'; i++) {
		int d = OPENSSL_hexchar2int((unsigned char)serial_hex[i]);
		if (d < 0)
			return 1;
		v = (v << 4) | (uint32_t)d;
	}
	return 1 + (unsigned)(v % n_shards);
}

int crl_url(const struct cfg *cfg, const char *ca, const struct crl_scope *scope, char *buf,
	    size_t len)
{
	char base[512], shard[16] = "";
	size_t n;
	int w;

	if (cfg->public_base_url != NULL)
		w = snprintf(base, sizeof(base), "%s", cfg->public_base_url);
	else if (cfg->http_port != 0)
		w = snprintf(base, sizeof(base), "http://%s:%u", cfg->public_name ? cfg->public_name : "localhost",
			     cfg->http_port);
	else
		w = snprintf(base, sizeof(base), "https://%s:%u", cfg->public_name ? cfg->public_name : "localhost",
			     cfg->port);
	if (w < 0 || (size_t)w >= sizeof(base))
		return -1;
	for (n = (size_t)w; n > 0 && base[n - 1] == '/'; n--)
		base[n - 1] = '\0';
	if (scope->shard > 0)
		snprintf(shard, sizeof(shard), "-%u", scope->shard);
	w = snprintf(buf, len, "%s/crl/%s%s%s.crl", base, ca, shard, scope->delta ? "-delta" : "");
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

crl_builder *crl_builder_new(ca_ctx *ca, time_t list_expired_since, bool delta, struct ca_err *err)
{
	crl_builder *b = calloc(1, sizeof(*b));

	if (b == NULL || (b->serial = ASN1_INTEGER_new()) == NULL || (b->when = ASN1_TIME_new()) == NULL ||
	    (b->inv = ASN1_GENERALIZEDTIME_new()) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory");
		crl_builder_free(b);
		return NULL;
	}
	b->ca = ca;
	b->expired_before = list_expired_since;
	b->delta = delta;
	return b;
}

void crl_builder_free(crl_builder *b)
{
	if (b == NULL)
		return;
	for (int r = 0; r < N_REASONS; r++)
		for (int i = 0; i < 2; i++)
			X509_REVOKED_free(b->tpl[r][i]);
	ASN1_INTEGER_free(b->serial);
	ASN1_TIME_free(b->when);
	ASN1_GENERALIZEDTIME_free(b->inv);
	free(b->buf);
	free(b);
}

void crl_builder_stats(const crl_builder *b, struct crl_build_stats *out)
{
	*out = b->stats;
}

/* The reused entry for a reason with or without invalidityDate: its
 * extensions are in place (reasonCode first, RFC 5280 §5.3.1, then
 * invalidityDate, §5.3.2), their values overwritten per entry. */
static X509_REVOKED *template_for(crl_builder *b, int reason, int inv, struct ca_err *err)
{
	X509_REVOKED *r = b->tpl[reason][inv];
	ASN1_ENUMERATED *e = NULL;
	ASN1_GENERALIZEDTIME *g = NULL;

	if (r != NULL)
		return r;
	if ((r = X509_REVOKED_new()) == NULL)
		goto fail;
	if (reason != CRL_REASON_UNSPECIFIED &&
	    ((e = ASN1_ENUMERATED_new()) == NULL || !ASN1_ENUMERATED_set(e, reason) ||
	     X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e, 0, X509V3_ADD_APPEND) != 1))
		goto fail;
	if (inv && ((g = ASN1_GENERALIZEDTIME_set(NULL, 0)) == NULL ||
		    X509_REVOKED_add1_ext_i2d(r, NID_invalidity_date, g, 0, X509V3_ADD_APPEND) != 1))
		goto fail;
	ASN1_ENUMERATED_free(e);
	ASN1_GENERALIZEDTIME_free(g);
	b->tpl[reason][inv] = r;
	return r;
fail:
	ca_err_ssl(err, CA_E_INTERNAL, "cannot build a CRL entry");
	ASN1_ENUMERATED_free(e);
	ASN1_GENERALIZEDTIME_free(g);
	X509_REVOKED_free(r);
	return NULL;
}

/* The serial's magnitude, big-endian, without leading zero octets (one
 * zero octet for 0). 0 or -1 when it is not 1-40 hex digits. One pass per
 * digit: this runs once per entry. */
static int serial_octets(const char *hex, unsigned char out[SERIAL_HEX_MAX / 2], size_t *n)
{
	size_t len = strnlen(hex, SERIAL_HEX_MAX + 1), o = 0, i = 0, off = 0;

	if (len == 0 || len > SERIAL_HEX_MAX)
		return -1;
	if (len % 2) {  /* an odd count: the first digit is an octet of its own */
		int d = OPENSSL_hexchar2int((unsigned char)hex[0]);
		if (d < 0)
			return -1;
		out[o++] = (unsigned char)d;
		i = 1;
	}
	for (; i < len; i += 2) {
		int hi = OPENSSL_hexchar2int((unsigned char)hex[i]);
		int lo = OPENSSL_hexchar2int((unsigned char)hex[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[o++] = (unsigned char)(hi << 4 | lo);
	}
	while (off + 1 < o && out[off] == 0)
		off++;
	*n = o - off;
	if (off > 0)
		memmove(out, out + off, *n);
	return 0;
}

int crl_builder_add(crl_builder *b, const struct crl_entry *e, struct ca_err *err)
{
	unsigned char oct[SERIAL_HEX_MAX / 2], gt[32], *p;
	size_t n;
	int inv = e->invalidity_date != 0, len;
	X509_REVOKED *r;

	if (e->not_after != 0 && e->not_after < b->expired_before) {
		b->stats.expired++;
		return 0;
	}
	if (e->reason < 0 || e->reason >= N_REASONS || e->reason == 7 ||
	    (e->reason == CRL_REASON_REMOVE && !b->delta)) {
		ca_err_set(err, CA_E_BAD_REQUEST, "RFC 5280 §5.3.1: reason code %d not allowed in a %s CRL (serial %.40s)",
			   e->reason, b->delta ? "delta" : "complete", e->serial_hex);
		return -1;
	}
	if (serial_octets(e->serial_hex, oct, &n) != 0) {
		ca_err_set(err, CA_E_BAD_REQUEST, "RFC 5280 §5.1.2.2: serial '%.48s' is not 1-40 hex digits",
			   e->serial_hex);
		return -1;
	}
	if (b->len + ENTRY_MAX > ENTRIES_MAX) {
		ca_err_set(err, CA_E_INTERNAL, "CRL larger than %u bytes", ENTRIES_MAX);
		return -1;
	}
	if (b->cap - b->len < ENTRY_MAX) {
		size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
		unsigned char *nb;
		if (cap > ENTRIES_MAX)
			cap = ENTRIES_MAX;
		if ((nb = realloc(b->buf, cap)) == NULL) {
			ca_err_set(err, CA_E_INTERNAL, "out of memory (CRL of %zu entries)", b->stats.entries);
			return -1;
		}
		b->buf = nb;
		b->cap = cap;
	}
	if ((r = template_for(b, e->reason, inv, err)) == NULL)
		return -1;
	/* Bulk revocations share their second: format the date once for them. */
	if (!b->when_set || b->when_t != e->revoked_at) {
		if (ASN1_TIME_set(b->when, e->revoked_at) == NULL)
			goto ssl_fail;
		b->when_t = e->revoked_at;
		b->when_set = true;
	}
	if (!ASN1_STRING_set(b->serial, oct, (int)n) || !X509_REVOKED_set_serialNumber(r, b->serial) ||
	    !X509_REVOKED_set_revocationDate(r, b->when))
		goto ssl_fail;
	if (inv) {
		/* RFC 5280 §5.3.2: invalidityDate is a GeneralizedTime. */
		X509_EXTENSION *ext = X509_REVOKED_get_ext(r, X509_REVOKED_get_ext_by_NID(r, NID_invalidity_date, -1));
		p = gt;
		if (ext == NULL || ASN1_GENERALIZEDTIME_set(b->inv, e->invalidity_date) == NULL ||
		    (len = i2d_ASN1_GENERALIZEDTIME(b->inv, NULL)) <= 0 || len > (int)sizeof(gt) ||
		    i2d_ASN1_GENERALIZEDTIME(b->inv, &p) != len ||
		    !ASN1_OCTET_STRING_set(X509_EXTENSION_get_data(ext), gt, len))
			goto ssl_fail;
	}
	p = b->buf + b->len;
	if ((len = i2d_X509_REVOKED(r, &p)) <= 0 || len > ENTRY_MAX)
		goto ssl_fail;
	b->len += (size_t)len;
	b->stats.entries++;
	return 0;
ssl_fail:
	ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the CRL entry for serial %.40s", e->serial_hex);
	return -1;
}

static int add_ext(X509_CRL *crl, int nid, int crit, void *value, struct ca_err *err)
{
	if (X509_CRL_add1_ext_i2d(crl, nid, value, crit, X509V3_ADD_REPLACE) != 1) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot add CRL extension %s", OBJ_nid2sn(nid));
		return -1;
	}
	return 0;
}

/* A DistributionPointName holding one URI (fullName). NULL on error. */
static DIST_POINT_NAME *dp_name_uri(const char *url)
{
	DIST_POINT_NAME *dpn = DIST_POINT_NAME_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (dpn == NULL || g == NULL || s == NULL || !ASN1_STRING_set(s, url, -1) ||
	    (dpn->name.fullname = GENERAL_NAMES_new()) == NULL)
		goto fail;
	dpn->type = 0;
	GENERAL_NAME_set0_value(g, GEN_URI, s);
	s = NULL;
	if (!sk_GENERAL_NAME_push(dpn->name.fullname, g))
		goto fail;
	return dpn;
fail:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(g);
	DIST_POINT_NAME_free(dpn);
	return NULL;
}

/* RFC 5280 §5.2: the CRL extensions, in a fixed order. */
static int add_crl_exts(crl_builder *b, X509_CRL *crl, const struct crl_params *p, struct ca_err *err)
{
	X509 *cert = b->ca->cert;
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(cert);
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new(), *base = NULL;
	ISSUING_DIST_POINT *idp = NULL;
	CRL_DIST_POINTS *fresh = NULL;
	DIST_POINT *dp = NULL;
	int rc = -1;

	if (akid == NULL || num == NULL)
		goto oom;
	/* §5.2.1: the key identifier of the CA's key, as in its certificates. */
	akid->keyid = skid ? ASN1_OCTET_STRING_dup(skid) : ca_key_id(X509_get_X509_PUBKEY(cert));
	if (akid->keyid == NULL)
		goto oom;
	if (add_ext(crl, NID_authority_key_identifier, 0, akid, err) != 0)
		goto out;
	/* §5.2.3 */
	if (!ASN1_INTEGER_set_int64(num, p->number))
		goto oom;
	if (add_ext(crl, NID_crl_number, 0, num, err) != 0)
		goto out;
	/* §5.2.4: critical */
	if (p->delta_of > 0) {
		if ((base = ASN1_INTEGER_new()) == NULL || !ASN1_INTEGER_set_int64(base, p->delta_of))
			goto oom;
		if (add_ext(crl, NID_delta_crl, 1, base, err) != 0)
			goto out;
	}
	/* §5.2.5: critical; names the partition this CRL covers. */
	if (p->idp_url != NULL) {
		if ((idp = ISSUING_DIST_POINT_new()) == NULL || (idp->distpoint = dp_name_uri(p->idp_url)) == NULL)
			goto oom;
		if (add_ext(crl, NID_issuing_distribution_point, 1, idp, err) != 0)
			goto out;
	}
	/* §5.2.6: where the delta CRL for this complete CRL is. */
	if (p->freshest_url != NULL) {
		if ((fresh = CRL_DIST_POINTS_new()) == NULL || (dp = DIST_POINT_new()) == NULL ||
		    (dp->distpoint = dp_name_uri(p->freshest_url)) == NULL || !sk_DIST_POINT_push(fresh, dp))
			goto oom;
		dp = NULL;
		if (add_ext(crl, NID_freshest_crl, 0, fresh, err) != 0)
			goto out;
	}
	rc = 0;
	goto out;
oom:
	ca_err_ssl(err, CA_E_INTERNAL, "cannot build CRL extensions");
out:
	AUTHORITY_KEYID_free(akid);
	ASN1_INTEGER_free(num);
	ASN1_INTEGER_free(base);
	ISSUING_DIST_POINT_free(idp);
	DIST_POINT_free(dp);
	CRL_DIST_POINTS_free(fresh);
	return rc;
}

static int sign_shell(EVP_PKEY *pk, void *arg)
{
	return X509_CRL_sign(arg, pk, sig_digest_for(pk));
}

/* The signature over the assembled TBS (sig_with_privkey may call this
 * twice: once more after re-opening a lost token session). */
struct tbs_sig {
	const unsigned char *tbs;
	size_t len;
	unsigned char *sig;
	size_t siglen;
};

static int sign_tbs(EVP_PKEY *pk, void *arg)
{
	struct tbs_sig *s = arg;
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	size_t n = 0;
	int ok = 0;

	OPENSSL_free(s->sig);
	s->sig = NULL;
	/* One pass over the TBS: hashed here, only the digest reaches the HSM. */
	if (mctx != NULL && EVP_DigestSignInit(mctx, NULL, sig_digest_for(pk), NULL, pk) == 1 &&
	    EVP_DigestSign(mctx, NULL, &n, s->tbs, s->len) == 1 && (s->sig = OPENSSL_malloc(n)) != NULL &&
	    EVP_DigestSign(mctx, s->sig, &n, s->tbs, s->len) == 1) {
		s->siglen = n;
		ok = 1;
	}
	EVP_MD_CTX_free(mctx);
	return ok;
}

/* The CRL without entries, signed once so that OpenSSL sets both signature
 * algorithm identifiers for this key. NULL on error. */
static X509_CRL *make_shell(crl_builder *b, const struct crl_params *p, struct ca_err *err)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *tu = ASN1_TIME_set(NULL, p->this_update), *nu = ASN1_TIME_set(NULL, p->next_update);

	if (crl == NULL || tu == NULL || nu == NULL || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(b->ca->cert)) ||
	    !X509_CRL_set1_lastUpdate(crl, tu) || !X509_CRL_set1_nextUpdate(crl, nu)) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot build the CRL");
		goto fail;
	}
	if (add_crl_exts(b, crl, p, err) != 0)
		goto fail;
	if (sig_with_privkey(b->ca->key, sign_shell, crl, err) != 0)
		goto fail;
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	return crl;
fail:
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	X509_CRL_free(crl);
	return NULL;
}

/* In the shell's TBS: the length of its header and the offset of the [0]
 * extensions (or of its end), where revokedCertificates goes (§5.1). */
static int find_split(const unsigned char *tbs, long len, size_t *hdr, size_t *split)
{
	const unsigned char *p = tbs, *end;
	long clen;
	int tag, cls;

	if (ASN1_get_object(&p, &clen, &tag, &cls, len) & 0x80 || tag != V_ASN1_SEQUENCE)
		return -1;
	*hdr = (size_t)(p - tbs);
	end = p + clen;
	while (p < end) {
		const unsigned char *el = p;
		long l;
		if (ASN1_get_object(&p, &l, &tag, &cls, end - p) & 0x80)
			return -1;
		if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0) {
			*split = (size_t)(el - tbs);
			return 0;
		}
		p += l;
	}
	*split = (size_t)(end - tbs);
	return 0;
}

int crl_builder_finish(crl_builder *b, const struct crl_params *p, unsigned char **der, size_t *len,
		       struct ca_err *err)
{
	EVP_PKEY *pub = sig_pubkey(b->ca->key);
	X509_CRL *shell = NULL;
	unsigned char *tbs0 = NULL, *out = NULL, *q, *tbs;
	const X509_ALGOR *alg = NULL;
	ASN1_BIT_STRING *bits = NULL;
	struct tbs_sig ts = { 0 };
	size_t hdr0, split, content, reserve;
	int tbs0_len, body, tbs_len, alg_len, bits_max, total_max, seq_len = 0, hdr;
	double t0 = mono_s(), t1;
	int rc = -1;

	*der = NULL;
	*len = 0;
	if (b->finished) {
		ca_err_set(err, CA_E_INTERNAL, "crl_builder_finish called twice");
		return -1;
	}
	b->finished = true;
	if ((shell = make_shell(b, p, err)) == NULL)
		goto out;
	X509_CRL_get0_signature(shell, NULL, &alg);
	if ((tbs0_len = i2d_re_X509_CRL_tbs(shell, &tbs0)) <= 0 ||
	    find_split(tbs0, tbs0_len, &hdr0, &split) != 0 || (alg_len = i2d_X509_ALGOR(alg, NULL)) <= 0) {
		ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the CRL");
		goto out;
	}
	/* RFC 5280 §5.1.2.6: with no entries the list is absent, not empty. */
	if (b->len > 0 && (seq_len = ASN1_object_size(1, (int)b->len, V_ASN1_SEQUENCE)) <= 0)
		goto too_big;
	if ((size_t)tbs0_len - hdr0 > (size_t)INT_MAX - (size_t)seq_len)
		goto too_big;
	body = tbs0_len - (int)hdr0 + seq_len;
	/* the public key tells the largest signature */
	bits_max = ASN1_object_size(0, EVP_PKEY_get_size(pub) + 1, V_ASN1_BIT_STRING);
	if ((tbs_len = ASN1_object_size(1, body, V_ASN1_SEQUENCE)) <= 0 || bits_max <= 0 ||
	    tbs_len > INT_MAX - alg_len - bits_max ||
	    (total_max = ASN1_object_size(1, tbs_len + alg_len + bits_max, V_ASN1_SEQUENCE)) <= 0)
		goto too_big;
	/* The outer header goes in front once the signature's length is known. */
	reserve = (size_t)(total_max - (tbs_len + alg_len + bits_max));
	if ((out = malloc((size_t)total_max)) == NULL) {
		ca_err_set(err, CA_E_INTERNAL, "out of memory (CRL of %d bytes)", total_max);
		goto out;
	}
	tbs = q = out + reserve;
	ASN1_put_object(&q, 1, body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(q, tbs0 + hdr0, split - hdr0);
	q += split - hdr0;
	if (b->len > 0) {
		ASN1_put_object(&q, 1, (int)b->len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
		memcpy(q, b->buf, b->len);
		q += b->len;
	}
	memcpy(q, tbs0 + split, (size_t)tbs0_len - split);
	q += (size_t)tbs0_len - split;
	t1 = mono_s();
	b->stats.assemble_s = t1 - t0;
	ts.tbs = tbs;
	ts.len = (size_t)tbs_len;
	if (sig_with_privkey(b->ca->key, sign_tbs, &ts, err) != 0)
		goto out;
	b->stats.sign_s = mono_s() - t1;
	if ((bits = ASN1_BIT_STRING_new()) == NULL || !ASN1_BIT_STRING_set(bits, ts.sig, (int)ts.siglen))
		goto ssl_fail;
	/* A signature is whole octets: say so, or trailing zero bits are cut. */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	if (i2d_ASN1_BIT_STRING(bits, NULL) > bits_max || i2d_X509_ALGOR(alg, &q) != alg_len ||
	    i2d_ASN1_BIT_STRING(bits, &q) <= 0)
		goto ssl_fail;
	content = (size_t)(q - tbs);
	hdr = ASN1_object_size(1, (int)content, V_ASN1_SEQUENCE) - (int)content;
	if (hdr <= 0 || (size_t)hdr > reserve)
		goto too_big;
	q = tbs - hdr;
	ASN1_put_object(&q, 1, (int)content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	if ((size_t)hdr != reserve)
		memmove(out, tbs - hdr, (size_t)hdr + content);
	*der = out;
	*len = (size_t)hdr + content;
	out = NULL;
	rc = 0;
	goto out;
too_big:
	ca_err_set(err, CA_E_INTERNAL, "CRL too large to encode");
	goto out;
ssl_fail:
	ca_err_ssl(err, CA_E_INTERNAL, "cannot encode the CRL signature");
out:
	free(out);
	OPENSSL_free(ts.sig);
	OPENSSL_free(tbs0);
	ASN1_BIT_STRING_free(bits);
	X509_CRL_free(shell);
	return rc;
}
