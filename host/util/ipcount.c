/* Connections per peer address: a chained hash table of counted entries
 * (see ipcount.h). */
#include "util/ipcount.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/hash.h"

typedef struct ipaddr {
  uint8_t fam;       /* 4 or 6 */
  uint8_t a[16];
} ipaddr;

struct nd_ipent {
  nd_ipent *next;
  nd_ipcount *map;
  uint64_t hash;
  uint32_t count;
  uint8_t trusted;
  ipaddr addr;
};

struct nd_ipcount {
  nd_ipent **tab;
  size_t nbuckets, n;   /* power of two; entries */
  uint64_t seed;
  uint32_t max;
  int orphaned;         /* owner freed it: goes with the last entry */
  ipaddr *trusted;
  size_t ntrusted;
};

static size_t alen(const ipaddr *a) { return a->fam == 4 ? 4 : 16; }

static int same(const ipaddr *x, const ipaddr *y) {
  return x->fam == y->fam && memcmp(x->a, y->a, alen(x)) == 0;
}

/* IPv4-mapped IPv6 addresses count as the IPv4 address. */
static int from_sockaddr(const struct sockaddr *sa, ipaddr *out) {
  memset(out, 0, sizeof *out);
  if (sa->sa_family == AF_INET) {
    out->fam = 4;
    memcpy(out->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family != AF_INET6) return -1;
  const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(a6)) {
    out->fam = 4;
    memcpy(out->a, a6->s6_addr + 12, 4);
  } else {
    out->fam = 6;
    memcpy(out->a, a6->s6_addr, 16);
  }
  return 0;
}

static int from_text(const char *s, ipaddr *out) {
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, s, out->a) == 1) {
    out->fam = 4;
    return 0;
  }
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  if (inet_pton(AF_INET6, s, &s6.sin6_addr) != 1) return -1;
  return from_sockaddr((const struct sockaddr *)&s6, out);
}

int nd_ip_valid(const char *text) {
  ipaddr a;
  return text && from_text(text, &a) == 0;
}

nd_ipcount *nd_ipcount_new(uint32_t max_per_ip, const char *const *trusted) {
  nd_ipcount *m = calloc(1, sizeof *m);
  size_t nt = 0;
  while (trusted && trusted[nt]) nt++;
  if (!m || !(m->tab = calloc(16, sizeof *m->tab)) ||
      (nt && !(m->trusted = calloc(nt, sizeof *m->trusted)))) {
    if (m) free(m->tab);
    free(m);
    return NULL;
  }
  m->nbuckets = 16;
  m->seed = nd_hash_seed();
  m->max = max_per_ip;
  for (size_t i = 0; i < nt; i++)
    if (from_text(trusted[i], &m->trusted[m->ntrusted]) == 0) m->ntrusted++;
  return m;
}

static void destroy(nd_ipcount *m) {
  free(m->trusted);
  free(m->tab);
  free(m);
}

void nd_ipcount_free(nd_ipcount *m) {
  if (!m) return;
  if (m->n == 0) destroy(m);
  else m->orphaned = 1;
}

static void grow(nd_ipcount *m) {
  size_t nb = m->nbuckets * 2;
  nd_ipent **t = calloc(nb, sizeof *t);
  if (!t) return; /* longer chains, still correct */
  for (size_t i = 0; i < m->nbuckets; i++)
    for (nd_ipent *e = m->tab[i], *next; e; e = next) {
      next = e->next;
      e->next = t[e->hash & (nb - 1)];
      t[e->hash & (nb - 1)] = e;
    }
  free(m->tab);
  m->tab = t;
  m->nbuckets = nb;
}

nd_ipent *nd_ipcount_acquire(nd_ipcount *m, const struct sockaddr *sa, int *over) {
  *over = 0;
  ipaddr a;
  if (!m || !sa || from_sockaddr(sa, &a) < 0) return NULL;
  uint64_t h = nd_hash64(&a, sizeof a, m->seed);
  nd_ipent *e = m->tab[h & (m->nbuckets - 1)];
  while (e && !(e->hash == h && same(&e->addr, &a))) e = e->next;
  if (!e) {
    if (!(e = calloc(1, sizeof *e))) return NULL;
    e->map = m;
    e->hash = h;
    e->addr = a;
    for (size_t i = 0; i < m->ntrusted; i++)
      if (same(&m->trusted[i], &a)) e->trusted = 1;
    e->next = m->tab[h & (m->nbuckets - 1)];
    m->tab[h & (m->nbuckets - 1)] = e;
    if (++m->n > m->nbuckets) grow(m);
  } else if (m->max && !e->trusted && e->count >= m->max) {
    *over = 1;
    return NULL;
  }
  e->count++;
  return e;
}

void nd_ipcount_release(nd_ipent *e) {
  if (!e || --e->count) return;
  nd_ipcount *m = e->map;
  nd_ipent **pp = &m->tab[e->hash & (m->nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->next;
  *pp = e->next;
  free(e);
  if (--m->n == 0 && m->orphaned) destroy(m);
}

uint32_t nd_ipent_count(const nd_ipent *e) { return e ? e->count : 0; }
int nd_ipent_trusted(const nd_ipent *e) { return e && e->trusted; }

const char *nd_ipent_text(const nd_ipent *e, char *buf, size_t len) {
  if (!len) return buf;
  if (!e || !inet_ntop(e->addr.fam == 4 ? AF_INET : AF_INET6, e->addr.a, buf, (socklen_t)len))
    buf[0] = '\0';
  return buf;
}
