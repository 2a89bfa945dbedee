/* Arrays as statement parameters, in PostgreSQL's binary array format: a
 * list of values never becomes SQL text. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "db_int.h"

#define OID_TEXT 25

static void put32(unsigned char **p, uint32_t v)
{
	uint32_t be = htonl(v);

	memcpy(*p, &be, 4);
	*p += 4;
}

int db_text_array(const char *const *v, size_t n, char **out, int *out_len)
{
	size_t total = n > 0 ? 20 + 4 * n : 12; /* the empty array has no dimension */
	unsigned char *buf, *p;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]);
		if (len > INT_MAX || total > (size_t)INT_MAX - len)
			return -1;
		total += len;
	}
	if ((buf = malloc(total)) == NULL)
		return -1;
	p = buf;
	put32(&p, n > 0);              /* dimensions */
	put32(&p, 0);                  /* no NULLs */
	put32(&p, OID_TEXT);
	if (n > 0) {
		put32(&p, (uint32_t)n); /* length */
		put32(&p, 1);           /* lower bound */
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]);
		put32(&p, (uint32_t)len);
		memcpy(p, v[i], len);
		p += len;
	}
	*out = (char *)buf;
	*out_len = (int)total;
	return 0;
}
