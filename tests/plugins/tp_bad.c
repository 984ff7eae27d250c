/* One source, several broken plugins (selected with -DTP_CASE=...) for the
 * loader's refusal paths. */
#include <notifd/plugin.h>

#define CASE_MAJOR 1       /* v1 symbol, definition says major 2 */
#define CASE_MINOR 2       /* needs a newer minor than the host has */
#define CASE_NOSYM 3       /* no entry symbol at all */
#define CASE_V2ONLY 4      /* only a future major's entry symbol */
#define CASE_INITFAIL 5    /* init returns an error */
#define CASE_NAME 6        /* calls itself something else */
#define CASE_DUPROUTE 7    /* registers a route tp_ok already has */
#define CASE_CFGERR 8      /* reports config errors with api->config_error */
#define CASE_BADCONSUME 9  /* a consumer without out (fine), then one without handler */

static int ok_init(notifd_plugin *p, const notifd_api *api, void **st) {
  (void)p;
  (void)api;
  *st = NULL;
  return 0;
}

static void noop_req(notifd_req *r, void *ud) {
  (void)r;
  (void)ud;
}

static void noop_msg(notifd_bus_msg *m, void *ud) {
  (void)m;
  (void)ud;
}

static int fail_init(notifd_plugin *p, const notifd_api *api, void **st) {
  *st = NULL;
  (void)noop_msg;
#if TP_CASE == CASE_BADCONSUME
  (void)noop_req;
  static const char *const topics[] = {"tp-topic", NULL};
  notifd_consumer_opts o = {.size = sizeof o, .topics = topics, .group = "tp_group",
                            .handler = noop_msg, .max_attempts = -1};
  if (api->bus_consume(p, &o, NULL) != 0) return -99; /* out may be NULL */
  o.group = "tp_group2";
  o.handler = NULL;
  return api->bus_consume(p, &o, NULL);
#elif TP_CASE == CASE_CFGERR
  (void)noop_req;
  const char *url = NULL;
  if (api->config_string(p, "url", NULL, &url) < 0) return NOTIFD_EINVAL;
  api->config_error(p, "url", "expected an http:// or https:// URL, got '%s'", url ? url : "");
  api->config_error(p, "token", "is required");
  return NOTIFD_EINVAL;
#elif TP_CASE == CASE_DUPROUTE
  return api->http_route(p, "GET", "/tp/hello", noop_req, NULL, NULL);
#else
  (void)p;
  (void)api;
  (void)noop_req;
  return -5;
#endif
}

static const notifd_plugin_def def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = TP_CASE == CASE_MAJOR ? 2 : NOTIFD_ABI_MAJOR,
    .abi_minor = TP_CASE == CASE_MINOR ? NOTIFD_ABI_MINOR + 1 : TP_CASE == CASE_CFGERR ? 2 : 0,
    .name = TP_CASE == CASE_NAME ? "someone_else" : TP_NAME,
    .version = "0.0.1",
    .init = (TP_CASE == CASE_INITFAIL || TP_CASE == CASE_DUPROUTE || TP_CASE == CASE_CFGERR ||
             TP_CASE == CASE_BADCONSUME)
                ? fail_init
                : ok_init,
};

#if TP_CASE == CASE_V2ONLY
NOTIFD_PLUGIN_EXPORT const notifd_plugin_def *notifd_plugin_entry_v2(void);
const notifd_plugin_def *notifd_plugin_entry_v2(void) { return &def; }
#elif TP_CASE == CASE_NOSYM
NOTIFD_PLUGIN_EXPORT const notifd_plugin_def *not_the_entry(void);
const notifd_plugin_def *not_the_entry(void) { return &def; }
#else
NOTIFD_PLUGIN_DEFINE(def)
#endif
