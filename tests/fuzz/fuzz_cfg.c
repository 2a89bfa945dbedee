/* libFuzzer target: the config file loader (JSON, tables, cross checks). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "mintca/cfg.h"
#include "mintca/log.h"

static char path[64];

static void remove_file(void)
{
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_err err = { 0 };
	struct cfg *c;
	FILE *f;

	if (path[0] == '\0') {
		const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		int fd;
		snprintf(path, sizeof(path), "%.40s/mintca-fuzz-XXXXXX", dir);
		if ((fd = mkstemp(path)) < 0)
			abort();
		close(fd);
		atexit(remove_file);
		log_set_level(LOG_ERROR);
	}
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	c = cfg_load(path, &err);
	if (c == NULL && err.code == CA_OK)
		abort();
	cfg_free(c);
	return 0;
}
