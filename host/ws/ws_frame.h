/* RFC 6455 frame codec: an incremental parser that turns bytes from the
 * peer into whole messages and control frames, and encoders for the
 * frames the server sends.  Pure (no I/O), so it is unit-tested alone. */
#ifndef ND_WS_FRAME_H
#define ND_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
  ND_WS_OP_CONT = 0x0,
  ND_WS_OP_TEXT = 0x1,
  ND_WS_OP_BINARY = 0x2,
  ND_WS_OP_CLOSE = 0x8,
  ND_WS_OP_PING = 0x9,
  ND_WS_OP_PONG = 0xA,
};

/* Close codes used by the host. */
enum {
  ND_WS_CLOSE_NORMAL = 1000,
  ND_WS_CLOSE_GOING_AWAY = 1001,
  ND_WS_CLOSE_PROTOCOL = 1002,
  ND_WS_CLOSE_NO_STATUS = 1005,   /* never sent: "close frame had no code" */
  ND_WS_CLOSE_ABNORMAL = 1006,    /* never sent: connection dropped */
  ND_WS_CLOSE_BAD_DATA = 1007,
  ND_WS_CLOSE_POLICY = 1008,
  ND_WS_CLOSE_TOO_BIG = 1009,
  ND_WS_CLOSE_INTERNAL = 1011,
};

enum {
  ND_WS_EV_NONE = 0,  /* all input consumed, need more */
  ND_WS_EV_MESSAGE,   /* a whole (reassembled) text or binary message */
  ND_WS_EV_PING,
  ND_WS_EV_PONG,
  ND_WS_EV_CLOSE,     /* peer's close frame, already validated */
  ND_WS_EV_ERROR,     /* protocol violation: close with `code` */
};

typedef struct nd_ws_event {
  int type;
  int is_text;         /* MESSAGE */
  const uint8_t *data; /* MESSAGE / PING / PONG payload, CLOSE reason;
                          valid until the next nd_ws_parse call */
  size_t len;
  int code;            /* CLOSE: peer's code (1005 if none); ERROR: code to send */
  const char *why;     /* ERROR: static description */
} nd_ws_event;

typedef struct nd_ws_parser {
  uint64_t max_message;   /* bytes per reassembled message; 0 = no limit */
  uint64_t remaining;     /* payload bytes left in the current frame */
  uint8_t *msg;           /* data message being assembled (malloc'd) */
  size_t msg_len, msg_cap;
  uint32_t utf8;          /* validator state of the text message */
  uint8_t hdr[14];
  uint8_t hdr_have;
  uint8_t in_payload;
  uint8_t opcode, fin;
  uint8_t mask[4];
  uint8_t mask_pos;
  uint8_t msg_op;         /* 0 = none in progress, else TEXT/BINARY */
  uint8_t require_mask;
  uint8_t delivered;      /* msg was handed out: reset on the next call */
  uint8_t failed;         /* sticky after an error */
  uint8_t ctrl_len;
  uint8_t ctrl[125];
} nd_ws_parser;

void nd_ws_parser_init(nd_ws_parser *p, uint64_t max_message, int require_mask);
/* Frees the message buffer; the parser may be re-initialised. */
void nd_ws_parser_free(nd_ws_parser *p);

/* Consumes bytes until one event is complete or the input runs out.
 * Returns the number of bytes consumed (the rest must be fed again) and
 * fills `ev` (ND_WS_EV_NONE when it needs more).  After ND_WS_EV_ERROR
 * every later call reports the same error and consumes everything. */
size_t nd_ws_parse(nd_ws_parser *p, const uint8_t *in, size_t n, nd_ws_event *ev);

/* Frees a delivered message's buffer now rather than on the next call, so
 * an idle connection holds no message memory (the event's data becomes
 * invalid).  No-op unless a message was just delivered. */
void nd_ws_parser_release(nd_ws_parser *p);

/* Writes a frame header into out (up to 14 bytes); `mask` NULL for the
 * server's unmasked frames.  Returns the header length. */
size_t nd_ws_frame_header(uint8_t out[14], int opcode, int fin, uint64_t len,
                          const uint8_t *mask);
/* XORs n bytes with mask, starting at mask position `pos` (0..3). */
void nd_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t pos);

/* 1 if `code` may appear in a close frame on the wire (RFC 6455 7.4). */
int nd_ws_close_code_valid(int code);
/* Close frame payload: 2-byte code plus reason cut to fit 125 bytes at a
 * UTF-8 boundary.  code 0 = empty payload.  Returns the payload length. */
size_t nd_ws_close_payload(uint8_t out[125], int code, const char *reason);

#endif
