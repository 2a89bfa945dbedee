/* The policy engine: may this requester use this profile, and what will the
 * certificate say? One decision for EST, the CLI and every later protocol.
 * Every rule consulted can be written to a trace (`mintctl policy explain`). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "ca_int.h"

#define TRACE_MAX (64 * 1024)

static void trace(struct pol_trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct pol_trace *t, const char *fmt, ...)
{
	va_list ap;
	char line[512];
	int n;

	if (t == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (t->len + (size_t)n + 1 > TRACE_MAX)
		return;
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		char *b;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		if ((b = realloc(t->text, cap)) == NULL)
			return;
		t->text = b;
		t->cap = cap;
	}
	memcpy(t->text + t->len, line, (size_t)n);
	t->len += (size_t)n;
	t->text[t->len] = '\0';
}

void pol_trace_free(struct pol_trace *t)
{
	if (t == NULL)
		return;
	free(t->text);
	memset(t, 0, sizeof(*t));
}

void pol_decision_free(struct pol_decision *d)
{
	if (d == NULL)
		return;
	X509_NAME_free(d->subject);
	GENERAL_NAMES_free(d->sans);
	memset(d, 0, sizeof(*d));
}

/* Deny: the reason goes to err and to the trace. */
static int deny(struct pol_trace *t, struct ca_err *err, enum ca_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int deny(struct pol_trace *t, struct ca_err *err, enum ca_code code, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	trace(t, "DENY  %s", why);
	ca_err_set(err, code, "%s", why);
	return -1;
}

static bool in_list(char *const *l, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i], s) == 0)
			return true;
	return false;
}

static bool matches(const regex_t *re, const char *s)
{
	return re == NULL || regexec(re, s, 0, NULL, 0) == 0;
}

/* Lower-case hex of a serial, as the store keeps it. */
void pol_serial_text(const ASN1_INTEGER *serial, char out[41])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;
	size_t i = 0;

	for (; h != NULL && h[i] && i < 40; i++)
		out[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] + 32 : h[i]);
	out[i] = '\0';
	OPENSSL_free(h);
	BN_free(bn);
}

static bool time_within(const X509 *x, time_t now)
{
	struct tm nb, na;

	return ASN1_TIME_to_tm(X509_get0_notBefore(x), &nb) == 1 &&
	       ASN1_TIME_to_tm(X509_get0_notAfter(x), &na) == 1 &&
	       timegm(&nb) <= now && now <= timegm(&na);
}

/* A certificate is renewed under the profile it was issued under, so that
 * re-enrollment never turns a 14-day certificate into a 1-year one. */
static int renew_rules(const ca_ctx *ctx, const struct ca_profile *p, X509 *old,
		       struct pol_trace *t, struct ca_err *err)
{
	char serial[41], was[CA_NAME_MAX];
	const char *issuer = NULL;
	time_t now = ctx->clock(ctx->clock_arg);
	int r;

	if (!p->allow_reenroll)
		return deny(t, err, CA_E_FORBIDDEN, "profile '%s' does not allow re-enrollment", p->name);
	trace(t, "ok    profile '%s' allows re-enrollment", p->name);
	/* Issued by this CA, or by a predecessor it rolled over from. */
	if (X509_check_issued(ctx->cert, old) == X509_V_OK && X509_verify(old, X509_get0_pubkey(ctx->cert)) == 1)
		issuer = ctx->name;
	for (int i = 0; issuer == NULL && i < sk_X509_num(ctx->pred); i++) {
		X509 *pc = sk_X509_value(ctx->pred, i);
		if (X509_check_issued(pc, old) == X509_V_OK && X509_verify(old, X509_get0_pubkey(pc)) == 1)
			issuer = ctx->pred_names[i];
	}
	ERR_clear_error();
	if (issuer == NULL)
		return deny(t, err, CA_E_FORBIDDEN, "certificate to renew was not issued by CA '%s'%s", ctx->name,
			    sk_X509_num(ctx->pred) > 0 ? " or its predecessors" : "");
	/* RFC 5280 §4.1.2.5: valid from notBefore to notAfter, both inclusive. */
	if (!time_within(old, now))
		return deny(t, err, CA_E_FORBIDDEN, "certificate to renew is not valid now (RFC 7030 §3.3.2)");
	trace(t, "ok    certificate to renew was issued by CA '%s' and is valid now", issuer);
	if (ctx->store == NULL)
		return 0;
	pol_serial_text(X509_get0_serialNumber(old), serial);
	if ((r = db_cert_profile(ctx->store, issuer, serial, was, sizeof(was), err)) < 0)
		return -1;
	if (r > 0)
		return deny(t, err, CA_E_FORBIDDEN, "certificate %s to renew is not in the store of CA '%s'",
			    serial, issuer);
	if (strcmp(was, p->name) != 0)
		return deny(t, err, CA_E_FORBIDDEN,
			    "certificate %s was issued under profile '%s': renew it under that profile's label",
			    serial, was);
	trace(t, "ok    certificate %s was issued under this profile", serial);
	return 0;
}

