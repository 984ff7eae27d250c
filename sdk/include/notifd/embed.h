/*
 * libnotifd embedding API: run the notifd host inside an existing libevent
 * program.  The caller owns the event_base and runs it; notifd only adds
 * events to it.
 *
 *     struct event_base *base = event_base_new();
 *     notifd_host *h;
 *     char err[512];
 *     if (notifd_host_new_from_file("notifd.yaml", base, &h, err, sizeof err))
 *       { fprintf(stderr, "%s\n", err); ... }
 *     if (notifd_host_start(h, err, sizeof err)) { ... }
 *     event_base_dispatch(base);          // until notifd_host_stop + drain
 *     notifd_host_free(h);
 *
 * Threads: every function here is called on the thread that runs the
 * event_base, except notifd_host_request_stop(), which is async-signal- and
 * thread-safe.
 * Errors: negative NOTIFD_E* codes (see plugin.h); `err` receives a
 * human-readable message (every problem, one per line) when not NULL.
 */
#ifndef NOTIFD_EMBED_H
#define NOTIFD_EMBED_H

#include <stddef.h>
#include <stdint.h>
#include <notifd/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
typedef struct notifd_host notifd_host;

#define NOTIFD_VERSION "0.1.0"

/* Host version string ("0.1.0"). */
const char *notifd_version(void);

/* Parses and validates a YAML config file and creates a host attached to
 * `base` (borrowed; must outlive the host).  Nothing is loaded yet. */
int notifd_host_new_from_file(const char *path, struct event_base *base,
                              notifd_host **out, char *err, size_t errlen);
/* Same from a YAML string; `name` is used in error messages. */
int notifd_host_new_from_string(const char *yaml, size_t len,
                                const char *name, struct event_base *base,
                                notifd_host **out, char *err, size_t errlen);

/* Adds a plugin compiled into the caller instead of loaded with dlopen.
 * It takes the place of a `plugins:` entry whose `builtin: true` and
 * name match (or is appended when none does).  Before start/check only. */
int notifd_host_add_builtin(notifd_host *h, const notifd_plugin_def *def);

/* Loads and initialises every plugin without serving, collecting every
 * problem into `err` (one per line, each plugin's even after another's init
 * failed, unknown keys with did-you-mean suggestions); returns < 0 if there
 * was any.  Writes nothing: no data dir, no embedded bus or kv file, and
 * plugins see check_only() == 1.  The host can only be freed afterwards.
 * (notifd --check) */
int notifd_host_check(notifd_host *h, char *err, size_t errlen);

/* Loads, inits and starts every plugin, opens the listeners and backends.
 * Fails fast: on error everything started is stopped again. */
int notifd_host_start(notifd_host *h, char *err, size_t errlen);

/* Begins graceful shutdown: stop accepting, finish in-flight work, close
 * websockets with 1001, stop plugins in reverse order.  When done (or the
 * configured deadline passed) `done` is called on the loop, if not NULL.
 * After it, no notifd events remain on the base. */
typedef void (*notifd_host_stopped_cb)(notifd_host *h, void *ud);
int notifd_host_stop(notifd_host *h, notifd_host_stopped_cb done, void *ud);

/* Async-signal-safe and thread-safe: asks the loop to run
 * notifd_host_stop (with the callback given to
 * notifd_host_set_stop_callback). */
void notifd_host_request_stop(notifd_host *h);
void notifd_host_set_stop_callback(notifd_host *h, notifd_host_stopped_cb cb,
                                   void *ud);

/* Frees the host.  If it is still running it is stopped abruptly first
 * (no deadline wait).  NULL is ignored. */
void notifd_host_free(notifd_host *h);

/* Bound ports after start (useful with port 0); -1 when not listening. */
int notifd_host_port(const notifd_host *h);
int notifd_host_admin_port(const notifd_host *h);

#ifdef __cplusplus
}
#endif
#endif /* NOTIFD_EMBED_H */
