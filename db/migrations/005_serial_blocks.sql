-- 005_serial_blocks: certificate rows are only ever inserted, whole.
-- Until now a serial was reserved as a 'reserved' certificates row and its
-- certificate written into that row by an UPDATE: every certificate cost an
-- index insert for the reservation, a dead tuple and a second index entry per
-- index for the update, and vacuum work on the largest table. Now the serials
-- a process reserves ahead (ca-core/serial_pool.c, 64 at a time) are one row
-- here, committed before any of them is signed, and a certificate row is
-- inserted once, at commit. A block is deleted once every serial in it has
-- its certificate (or was given back unused); what stays are serials that
-- may have been signed but were never committed, and after a crash those
-- reserved ahead and not used yet: the view reserved_serials lists them.
CREATE TABLE serial_blocks (
	id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	ca          text NOT NULL REFERENCES cas (name),
	site        text NOT NULL DEFAULT 'main',
	reserved_at timestamptz NOT NULL DEFAULT now(),
	serials     text[] NOT NULL CHECK (cardinality(serials) BETWEEN 1 AND 1000)
);

-- Today's reservations move into blocks (one per CA, site and time).
INSERT INTO serial_blocks (ca, site, reserved_at, serials)
	SELECT ca, site, reserved_at, array_agg(serial ORDER BY serial)
	FROM certificates WHERE status = 'reserved' GROUP BY ca, site, reserved_at;
DELETE FROM certificates WHERE status = 'reserved';

-- The record of what was issued is never changed or removed (a revocation
-- is a row of its own): certificates is append-only, like audit. Only
-- UPDATE, DELETE and TRUNCATE fire this, so an insert costs nothing more.
CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER certificates_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON certificates
	FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- Serials reserved and never issued.
CREATE VIEW reserved_serials AS
	SELECT s.serial, b.ca, b.site, b.reserved_at
	FROM serial_blocks b CROSS JOIN LATERAL unnest(b.serials) AS s (serial)
	WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = s.serial AND c.ca = b.ca);
