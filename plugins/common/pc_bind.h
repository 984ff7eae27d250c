/* gin's ShouldBindJSON into a Go struct, then validator's
 * binding:"required" (contract 2.3), driven by a field table, and the
 * struct's encoding/json rendering (fields in declaration order, zero
 * values included).
 *
 * Decoding follows encoding/json: keys match field names with Go's case
 * folding, unknown keys are ignored, null leaves the zero value, the last
 * duplicate wins, the first type mismatch is the error reported (after
 * the whole value was decoded), a bad time aborts at once.  Validation
 * runs only on a clean decode and lists every failing field, one line
 * each. */
#ifndef PC_BIND_H
#define PC_BIND_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"
#include "pc_jscan.h"
#include "pc_time.h"

#define PC_K_STRING 0
#define PC_K_FLOAT  1 /* float64 */
#define PC_K_INT    2 /* int (64-bit) */
#define PC_K_TIME   3 /* time.Time */

#define PC_MAX_FIELDS 8

typedef struct pc_field {
  const char *json;  /* wire name: "stream_id" */
  const char *go;    /* Go field name: "StreamID" */
  const char *embed; /* embedded struct holding it ("ChatMetadata") or NULL */
  uint8_t kind;      /* PC_K_* */
  uint8_t required;  /* binding:"required" */
} pc_field;

typedef struct pc_model_def {
  const char *name;      /* "ChatMessage" (validator namespaces) */
  const char *type_name; /* "model.ChatMessage" (reflect.Type.String()) */
  const pc_field *fields;
  size_t nfields;        /* <= PC_MAX_FIELDS */
} pc_model_def;

typedef struct pc_fval {
  char *s;     /* PC_K_STRING: malloc'd, NUL-terminated, may hold NULs; NULL = "" */
  size_t slen;
  double f;
  int64_t i;
  pc_time t;
} pc_fval;

typedef struct pc_model {
  const pc_model_def *def;
  pc_fval v[PC_MAX_FIELDS];
} pc_model;

#define PC_BIND_OK      0
#define PC_BIND_INVALID (-1) /* 400: the Go error text is in `err` */
#define PC_BIND_NOMEM   (-2)

/* A request body, read as json.Decoder.Decode reads it (first value). */
int pc_bind_body(const pc_model_def *def, const void *body, size_t len, pc_model *out,
                 pc_buf *err);
/* Internal, for tests and measurements: pc_bind_body is mode
 * PC_BIND_FAST; PC_BIND_REFERENCE is the original path (Go's scanner byte
 * by byte, members found by scanning again, every key and string value
 * unquoted byte by byte), kept as the reference the fast one must match.
 * *fast (may be NULL) is set to 1 when the fast check answered. */
#define PC_BIND_FAST      0
#define PC_BIND_REFERENCE 1
int pc_bind_body_mode(const pc_model_def *def, const void *body, size_t len, pc_model *out,
                      pc_buf *err, int mode, int *fast);
/* A value already checked by pc_json_decoder_value/pc_json_check_document. */
int pc_bind_value(const pc_model_def *def, pc_jval v, pc_model *out, pc_buf *err);
void pc_model_free(pc_model *m);

/* A string field's value ("" when absent) and its length. */
const char *pc_model_str(const pc_model *m, size_t field, size_t *len);

/* Appends {"field":value,...} as json.Marshal writes the struct.  Returns
 * -1 (buffer unusable for this value) where Go's Marshal fails: a time
 * whose zone offset is 24 h or more. */
int pc_model_put_json(pc_buf *b, const pc_model *m);

#endif
