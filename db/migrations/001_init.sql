-- 001_init: CAs, certificates, revocations and the audit trail.
-- Rows reach the central database from manufacturing sites by logical
-- replication: keys are serials or UUIDs, never a local sequence, and every
-- row says its CA and its site.

CREATE TABLE cas (
	name       text PRIMARY KEY,
	parent     text REFERENCES cas (name),
	key_label  text,
	cert_der   bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- A serial is reserved (committed) before its certificate is signed, so no
-- signed certificate exists that this table does not know.
CREATE TABLE certificates (
	serial         text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{1,40}$'),
	ca             text NOT NULL REFERENCES cas (name),
	site           text NOT NULL DEFAULT 'main',
	status         text NOT NULL CHECK (status IN ('reserved', 'issued')),
	subject        text,
	sans           text[],
	not_before     timestamptz,
	not_after      timestamptz,
	profile        text,
	requester      text,
	protocol       text,
	der            bytea,
	renewed_serial text CHECK (renewed_serial ~ '^[0-9a-f]{1,40}$'),
	reserved_at    timestamptz NOT NULL DEFAULT now(),
	issued_at      timestamptz,
	CHECK (status = 'reserved'
	       OR (der IS NOT NULL AND not_before IS NOT NULL AND not_after IS NOT NULL))
);
CREATE INDEX certificates_ca_not_after ON certificates (ca, not_after);
CREATE INDEX certificates_profile_issued_at ON certificates (profile, issued_at);

CREATE TABLE revocations (
	serial          text PRIMARY KEY REFERENCES certificates (serial),
	ca              text NOT NULL,
	revoked_at      timestamptz NOT NULL,
	reason          smallint NOT NULL DEFAULT 0,
	invalidity_date timestamptz,
	site            text NOT NULL DEFAULT 'main'
);
-- CRLs are built per CA.
CREATE INDEX revocations_ca_revoked_at ON revocations (ca, revoked_at);

CREATE TABLE audit (
	id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	at       timestamptz NOT NULL DEFAULT clock_timestamp(),
	action   text NOT NULL,
	ca       text,
	serial   text,
	actor    text,
	protocol text,
	site     text NOT NULL DEFAULT 'main',
	detail   jsonb
);

-- Append-only: rows are inserted, never changed or removed.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
