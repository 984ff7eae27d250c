/* Connections per peer address, for http.max_connections_per_ip.  Each
 * accepted connection holds an entry (one per address, counted); a
 * websocket upgraded from it takes its hold over, so the count covers
 * both.  Addresses in the trusted list (a local proxy, a load generator)
 * are counted but never capped, and nd_ipent_client() takes their client
 * from X-Forwarded-For.  Entries may outlive the table's owner (websockets
 * outlive the HTTP server at shutdown): nd_ipcount_free only marks the
 * table, which goes away with its last entry.  Loop thread only. */
#ifndef ND_IPCOUNT_H
#define ND_IPCOUNT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;
typedef struct nd_ipcount nd_ipcount;
typedef struct nd_ipent nd_ipent;

/* max_per_ip 0 = no cap.  `trusted`: NULL-terminated exact IP addresses;
 * text that does not parse is skipped (the config loader refuses it). */
nd_ipcount *nd_ipcount_new(uint32_t max_per_ip, const char *const *trusted);
void nd_ipcount_free(nd_ipcount *m);
/* One more connection from `sa`.  NULL with *over = 1 when the address is
 * at its cap, *over = 0 when out of memory or not an IP socket address. */
nd_ipent *nd_ipcount_acquire(nd_ipcount *m, const struct sockaddr *sa, int *over);
void nd_ipcount_release(nd_ipent *e);
uint32_t nd_ipent_count(const nd_ipent *e);
int nd_ipent_trusted(const nd_ipent *e);
/* The address as text ("192.0.2.1", "2001:db8::1"); returns buf. */
const char *nd_ipent_text(const nd_ipent *e, char *buf, size_t len);
/* 1 if `text` is an IPv4 or IPv6 address (for config checks). */
int nd_ip_valid(const char *text);

#endif
