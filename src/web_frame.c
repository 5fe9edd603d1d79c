/* web_frame: v1 frame headers and the streaming decoder. */
#include "web_frame.h"

#include <string.h>

const char *web_frame_reason_name(web_frame_reason r)
{
    switch (r) {
    case WF_R_NONE: return "none";
    case WF_R_TYPE: return "frame_type";
    case WF_R_LENGTH: return "frame_length";
    case WF_R_STREAM: return "frame_stream";
    case WF_R_TOO_MANY: return "too_many_frames";
    case WF_R_PARTIAL: return "partial_frame";
    case WF_R_COUNT: break;
    }
    return "unknown";
}

void web_frame_header(uint8_t out[WEB_FRAME_HDR], uint8_t type, uint32_t stream, uint32_t len)
{
    out[0] = type;
    out[1] = (uint8_t)(stream >> 16);
    out[2] = (uint8_t)(stream >> 8);
    out[3] = (uint8_t)stream;
    out[4] = (uint8_t)(len >> 24);
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
}

web_frame_reason web_frame_check_client(uint8_t type, uint32_t stream, uint32_t len,
                                        uint32_t max_data)
{
    switch (type) {
    case WF_OPEN:
    case WF_CLOSE:
        if (stream == 0)
            return WF_R_STREAM;
        return len == 0 ? WF_R_NONE : WF_R_LENGTH;
    case WF_DATA:
        if (stream == 0)
            return WF_R_STREAM;
        return len > 0 && len <= max_data ? WF_R_NONE : WF_R_LENGTH;
    case WF_WINDOW:
        if (stream == 0)
            return WF_R_STREAM;
        return len == 4 ? WF_R_NONE : WF_R_LENGTH;
    case WF_PONG:
        if (stream != 0)
            return WF_R_STREAM;
        return len <= WEB_FRAME_PING_MAX ? WF_R_NONE : WF_R_LENGTH;
    case WF_HELLO:
        if (stream != 0)
            return WF_R_STREAM;
        return len == 1 ? WF_R_NONE : WF_R_LENGTH;
    default:
        return WF_R_TYPE;
    }
}

void web_frame_rx_init(web_frame_rx *d, uint32_t max_data)
{
    memset(d, 0, sizeof *d);
    d->max_data = max_data;
}

void web_frame_rx_message(web_frame_rx *d)
{
    d->hdr_have = 0;
    d->left = 0;
    d->frames = 0;
}

web_frame_event web_frame_rx_feed(web_frame_rx *d, uint8_t *in, size_t len, size_t *used,
                                  uint8_t **piece, size_t *piece_len)
{
    *used = 0;
    *piece = NULL;
    *piece_len = 0;
    if (d->why != WF_R_NONE)
        return WFX_ERROR;
    if (d->left) {
        if (len == 0)
            return WFX_NEED_MORE;
        size_t n = len < d->left ? len : d->left;
        *piece = in;
        *piece_len = n;
        *used = n;
        d->left -= (uint32_t)n;
        return WFX_PAYLOAD;
    }
    size_t take = WEB_FRAME_HDR - d->hdr_have;
    if (take > len)
        take = len;
    memcpy(d->hdr + d->hdr_have, in, take);
    d->hdr_have += take;
    *used = take;
    if (d->hdr_have < WEB_FRAME_HDR)
        return WFX_NEED_MORE;
    d->hdr_have = 0;
    d->type = d->hdr[0];
    d->stream = (uint32_t)d->hdr[1] << 16 | (uint32_t)d->hdr[2] << 8 | d->hdr[3];
    d->len = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 |
             d->hdr[7];
    if (++d->frames > WEB_FRAME_MAX_PER_MSG) {
        d->why = WF_R_TOO_MANY;
        return WFX_ERROR;
    }
    web_frame_reason r = web_frame_check_client(d->type, d->stream, d->len, d->max_data);
    if (r != WF_R_NONE) {
        d->why = r;
        return WFX_ERROR;
    }
    d->left = d->len;
    return WFX_HEADER;
}

int web_frame_rx_end(web_frame_rx *d)
{
    if (d->why != WF_R_NONE)
        return -1;
    if (d->hdr_have || d->left || d->frames == 0) {
        d->why = WF_R_PARTIAL;
        return -1;
    }
    return 0;
}
