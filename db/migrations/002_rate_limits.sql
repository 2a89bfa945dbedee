-- 002_rate_limits: rate-limit counters shared by every node on this database.
-- Site-local counters, not replicated: a manufacturing site limits its own
-- lines; do not add this table to the site's publication.
-- One row per limit key and fixed window (windows aligned to the Unix epoch,
-- computed from the database clock so that all nodes agree). window_end lets
-- the pruning delete ended windows whatever their length.

CREATE TABLE rate_windows (
	key          text NOT NULL,
	window_start timestamptz NOT NULL,
	window_end   timestamptz NOT NULL,
	count        integer NOT NULL CHECK (count >= 0),
	PRIMARY KEY (key, window_start)
);
