-- 003_revocation: certificate holds and their release, CRL numbers and
-- published CRLs (whole, partitioned, delta), delegated OCSP responders.

-- Partitioned CRLs: a certificate is given its shard when it is issued (0 =
-- the CA's one CRL); its CRL Distribution Point names that shard's CRL.
ALTER TABLE certificates ADD COLUMN crl_shard integer NOT NULL DEFAULT 0 CHECK (crl_shard >= 0);

-- RFC 5280 §5.3.1 reason codes a revocation may carry (7 is unused, 8
-- removeFromCRL only appears in delta CRLs). The shard is copied from the
-- certificate, so a shard's CRL reads this table alone.
ALTER TABLE revocations
	ADD CONSTRAINT revocations_reason CHECK (reason BETWEEN 0 AND 10 AND reason NOT IN (7, 8)),
	ADD COLUMN crl_shard integer NOT NULL DEFAULT 0,
	ADD COLUMN not_after timestamptz;
DROP INDEX revocations_ca_revoked_at;
CREATE INDEX revocations_ca_shard ON revocations (ca, crl_shard, revoked_at);

-- A released certificateHold: the revocation row is deleted and this row
-- left behind, so a delta CRL can say removeFromCRL (RFC 5280 §5.3.1).
CREATE TABLE hold_releases (
	serial      text NOT NULL REFERENCES certificates (serial),
	ca          text NOT NULL,
	crl_shard   integer NOT NULL DEFAULT 0,
	released_at timestamptz NOT NULL DEFAULT now(),
	site        text NOT NULL DEFAULT 'main',
	PRIMARY KEY (serial, released_at)
);
CREATE INDEX hold_releases_ca ON hold_releases (ca, crl_shard, released_at);

-- CRL numbers: one strictly increasing counter per CA, shared by its whole,
-- shard and delta CRLs (RFC 5280 §5.2.3); the row lock orders every process.
ALTER TABLE cas ADD COLUMN crl_number bigint NOT NULL DEFAULT 0;

CREATE TABLE crls (
	ca          text NOT NULL REFERENCES cas (name),
	number      bigint NOT NULL,
	shard       integer NOT NULL DEFAULT 0,
	delta_of    bigint,               -- delta CRL: the base CRL number
	this_update timestamptz NOT NULL,
	next_update timestamptz NOT NULL,
	entries     integer NOT NULL,
	der         bytea NOT NULL,
	PRIMARY KEY (ca, number)
);
CREATE INDEX crls_latest ON crls (ca, shard, (delta_of IS NOT NULL), number DESC);

-- The delegated OCSP responder of each CA (RFC 6960 §4.2.2.2): its key on
-- the CA's token under key_label, its certificate renewed before not_after.
CREATE TABLE ocsp_responders (
	ca         text PRIMARY KEY REFERENCES cas (name),
	key_label  text NOT NULL,
	cert_der   bytea NOT NULL,
	not_after  timestamptz NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
