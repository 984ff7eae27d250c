/* example_hello: the smallest useful notifd plugin, for plugin authors.
 *
 *   GET  /hello?name=Ada      -> {"message":"Hello, Ada!"}
 *   POST /hello/echo          -> the JSON body back, with a counter
 *
 * Config (all optional):
 *   greeting: "Hello"        # word before the name
 */
#include <notifd/plugin.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct hello {
  notifd_plugin *self;
  const notifd_api *api;   /* the host's table: every call goes through it */
  const char *greeting;    /* owned by the host, lives as long as the plugin */
  notifd_metric *echoes;
} hello;

static void on_hello(notifd_req *req, void *ud) {
  hello *h = ud;
  const char *name = h->api->req_query(req, "name");
  char msg[256];
  snprintf(msg, sizeof msg, "%s, %s!", h->greeting, name && *name ? name : "world");
  json_t *body = json_pack("{s:s}", "message", msg);
  h->api->respond_json(req, 200, body); /* body is borrowed: we still own it */
  json_decref(body);
}

static void on_echo(notifd_req *req, void *ud) {
  hello *h = ud;
  json_t *in = h->api->req_json_or_400(req); /* NULL: the host answered 400 */
  if (!in) return;
  h->api->metric_add(h->echoes, NULL, 1);
  h->api->respond_json(req, 200, in);
}

static int hello_init(notifd_plugin *p, const notifd_api *api, void **state) {
  hello *h = calloc(1, sizeof *h);
  if (!h) return NOTIFD_ENOMEM;
  *state = h; /* destroy() frees it even if init fails below */
  h->self = p;
  h->api = api;
  /* A wrong type is reported by the host with file:line:column. */
  if (api->config_string(p, "greeting", "Hello", &h->greeting) < 0) return NOTIFD_EINVAL;
  if (!*h->greeting) {
    /* A value of the right type that is still wrong: report it the same
     * way (ABI 1.2; this plugin asks for 1.0, so it checks first). */
    if (NOTIFD_API_HAS(api, config_error)) api->config_error(p, "greeting", "must not be empty");
    else api->log(p, NOTIFD_LOG_ERROR, "config key 'greeting': must not be empty");
    return NOTIFD_EINVAL;
  }
  /* Return a refused call's code as it came: the host's "init failed"
   * message then names the call and why it was refused. */
  int rc = api->metric_counter(p, "example_hello_echoes_total", "Bodies echoed.", NULL, &h->echoes);
  if (rc == 0) rc = api->http_route(p, "GET", "/hello", on_hello, h, NULL);
  if (rc == 0) rc = api->http_route(p, "POST", "/hello/echo", on_echo, h, NULL);
  return rc;
}

static void hello_destroy(void *state) { free(state); }

static const notifd_plugin_def example_hello_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0, /* the lowest host minor whose functions we call */
    .name = "example_hello",
    .version = "1.0.0",
    .init = hello_init,
    .destroy = hello_destroy,
};
NOTIFD_PLUGIN_DEFINE(example_hello_def)
