/* A third-party plugin built outside the notifd tree against the installed
 * SDK (pkg-config notifd-sdk).  GET /greeter/{name} -> {"greeting": "..."} */
#include <notifd/plugin.h>
#include <stdio.h>

static const notifd_api *api_of(void *ud) { return ud; }

static void on_greet(notifd_req *req, void *ud) {
  char text[200];
  snprintf(text, sizeof text, "greetings, %s", api_of(ud)->req_param(req, "name"));
  json_t *o = json_pack("{s:s, s:s}", "greeting", text, "from", "greeter 2.0");
  api_of(ud)->respond_json(req, 200, o);
  json_decref(o);
}

static int greeter_init(notifd_plugin *p, const notifd_api *api, void **state) {
  *state = NULL;
  return api->http_route(p, "GET", "/greeter/{name}", on_greet, (void *)api, NULL);
}

static const notifd_plugin_def greeter_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0,
    .name = "greeter",
    .version = "2.0",
    .init = greeter_init,
};
NOTIFD_PLUGIN_DEFINE(greeter_def)
