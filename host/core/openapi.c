/* GET /openapi.json: docs/openapi.yaml as JSON, converted at build time
 * (scripts/openapi_json.py) and compiled in, so the description served is
 * the one of this build whatever the install layout.  Public, no auth;
 * off with http.openapi: false. */
#include <stddef.h>

#include "core/lifecycle.h"
#include "http/http.h"

extern const unsigned char nd_openapi_json[];
extern const size_t nd_openapi_json_len;

static void on_openapi(notifd_req *r, void *ud) {
  (void)ud;
  nd_respond(r, 200, "application/json", nd_openapi_json, nd_openapi_json_len);
}

int nd_openapi_register(notifd_host *h) {
  return nd_router_add(h->router, "GET", "/openapi.json", on_openapi, NULL, NOTIFD_AUTH_NONE, 0,
                       "host");
}