int pol_authorize(const ca_ctx *ctx, const struct ca_profile *p, const struct ca_requester *who,
		  X509 *renew_of, struct pol_trace *t, struct ca_err *err)
{
	char key[CA_NAME_MAX + 16];

	if (who == NULL || who->kind == CA_AUTH_NONE)
		return deny(t, err, CA_E_UNAUTHENTICATED, "profile '%s' requires authentication", p->name);
	ca_requester_key(who, key, sizeof(key));
	trace(t, "info  requester: credential %s (%s)", key, who->id);
	if (renew_of != NULL)
		return renew_rules(ctx, p, renew_of, t, err);
	switch (who->kind) {
	case CA_AUTH_BASIC:
		if (!in_list(p->basic_users, p->n_basic_users, who->id))
			return deny(t, err, CA_E_FORBIDDEN, "user '%s' may not use profile '%s'", who->id, p->name);
		break;
	case CA_AUTH_CLIENT_CERT:
		if (!in_list(p->cert_anchors, p->n_cert_anchors, who->anchor))
			return deny(t, err, CA_E_FORBIDDEN, "client certificates from '%s' may not use profile '%s'",
				    who->anchor, p->name);
		break;
	case CA_AUTH_OPERATOR:
		if (!p->operator_allowed)
			return deny(t, err, CA_E_FORBIDDEN, "operators may not use profile '%s'", p->name);
		break;
	default:
		return deny(t, err, CA_E_UNAUTHENTICATED, "profile '%s' requires authentication", p->name);
	}
	trace(t, "ok    profile '%s' lists credential %s", p->name, key);
	return 0;
}

/* Text of a name entry's value as UTF-8; NULL if it holds a NUL byte. */
static char *entry_text(const X509_NAME_ENTRY *e)
{
	const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, v);
	char *s;

	if (n < 0)
		return NULL;
	if (memchr(u, 0, (size_t)n) != NULL || (s = malloc((size_t)n + 1)) == NULL) {
		OPENSSL_free(u);
		return NULL;
	}
	memcpy(s, u, (size_t)n);
	s[n] = '\0';
	OPENSSL_free(u);
	return s;
}

