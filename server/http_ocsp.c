/* The ocsp route: not built yet. */
#include "http_int.h"

enum MHD_Result srv_http_ocsp(struct MHD_Connection *c, struct req_state *s, const char *method,
			  const char *url)
{
	return srv_send_text(c, s, method, url, 404, "not found\n");
}
