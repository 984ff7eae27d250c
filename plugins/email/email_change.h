/* Chat change records: the Debezium MongoDB envelope whose `after` is the
 * Extended JSON text of a chat document (contract 4.1).  A minimal reader,
 * local to this plugin: it needs only inserts of chat documents. */
#ifndef EMAIL_CHANGE_H
#define EMAIL_CHANGE_H

#include <stddef.h>

#include "email_event.h"

/* Returns 1 = an insert (op "c"), decoded into *out (caller frees with
 * email_chat_msg_free); 0 = valid envelope of another op (nothing to mail);
 * -1 = malformed (reason in *why, static); -2 = out of memory. */
int email_change_parse(const void *value, size_t len, email_chat_msg *out, const char **why);

#endif