static long utf8_chars(const char *s)
{
	long n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static const char *const rule_names[] = { "keep", "require", "override", "drop", "refuse" };

/* Subject rules, in the profile's order; then what is not listed. */
static int build_subject(const struct ca_profile *p, X509_REQ *csr, X509_NAME **out,
			 struct pol_trace *t, struct ca_err *err)
{
	const X509_NAME *in = X509_REQ_get_subject_name(csr);
	const struct ca_profile_built *b = p->built;
	int n = X509_NAME_entry_count(in), rc = -1;
	X509_NAME *name = NULL;
	char *val = NULL;

	for (int i = 0; i < n; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(in, i);
		int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		const ASN1_STRING_TABLE *tbl = ASN1_STRING_TABLE_get(nid);
		long chars;
		if ((val = entry_text(e)) == NULL)
			return deny(t, err, CA_E_NAME_REFUSED, "subject attribute %d is not text or holds a NUL byte", i + 1);
		chars = utf8_chars(val);
		free(val);
		val = NULL;
		/* RFC 5280 Appendix A upper bounds (ub-common-name 64, ...). */
		if (tbl != NULL && tbl->maxsize > 0 && chars > tbl->maxsize)
			return deny(t, err, CA_E_NAME_REFUSED, "subject %s is %ld characters, over RFC 5280's upper bound of %ld",
				    OBJ_nid2sn(nid), chars, tbl->maxsize);
	}
	if (p->n_subject == 0 && p->subject_other == CA_SUBJ_KEEP) {
		trace(t, "ok    subject: kept as requested (the profile has no subject rules)");
		if ((*out = X509_NAME_dup(in)) == NULL)
			return deny(t, err, CA_E_INTERNAL, "out of memory");
		return 0;
	}
	if ((name = X509_NAME_new()) == NULL)
		return deny(t, err, CA_E_INTERNAL, "out of memory");
	for (size_t r = 0; r < p->n_subject; r++) {
		const struct ca_subject_attr *a = &p->subject[r];
		int nid = b->subject_nid[r], seen = 0;
		if (a->rule == CA_SUBJ_OVERRIDE) {
			if (!X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (unsigned char *)a->value, -1, -1, 0))
				goto bad_value;
			trace(t, "ok    subject %s: set to '%s' by the profile", a->type, a->value);
			continue;
		}
		for (int i = -1; (i = X509_NAME_get_index_by_NID(in, nid, i)) >= 0;) {
			const X509_NAME_ENTRY *e = X509_NAME_get_entry(in, i);
			seen++;
			if (a->rule == CA_SUBJ_DROP)
				continue;
			if (a->rule == CA_SUBJ_REFUSE) {
				deny(t, err, CA_E_NAME_REFUSED, "profile '%s' refuses subject attribute %s", p->name, a->type);
				goto out;
			}
			val = entry_text(e);
			if (!matches(b->subject_re[r], val)) {
				deny(t, err, CA_E_NAME_REFUSED, "subject %s '%s' does not match the profile's pattern %s",
				     a->type, val, a->pattern);
				goto out;
			}
			if (!X509_NAME_add_entry(name, e, -1, 0))
				goto bad_value;
			trace(t, "ok    subject %s '%s': %s%s%s", a->type, val, rule_names[a->rule],
			      a->pattern ? ", matches " : "", a->pattern ? a->pattern : "");
			free(val);
			val = NULL;
		}
		if (a->rule == CA_SUBJ_REQUIRE && seen == 0) {
			deny(t, err, CA_E_NAME_REFUSED, "profile '%s' requires subject attribute %s", p->name, a->type);
			goto out;
		}
		if (a->rule == CA_SUBJ_DROP && seen > 0)
			trace(t, "ok    subject %s: dropped by the profile", a->type);
	}
	for (int i = 0; i < n; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(in, i);
		int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		bool listed = false;
		for (size_t r = 0; r < p->n_subject && !listed; r++)
			listed = b->subject_nid[r] == nid;
		if (listed)
			continue;
		if (p->subject_other == CA_SUBJ_REFUSE) {
			deny(t, err, CA_E_NAME_REFUSED, "profile '%s' does not allow subject attribute %s",
			     p->name, OBJ_nid2sn(nid));
			goto out;
		}
		if (p->subject_other == CA_SUBJ_DROP) {
			trace(t, "ok    subject %s: not in the profile, dropped", OBJ_nid2sn(nid));
		} else if (!X509_NAME_add_entry(name, e, -1, 0)) {
			goto bad_value;
		}
	}
	*out = name;
	name = NULL;
	rc = 0;
	goto out;
bad_value:
	ERR_clear_error();
	deny(t, err, CA_E_NAME_REFUSED, "subject attribute cannot be encoded (wrong type or too long)");
out:
	free(val);
	X509_NAME_free(name);
	return rc;
}

