/* proxyproto: HAProxy PROXY protocol. v2 header builder for the fronting
 * connection (Caddy learns the client's address) and a v1/v2 parser for an
 * inbound listener behind a load balancer (mtg's USE policy: the header is
 * optional). Pure code: bytes in, bytes or a result out. */
#ifndef TGF_PROXYPROTO_H
#define TGF_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXYPROTO_V2_HDR_LEN 16
#define PROXYPROTO_V2_TCP4_LEN (PROXYPROTO_V2_HDR_LEN + 12)
#define PROXYPROTO_V2_TCP6_LEN (PROXYPROTO_V2_HDR_LEN + 36)
#define PROXYPROTO_V2_MAX_LEN (PROXYPROTO_V2_HDR_LEN + 536)  /* we reject bigger */
#define PROXYPROTO_V1_MAX_LEN 107                            /* with CRLF */

/* Writes a v2 PROXY header (command PROXY, no TLVs) into out. src is the
 * client, dst the address it connected to (mtg: the fronting target).
 * Both IPv4 (or v4-mapped IPv6) -> TCP4 (28 bytes); otherwise TCP6 (52
 * bytes) with an IPv4 side written v4-mapped. Returns the bytes written, or
 * 0 when cap is too small or a family is neither AF_INET nor AF_INET6. */
size_t proxyproto_v2_build(uint8_t *out, size_t cap, const struct sockaddr *src,
                           const struct sockaddr *dst);

typedef enum {
    PROXYPROTO_OK = 0,     /* header parsed; *consumed bytes belong to it */
    PROXYPROTO_NEED_MORE,  /* a prefix of a header (or of its signature): read more */
    PROXYPROTO_NONE,       /* not a PROXY header: all bytes belong to the next layer */
    PROXYPROTO_INVALID     /* starts like a header but is malformed or too long */
} proxyproto_result;

/* Parses a header at the start of buf. NONE is returned as soon as the first
 * byte that differs from both signatures ("PROXY " and the v2 12-byte
 * signature) is seen. On OK: *consumed = header length; *is_local = 1 for a
 * v2 LOCAL command (health check: use the socket's own addresses); src/dst
 * get the addresses (port included), or ss_family = AF_UNSPEC when the
 * header carries none (v1 UNKNOWN, v2 LOCAL/UNSPEC/UDP/UNIX), in which case
 * the caller keeps the socket's addresses. TLVs are skipped. Output pointers
 * may be NULL. On other results *consumed = 0. */
proxyproto_result proxyproto_parse(const uint8_t *buf, size_t len, size_t *consumed,
                                   struct sockaddr_storage *src,
                                   struct sockaddr_storage *dst, int *is_local);

const char *proxyproto_result_str(proxyproto_result r);

/* What was wrong with an INVALID header, for the log. */
typedef enum {
    PROXYPROTO_R_NONE = 0,
    PROXYPROTO_R_V2_VERSION_COMMAND,
    PROXYPROTO_R_V2_FAMILY,
    PROXYPROTO_R_V2_TOO_LONG,
    PROXYPROTO_R_V2_SHORT_ADDRESSES,
    PROXYPROTO_R_V1_TOO_LONG,
    PROXYPROTO_R_V1_BAD_CHAR,
    PROXYPROTO_R_V1_FIELDS,
    PROXYPROTO_R_V1_PROTOCOL,
    PROXYPROTO_R_V1_ADDRESS
} proxyproto_reason;

/* proxyproto_parse, and *why says what made a header INVALID (NONE
 * otherwise). why may be NULL. */
proxyproto_result proxyproto_parse_why(const uint8_t *buf, size_t len, size_t *consumed,
                                       struct sockaddr_storage *src,
                                       struct sockaddr_storage *dst, int *is_local,
                                       proxyproto_reason *why);
const char *proxyproto_reason_str(proxyproto_reason r);

#endif
