/* web_frame: the WEB proxy's v1 frames, as Telegram Desktop's
 * web_proxy_frame.{h,cpp} define them (pure; no I/O, no allocation).
 *
 *   type:u8 | stream_id:u24 BE | length:u32 BE | payload
 *
 * Each carrier message holds one or more complete frames; a frame never
 * spans two messages. The decoder is streaming: it takes any split of a
 * message's bytes and hands out headers and payload pieces. */
#ifndef TGF_WEB_FRAME_H
#define TGF_WEB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WEB_FRAME_HDR 8
#define WEB_FRAME_MAX_PAYLOAD (1u << 20)   /* the client's limit */
#define WEB_FRAME_MAX_PER_MSG 4096         /* frames in one message */
#define WEB_FRAME_PING_MAX 64
#define WEB_STREAM_MAX 0xffffffu

typedef enum {
    WF_OPEN = 0x01,
    WF_DATA = 0x02,
    WF_CLOSE = 0x03,
    WF_WINDOW = 0x04,
    WF_PING = 0x05,
    WF_PONG = 0x06,
    WF_HELLO = 0x10,
    WF_WELCOME = 0x11,
    WF_AUTH_CHAL = 0x12,
    WF_AUTH_RESP = 0x13,
    WF_BYE = 0x1f
} web_frame_type;

/* Why a client's frame is refused (also a metric label). */
typedef enum {
    WF_R_NONE = 0,
    WF_R_TYPE,        /* unknown type, or one the client never sends */
    WF_R_LENGTH,      /* payload too long, or wrong for its type */
    WF_R_STREAM,      /* stream id 0 where one is needed, or the reverse */
    WF_R_TOO_MANY,    /* more than WEB_FRAME_MAX_PER_MSG in a message */
    WF_R_PARTIAL,     /* the message ended inside a frame, or was empty */
    WF_R_COUNT
} web_frame_reason;

const char *web_frame_reason_name(web_frame_reason r);

/* Writes a frame header at out[0..8). */
void web_frame_header(uint8_t out[WEB_FRAME_HDR], uint8_t type, uint32_t stream, uint32_t len);

/* Checks a client->relay header against the v1 rules: OPEN/CLOSE empty on
 * stream > 0; DATA non-empty and <= max_data on stream > 0; WINDOW 4 bytes
 * on stream > 0; PONG <= 64 on 0; HELLO exactly 1 byte on 0. Everything
 * else (PING, WELCOME, BYE, AUTH_*, unknown) is WF_R_TYPE. */
web_frame_reason web_frame_check_client(uint8_t type, uint32_t stream, uint32_t len,
                                        uint32_t max_data);

/* The streaming decoder of one message. */
typedef struct {
    uint8_t hdr[WEB_FRAME_HDR];
    size_t hdr_have;
    uint8_t type;
    uint32_t stream;
    uint32_t len;          /* payload length of the current frame */
    uint32_t left;         /* its payload bytes still to come */
    uint32_t frames;       /* frames begun in this message */
    uint32_t max_data;
    web_frame_reason why;
} web_frame_rx;

typedef enum {
    WFX_NEED_MORE,   /* every byte given was used; feed more */
    WFX_HEADER,      /* a header was read (type/stream/len set); for an
                      * empty payload this is the whole frame */
    WFX_PAYLOAD,     /* *piece, *piece_len: the next bytes of the payload;
                      * left says how many are still to come */
    WFX_ERROR        /* why is set; the decoder is stuck */
} web_frame_event;

void web_frame_rx_init(web_frame_rx *d, uint32_t max_data);
/* Starts a new message (after web_frame_rx_end of the last one). */
void web_frame_rx_message(web_frame_rx *d);
/* Takes bytes from in[0..len); *used says how many. Call again with the
 * rest until NEED_MORE (which comes only once every byte is used). Pieces
 * point into in (not const: the relay decrypts them in place). */
web_frame_event web_frame_rx_feed(web_frame_rx *d, uint8_t *in, size_t len, size_t *used,
                                  uint8_t **piece, size_t *piece_len);
/* The message ended: 0 when it ended at a frame boundary after >= 1 frame,
 * else -1 with why = WF_R_PARTIAL. */
int web_frame_rx_end(web_frame_rx *d);

#endif