static bool clean_string(const ASN1_STRING *s, bool dns)
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);

	if (len <= 0 || len > 255)
		return false;
	for (int i = 0; i < len; i++) {
		unsigned char c = d[i];
		if (c < 0x20 || c > 0x7e)
			return false;
		if (dns && !(c == '-' || c == '.' || c == '*' || c == '_' ||
			     (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

/* Kind and text of one SAN ("DNS:x" in full, value after the colon). -1: a
 * kind no profile can allow, or a value that is not clean. */
int pol_san_text(const struct ca_profile_built *b, const GENERAL_NAME *g, char *buf, size_t len,
		 const char **value)
{
	const ASN1_STRING *s = NULL;
	const char *tag;
	int kind, off;

	switch (g->type) {
	case GEN_DNS: kind = CA_SAN_DNS; tag = "DNS"; s = g->d.dNSName; break;
	case GEN_EMAIL: kind = CA_SAN_EMAIL; tag = "email"; s = g->d.rfc822Name; break;
	case GEN_URI: kind = CA_SAN_URI; tag = "URI"; s = g->d.uniformResourceIdentifier; break;
	case GEN_IPADD: {
		const ASN1_OCTET_STRING *ip = g->d.iPAddress;
		off = snprintf(buf, len, "IP:");
		if ((ip->length != 4 && ip->length != 16) ||
		    inet_ntop(ip->length == 4 ? AF_INET : AF_INET6, ip->data, buf + off,
			      (socklen_t)(len - (size_t)off)) == NULL)
			return -1;
		*value = buf + off;
		return CA_SAN_IP;
	}
	case GEN_OTHERNAME: {
		/* hardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING } */
		const ASN1_TYPE *v = g->d.otherName->value;
		const unsigned char *p;
		ASN1_SEQUENCE_ANY *seq;
		const ASN1_TYPE *serial;
		if (b == NULL || OBJ_cmp(g->d.otherName->type_id, b->hw_oid) != 0 || v->type != V_ASN1_SEQUENCE)
			return -1;
		p = v->value.sequence->data;
		seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, v->value.sequence->length);
		if (seq == NULL || sk_ASN1_TYPE_num(seq) != 2 ||
		    sk_ASN1_TYPE_value(seq, 0)->type != V_ASN1_OBJECT ||
		    (serial = sk_ASN1_TYPE_value(seq, 1))->type != V_ASN1_OCTET_STRING ||
		    !clean_string(serial->value.octet_string, false)) {
			sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
			ERR_clear_error();
			return -1;
		}
		off = snprintf(buf, len, "HWSERIAL:");
		snprintf(buf + off, len - (size_t)off, "%.*s", serial->value.octet_string->length,
			 (const char *)serial->value.octet_string->data);
		sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
		*value = buf + off;
		return CA_SAN_HWSERIAL;
	}
	default:
		return -1;
	}
	if (!clean_string(s, kind == CA_SAN_DNS))
		return -1;
	off = snprintf(buf, len, "%s:", tag);
	snprintf(buf + off, len - (size_t)off, "%.*s", ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
	*value = buf + off;
	return kind;
}

static const char *const kind_names[CA_SAN_KINDS] = { "dns", "ip", "uri", "email", "hardware_serial" };

static int check_sans(const struct ca_profile *p, const struct ca_credential *cred, X509_REQ *csr,
		      GENERAL_NAMES **out, struct pol_trace *t, struct ca_err *err)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
	GENERAL_NAMES *sans = NULL;
	unsigned count[CA_SAN_KINDS] = { 0 };
	int crit = -1, n, rc = -1;
	char text[600];
	const char *value;

	sans = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
	if (sans == NULL && crit != -1) {
		deny(t, err, CA_E_BAD_CSR, "RFC 5280 §4.2.1.6: subjectAltName requested twice or unreadable");
		goto out;
	}
	n = sans ? sk_GENERAL_NAME_num(sans) : 0;
	if ((unsigned)n > p->max_sans) {
		deny(t, err, CA_E_NAME_REFUSED, "profile '%s' allows at most %u subjectAltNames, request has %d",
		     p->name, p->max_sans, n);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		int kind = pol_san_text(p->built, sk_GENERAL_NAME_value(sans, i), text, sizeof(text), &value);
		if (kind < 0) {
			deny(t, err, CA_E_NAME_REFUSED, "subjectAltName %d: a type this server does not issue, "
			     "or a value that is empty, too long or has characters RFC 5280 does not allow", i + 1);
			goto out;
		}
		count[kind]++;
		if (p->san_rules) {
			if (count[kind] > p->san[kind].max) {
				deny(t, err, CA_E_NAME_REFUSED, "profile '%s' allows %u %s subjectAltName(s): %s refused",
				     p->name, p->san[kind].max, kind_names[kind], text);
				goto out;
			}
			if (!matches(p->built->san_re[kind], value)) {
				deny(t, err, CA_E_NAME_REFUSED, "subjectAltName %s does not match the profile's %s pattern %s",
				     text, kind_names[kind], p->san[kind].pattern);
				goto out;
			}
		} else if (kind == CA_SAN_HWSERIAL) {
			deny(t, err, CA_E_NAME_REFUSED, "profile '%s' has no rule for hardware serial numbers", p->name);
			goto out;
		}
		if (cred != NULL && !matches(cred->built->san_re[0], text)) {
			deny(t, err, CA_E_NAME_REFUSED, "credential %s may not ask for %s (pattern %s)",
			     cred->key, text, cred->san_pattern);
			goto out;
		}
		trace(t, "ok    subjectAltName %s allowed", text);
	}
	for (int k = 0; p->san_rules && k < CA_SAN_KINDS; k++)
		if (count[k] < p->san[k].min) {
			deny(t, err, CA_E_NAME_REFUSED, "profile '%s' requires at least %u %s subjectAltName(s)",
			     p->name, p->san[k].min, kind_names[k]);
			goto out;
		}
	*out = sans;
	sans = NULL;
	rc = 0;
out:
	GENERAL_NAMES_free(sans);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

/* Re-enrollment keeps the subject and SANs (RFC 7030 §4.2.2). */
static int same_names(X509_REQ *csr, const GENERAL_NAMES *sans, X509 *old, struct pol_trace *t,
		      struct ca_err *err)
{
	GENERAL_NAMES *was = X509_get_ext_d2i(old, NID_subject_alt_name, NULL, NULL);
	unsigned char *a = NULL, *b = NULL;
	int la, lb;
	bool same;

	if (X509_NAME_cmp(X509_REQ_get_subject_name(csr), X509_get_subject_name(old)) != 0) {
		GENERAL_NAMES_free(was);
		return deny(t, err, CA_E_NAME_REFUSED, "RFC 7030 §4.2.2: re-enrollment must keep the subject of the current certificate");
	}
	la = was ? i2d_GENERAL_NAMES(was, &a) : 0;
	lb = sans ? i2d_GENERAL_NAMES(sans, &b) : 0;
	same = la == lb && (la == 0 || memcmp(a, b, (size_t)la) == 0);
	OPENSSL_free(a);
	OPENSSL_free(b);
	GENERAL_NAMES_free(was);
	if (!same)
		return deny(t, err, CA_E_NAME_REFUSED, "RFC 7030 §4.2.2: re-enrollment must keep the subjectAltNames of the current certificate");
	trace(t, "ok    re-enrollment keeps the subject and subjectAltNames");
	return 0;
}

int pol_check(const ca_ctx *ctx, const struct ca_profile *p, const struct ca_requester *who,
	      X509_REQ *csr, X509 *renew_of, struct pol_decision *d, struct pol_trace *t,
	      struct ca_err *err)
{
	char key[CA_NAME_MAX + 16], *cn = NULL;
	const struct ca_credential *cred;
	int i;

	memset(d, 0, sizeof(*d));
	ca_requester_key(who, key, sizeof(key));
	cred = ca_credential_find(ctx, key);
	d->cred = cred;
	if (ca_csr_check_key(csr, p, err) != 0) {
		trace(t, "DENY  %s", err->detail);
		return -1;
	}
	trace(t, "ok    key type allowed by profile '%s'", p->name);
	if (check_sans(p, cred, csr, &d->sans, t, err) != 0)
		goto fail;
	if (renew_of != NULL) {
		/* The current certificate's names are kept as they are. */
		if (same_names(csr, d->sans, renew_of, t, err) != 0 ||
		    (d->subject = X509_NAME_dup(X509_get_subject_name(renew_of))) == NULL)
			goto fail;
		trace(t, "ALLOW re-enrollment under profile '%s', credential %s", p->name, key);
		return 0;
	}
	if (build_subject(p, csr, &d->subject, t, err) != 0)
		goto fail;
	if (X509_NAME_entry_count(d->subject) == 0 && (d->sans == NULL || sk_GENERAL_NAME_num(d->sans) == 0)) {
		deny(t, err, CA_E_NAME_REFUSED, "RFC 5280 §4.1.2.6: the certificate would have neither subject nor subjectAltName");
		goto fail;
	}
	/* Every CN must match the credential's pattern; no CN at all must match "". */
	if (cred != NULL && cred->built->cn_re != NULL) {
		int seen = 0;
		for (i = -1; (i = X509_NAME_get_index_by_NID(d->subject, NID_commonName, i)) >= 0; seen++) {
			cn = entry_text(X509_NAME_get_entry(d->subject, i));
			if (cn == NULL || !matches(cred->built->cn_re, cn)) {
				deny(t, err, CA_E_NAME_REFUSED, "credential %s may not ask for CN '%s' (pattern %s)",
				     key, cn ? cn : "", cred->cn_pattern);
				goto fail;
			}
			trace(t, "ok    CN '%s' matches credential %s's pattern %s", cn, key, cred->cn_pattern);
			free(cn);
			cn = NULL;
		}
		if (seen == 0 && !matches(cred->built->cn_re, "")) {
			deny(t, err, CA_E_NAME_REFUSED, "credential %s may not ask for CN '' (pattern %s)", key, cred->cn_pattern);
			goto fail;
		}
	}
	trace(t, "ALLOW profile '%s', credential %s", p->name, key);
	return 0;
fail:
	free(cn);
	pol_decision_free(d);
	return -1;
}
