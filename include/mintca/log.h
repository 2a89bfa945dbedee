/* Structured logging: one JSON object per line on stderr.
 * Values are plain strings; a secret is never passed to the logger. */
#ifndef MINTCA_LOG_H
#define MINTCA_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Returns -1 on an unknown level name ("debug", "info", "warn", "error"). */
int log_set_level_name(const char *name);
/* The level of a name, without changing anything. -1 if unknown. */
int log_level_from_name(const char *name, enum log_level *out);
void log_set_level(enum log_level lvl);

/* log_kv(LOG_INFO, "est.enroll", "req", id, "serial", hex, NULL):
 * message name, then key/value string pairs ending with NULL. A NULL
 * value prints as null. Thread-safe: each line is written with one write(). */
void log_kv(enum log_level lvl, const char *event, ...)
	__attribute__((sentinel));

/* The text that stands in for every secret in logs and diagnostics. */
#define LOG_REDACTED "[redacted]"

#endif
