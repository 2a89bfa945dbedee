/* JSON-lines logging on stderr: {"ts":..., "level":..., "event":..., k: v...}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "mintca/log.h"

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl)
{
	min_level = lvl;
}

int log_level_from_name(const char *name, enum log_level *out)
{
	for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

int log_set_level_name(const char *name)
{
	enum log_level l;

	if (log_level_from_name(name, &l) != 0)
		return -1;
	min_level = l;
	return 0;
}

/* A value as a JSON string. Bytes a client sent that are not UTF-8 would
 * make the whole line fail to encode: they are kept, written as \xHH. */
static json_t *text_value(const char *v)
{
	size_t n = strlen(v), k = 0;
	json_t *j = json_stringn(v, n); /* NULL when v is not valid UTF-8 */
	char *buf;

	if (j != NULL || (buf = malloc(4 * n + 1)) == NULL)
		return j;
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p < 0x80)
			buf[k++] = (char)*p;
		else
			k += (size_t)snprintf(buf + k, 5, "\\x%02x", *p);
	}
	buf[k] = '\0';
	j = json_stringn(buf, k);
	free(buf);
	return j;
}

void log_kv(enum log_level lvl, const char *event, ...)
{
	va_list ap;
	json_t *o;
	char ts[64];
	struct timespec now;
	struct tm tm;
	char *line;
	const char *k;

	if (lvl < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03dZ", (int)(now.tv_nsec / 1000000));
	if ((o = json_object()) == NULL)
		return;
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(level_names[lvl]));
	json_object_set_new(o, "event", json_string(event));
	va_start(ap, event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		/* Invalid UTF-8 from a client must not drop the line. */
		json_t *jv = v ? text_value(v) : json_null();
		json_object_set_new(o, k, jv);
	}
	va_end(ap);
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(o);
	if (line != NULL) {
		size_t n = strlen(line);
		line[n] = '\n'; /* the NUL becomes the newline: one write() per line */
		(void)!write(STDERR_FILENO, line, n + 1);
		free(line);
	}
}
