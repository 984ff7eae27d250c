/* MongoDB Extended JSON for the chat document (contract 4.1, 9):
 *   {_id, content, created_at, stream_id, sender_id, receiver_id}
 * Reading accepts canonical and relaxed Extended JSON ($oid, $date as a
 * number, {"$numberLong"} or an ISO string, $numberLong / $numberInt ids)
 * and the plain form ExtractNewDocumentState writes (ObjectId as hex
 * string, dates as epoch-ms numbers).  Writing produces what the Go test
 * published and Debezium's key format. */
#ifndef CHAT_EXTJSON_H
#define CHAT_EXTJSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"
#include "chat_model.h"

#define CHAT_DOC_OK      0
#define CHAT_DOC_INVALID (-1) /* `reason` says why */
#define CHAT_DOC_NOMEM   (-2)

/* Reads the chat fields of a document object; unknown fields are ignored,
 * missing ones stay empty (created_at: zero time).  `out` is initialised
 * here and owned by the caller on success. */
int chat_doc_from_json(const json_t *doc, chat_message *out, char *reason, size_t rlen);
/* The same from Extended JSON text (e.g. Debezium's `after` string). */
int chat_doc_from_extjson(const char *text, size_t len, chat_message *out, char *reason,
                          size_t rlen);

/* Canonical Extended JSON of the document, compact, fields in the order
 * the Go service stored them:
 * {"_id":{"$oid":"…"}|"…","content":…,"created_at":{"$date":{"$numberLong":"…"}},…} */
int chat_doc_to_extjson(const chat_message *m, pc_buf *b);
/* The record key, as Debezium's MongoDB connector writes it with
 * key.converter.schemas.enable=false: {"id":"<relaxed Extended JSON of _id>"},
 * i.e. {"id":"{\"$oid\": \"…\"}"} or {"id":"\"…\""}. */
int chat_doc_key(const chat_message *m, pc_buf *b);
/* The record value: {"before":null,"after":"<canonical ExtJSON>","op":"c","ts_ms":N}. */
int chat_change_value(const chat_message *m, int64_t ts_ms, pc_buf *b);

/* Strict decimal int64 (optional '-', 1..19 digits, no overflow). */
int chat_parse_int64(const char *s, int64_t *out);

#endif
