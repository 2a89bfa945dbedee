-- 004_partial_indexes: the secondary indexes of certificates hold issued
-- rows only. Serials are reserved ahead, 64 in one statement
-- (ca-core/serial_pool.c): a reservation has no profile, dates or issuing
-- time yet, and indexing its NULLs cost each reservation two index inserts
-- for nothing. Every query on these columns asks for status = 'issued'.
DROP INDEX certificates_ca_not_after;
CREATE INDEX certificates_ca_not_after ON certificates (ca, not_after) WHERE status = 'issued';
DROP INDEX certificates_profile_issued_at;
CREATE INDEX certificates_profile_issued_at ON certificates (profile, issued_at)
	WHERE status = 'issued';
