/* web_ws: the server side of RFC 6455 for the WEB proxy's carrier (pure; no
 * I/O, no allocation).
 *
 * The decoder takes a client's bytes in any split and unmasks payload in
 * place. What the carrier accepts: masked frames only, no extensions (RSV
 * bits 0), minimal length encodings, control frames final and <= 125 bytes,
 * binary messages (fragmented or not) up to a size limit. Text messages and
 * protocol errors end the carrier with the close code RFC 6455 section 7.4
 * names. */
#ifndef TGF_WEB_WS_H
#define TGF_WEB_WS_H

#include <stddef.h>
#include <stdint.h>

#define WS_ACCEPT_LEN 28          /* base64 of a SHA-1 */
#define WS_KEY_TEXT_LEN 24        /* base64 of 16 bytes */
#define WS_CONTROL_MAX 125
#define WS_HEADER_MAX 10          /* server frames are never masked */

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

enum { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9,
       WS_OP_PONG = 10 };

/* Sec-WebSocket-Accept for the client's key text (as sent, not decoded):
 * base64(SHA-1(key || 258EAFA5-E914-47DA-95CA-C5AB0DC85B11)), NUL-terminated. */
void ws_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* 1 when key is 24 characters of base64 that decode to exactly 16 bytes. */
int ws_key_valid(const char *key, size_t len);

/* Writes a final, unmasked server frame header for opcode and len; returns
 * its length (2, 4 or 10). */
size_t ws_header(uint8_t out[WS_HEADER_MAX], int opcode, uint64_t len);

typedef enum {
    WSX_NEED_MORE,   /* every byte given was used */
    WSX_MSG_BEGIN,   /* a binary message starts */
    WSX_MSG_DATA,    /* *piece, *piece_len: the next unmasked message bytes */
    WSX_MSG_END,     /* the binary message is complete */
    WSX_CONTROL,     /* a ping, pong or close is complete: ctl_op, ctl[] */
    WSX_ERROR        /* close_code says why; the decoder is stuck */
} ws_event;

typedef struct {
    uint8_t hdr[14];
    size_t hdr_have, hdr_need;
    int opcode;            /* of the frame being read */
    int fin;
    uint8_t mask[4];
    unsigned mask_pos;
    uint64_t left;         /* payload bytes of this frame still to come */
    int reading_payload;   /* header done, payload bytes follow */
    int pend_end;          /* MSG_END is due at the next call */
    int in_message;        /* a binary message is open (between fragments) */
    int msg_begun;         /* MSG_BEGIN reported for the open message */
    uint64_t msg_len;      /* bytes of the open message so far */
    uint64_t max_message;
    int ctl_op;
    uint8_t ctl[WS_CONTROL_MAX];
    size_t ctl_len;
    uint16_t close_code;   /* on WSX_ERROR */
} ws_rx;

void ws_rx_init(ws_rx *d, uint64_t max_message);

/* Takes bytes from in[0..len) (payload is unmasked in place); *used says
 * how many. Call again with the rest until NEED_MORE, which comes only
 * once every byte given is used. */
ws_event ws_rx_feed(ws_rx *d, uint8_t *in, size_t len, size_t *used, uint8_t **piece,
                    size_t *piece_len);

/* The status code of a close frame's payload (1005 when it has none, 1002
 * when it is malformed: 1 byte, or a code RFC 6455 forbids on the wire). */
uint16_t ws_close_code(const uint8_t *payload, size_t len);

#endif
