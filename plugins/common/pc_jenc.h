/* Writing JSON exactly as Go's encoding/json.Marshal does (contract 0):
 * HTML-safe string escaping, float64 in the shortest round-trip form,
 * integers in decimal. */
#ifndef PC_JENC_H
#define PC_JENC_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

/* A quoted JSON string: `"` and `\` escaped, \b \f \n \r \t, other
 * controls as \u00XX, <, > and & as \u003c \u003e \u0026, U+2028/2029 as
 * \u2028/\u2029, invalid UTF-8 bytes as \ufffd. */
void pc_json_put_string(pc_buf *b, const char *s, size_t n);
void pc_json_put_cstring(pc_buf *b, const char *s);

/* strconv.FormatFloat(v, 'f' or 'e', -1, 64) as encoding/json picks it:
 * exponent form only for |v| < 1e-6 or >= 1e21 (with "e-7", not "e-07").
 * `out` needs 32 bytes.  Returns -1 (and writes nothing) for NaN/Inf,
 * which Go refuses to marshal. */
int pc_go_float(double v, char out[32]);
/* Appends pc_go_float's text; -1 for NaN/Inf. */
int pc_json_put_float(pc_buf *b, double v);

void pc_json_put_int(pc_buf *b, int64_t v);

#endif
