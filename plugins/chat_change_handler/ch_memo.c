/* Per-record progress across retry attempts: a retried record re-sends only
 * to the targets that failed, so a chat socket that already showed the
 * message does not get it twice because the notification call failed.
 * Process memory only: after a restart a redelivered record goes to both. */
#include <stdlib.h>
#include <string.h>

#include "ch_internal.h"

typedef struct memo_entry {
  struct memo_entry *next;  /* newest first */
  char *topic;
  int32_t partition;
  int64_t offset;
  unsigned done;
} memo_entry;

struct ch_memo {
  memo_entry *head;
  size_t n, cap;
};

int ch_memo_new(size_t cap, ch_memo **out) {
  ch_memo *mm = calloc(1, sizeof *mm);
  if (!mm) return NOTIFD_ENOMEM;
  mm->cap = cap ? cap : 1;
  *out = mm;
  return 0;
}

static void entry_free(memo_entry *e) {
  free(e->topic);
  free(e);
}

void ch_memo_free(ch_memo *mm) {
  if (!mm) return;
  while (mm->head) {
    memo_entry *e = mm->head;
    mm->head = e->next;
    entry_free(e);
  }
  free(mm);
}

static memo_entry **find(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api) {
  const char *topic = api->msg_topic(m);
  int32_t part = api->msg_partition(m);
  int64_t off = api->msg_offset(m);
  for (memo_entry **pp = &mm->head; *pp; pp = &(*pp)->next) {
    memo_entry *e = *pp;
    if (e->partition == part && e->offset == off && topic && strcmp(e->topic, topic) == 0)
      return pp;
  }
  return NULL;
}

unsigned ch_memo_get(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api) {
  memo_entry **pp = find(mm, m, api);
  return pp ? (*pp)->done : 0;
}

void ch_memo_forget(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api) {
  memo_entry **pp = find(mm, m, api);
  if (!pp) return;
  memo_entry *e = *pp;
  *pp = e->next;
  entry_free(e);
  mm->n--;
}

void ch_memo_put(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api, unsigned done) {
  memo_entry **pp = find(mm, m, api);
  if (pp) {
    (*pp)->done = done;
    return;
  }
  if (!done) return;
  const char *topic = api->msg_topic(m);
  memo_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->topic = strdup(topic ? topic : ""))) {
    free(e);
    return; /* best effort: without the memo a retry re-sends to both */
  }
  e->partition = api->msg_partition(m);
  e->offset = api->msg_offset(m);
  e->done = done;
  e->next = mm->head;
  mm->head = e;
  if (++mm->n > mm->cap) { /* drop the oldest (the tail) */
    memo_entry **tail = &mm->head;
    while ((*tail)->next) tail = &(*tail)->next;
    entry_free(*tail);
    *tail = NULL;
    mm->n--;
  }
}
