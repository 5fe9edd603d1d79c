/* faketls: the FakeTLS handshake and record framing of mtg v2, as pure
 * functions (no I/O, no allocation). The caller owns every buffer.
 *
 * Client -> proxy: faketls_check_client_hello() decides, over the bytes read
 * so far, whether they are (or can still become) a ClientHello that proves
 * the secret. After the handshake, faketls_rx_unwrap() strips the record
 * layer in place.
 * Proxy -> client: faketls_build_server_hello() builds the three-record
 * answer; faketls_tx_header() frames later data. */
#ifndef TGF_FAKETLS_H
#define TGF_FAKETLS_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "secret.h"

/* Largest handshake message (4-byte header + body) we accept. Telegram's
 * hellos are under 3 KB; a header announcing more is rejected at once. */
#define FAKETLS_HELLO_MAX 16384
/* mtg accepts a hello fragmented over at most 11 records. */
#define FAKETLS_HELLO_MAX_RECORDS 11
/* Most bytes a valid hello can occupy on the wire: the caller's read buffer
 * for the handshake phase never needs to be larger than this. */
#define FAKETLS_HELLO_BUF_MAX (FAKETLS_HELLO_MAX + FAKETLS_HELLO_MAX_RECORDS * 5)
/* TLS maximum plaintext record payload (RFC 8446 5.1). */
#define FAKETLS_RECORD_MAX 16384
/* Proxy -> client record payload limit, as mtg: header + payload <= 16384. */
#define FAKETLS_TX_MAX_PAYLOAD 16379
#define FAKETLS_HEADER_LEN 5
/* The client random is HMAC ^ (zeros || timestamp): its first 28 bytes are
 * the HMAC's own, which no one without the secret can change; the last 4
 * carry the timestamp, which anyone can re-stamp within the window. */
#define FAKETLS_RANDOM_MAC_LEN 28

/* Key-share groups and share lengths the answer can take. The hybrid
 * group's client share is an ML-KEM-768 encapsulation key (1184) then an
 * X25519 key (32); the server's is an ML-KEM-768 ciphertext (1088) then an
 * X25519 key (draft-kwiatkowski-tls-ecdhe-mlkem, Go's crypto/tls). */
#define FAKETLS_GROUP_X25519 0x001d
#define FAKETLS_GROUP_X25519MLKEM768 0x11ec
#define FAKETLS_MLKEM_CLIENT_SHARE 1216
#define FAKETLS_MLKEM_SERVER_SHARE 1120
#define FAKETLS_MLKEM_CT_LEN 1088
#define FAKETLS_EXT_SUPPORTED_VERSIONS 0x002b
#define FAKETLS_EXT_KEY_SHARE 0x0033
#define FAKETLS_SH_MAX_EXTS 8

typedef enum { FAKETLS_NEED_MORE, FAKETLS_OK, FAKETLS_REJECT } faketls_result;

/* Why a hello was rejected (or a record stream broken). Stable: the names
 * from faketls_reason_name() are metric labels. */
typedef enum faketls_reason {
    FAKETLS_R_NONE,
    FAKETLS_R_NOT_HANDSHAKE,      /* record type is not 0x16 */
    FAKETLS_R_BAD_VERSION,        /* record version not 03 01 (03 03 after) */
    FAKETLS_R_BAD_RECORD_LEN,     /* record length 0 or > 16384 (> 16640 after) */
    FAKETLS_R_TOO_MANY_RECORDS,   /* hello needs more than 11 records */
    FAKETLS_R_TOO_LONG,           /* handshake length > FAKETLS_HELLO_MAX */
    FAKETLS_R_NOT_CLIENT_HELLO,   /* handshake type not 1 */
    FAKETLS_R_MALFORMED,          /* inconsistent lengths inside the hello */
    FAKETLS_R_NO_CIPHER,          /* no non-GREASE cipher suite */
    FAKETLS_R_NO_SNI,             /* no server_name extension / host_name */
    FAKETLS_R_SNI_MISMATCH,       /* secret's hostname not among the names */
    FAKETLS_R_BAD_DIGEST,         /* HMAC does not prove the secret */
    FAKETLS_R_TIME_SKEW,          /* timestamp outside the tolerance */
    FAKETLS_R_BAD_TYPE,           /* after the hello: a record Go refuses by type */
    FAKETLS_R_COUNT
} faketls_reason;

/* Short snake_case name ("not_handshake", "bad_digest", ...), never NULL;
 * "unknown" for out-of-range values. */
const char *faketls_reason_name(faketls_reason r);

typedef struct {
    uint8_t client_random[32];
    uint8_t session_id[32];
    uint8_t session_id_len;   /* 0..32 */
    uint16_t cipher_suite;    /* first non-GREASE suite offered */
    uint8_t tls13_suites;     /* bit n: suite 0x1301 + n offered */
    uint8_t mlkem_share;      /* 1: a 1216-byte X25519MLKEM768 key share */
    uint32_t timestamp;       /* client's Unix time from the digest */
    uint32_t key_index;       /* which key of the ring the hello proved */
    size_t consumed;          /* input bytes forming the hello records */
} faketls_hello;

/* Checks the prefix buf[0..len) of what the client sent. Stateless: call
 * again with the longer prefix when more bytes arrive.
 *   FAKETLS_NEED_MORE  the prefix can still become a valid hello.
 *   FAKETLS_REJECT     it cannot (or it is complete and fails); *reason set.
 *                      Decided as early as the bytes allow (1 byte for a
 *                      non-0x16 first byte, 5 for a bad record header).
 *   FAKETLS_OK         a complete hello proving secret; *out filled. Bytes
 *                      after out->consumed (pipelined data) are not part
 *                      of the hello and belong to the record stream.
 * Checks, in order: record framing and reassembly (each record 16 03 01,
 * length 1..16384, at most 11 records), ClientHello structure, a
 * non-GREASE cipher, SNI containing secret->host; then the HMAC; then the
 * timestamp (|now_unix - ts| * 1000 > tolerance_ms is TIME_SKEW; the
 * client's timestamp has one-second resolution). Anti-replay is the
 * caller's job and must run only after FAKETLS_OK.
 * A session id longer than 32 bytes is MALFORMED (TLS allows at most 32).
 * out and reason may be NULL. Never reads outside buf[0..len). */
faketls_result faketls_check_client_hello(const uint8_t *buf, size_t len,
                                          const tg_secret *secret,
                                          int64_t now_unix,
                                          uint32_t tolerance_ms,
                                          faketls_hello *out,
                                          faketls_reason *reason);

/* The keys a hello may prove, all for one hostname (tgfront's named
 * secrets). keys[0..count) are 16-byte secret keys. */
typedef struct {
    const uint8_t (*keys)[SECRET_KEY_LEN];
    size_t count;
    const char *host;
    size_t host_len;
    const crypto_hmac_key *prepared;   /* prepared[i] is keys[i]'s, or NULL */
} faketls_keyring;

/* faketls_check_client_hello against every key of ring: the same checks,
 * with the HMAC computed for each key (all of them, whatever matches, so
 * the time taken does not depend on which one did). On FAKETLS_OK
 * out->key_index names the key. When the digest matched a key but the
 * timestamp did not pass (REJECT with FAKETLS_R_TIME_SKEW), out->timestamp
 * and out->key_index are filled too, so the caller can report the skew.
 * Cost: one HMAC-SHA256 over the hello per key. */
faketls_result faketls_check_client_hello_any(const uint8_t *buf, size_t len,
                                              const faketls_keyring *ring,
                                              int64_t now_unix,
                                              uint32_t tolerance_ms,
                                              faketls_hello *out,
                                              faketls_reason *reason);

/* After faketls_check_client_hello said NEED_MORE for buf[0..len): the
 * length the prefix must reach before checking again can tell more, i.e.
 * the end of the record header or record in progress (always > len).
 * Lets the caller skip re-parsing a hello that arrives a byte at a time,
 * which would otherwise cost O(n^2) per connection. */
size_t faketls_hello_next_check(const uint8_t *buf, size_t len);

/* Length of the ServerHello packet (handshake + CCS + one application-data
 * record of appdata_len bytes): 106 + session_id_len + appdata_len. */
size_t faketls_server_hello_len(uint8_t session_id_len, size_t appdata_len);

/* Builds the answer into out[0..cap): ServerHello record (version 03 03,
 * session id echoed, hello->cipher_suite, supported_versions TLS 1.3,
 * key_share X25519 x25519_pub), ChangeCipherSpec 14 03 03 00 01 01, and one
 * application-data record carrying appdata (random bytes the caller drew;
 * 1..16384 bytes; may overlap out). Then writes the server random
 * HMAC-SHA256(secret->key, client_random || packet with random zeroed) at
 * offset 11. Returns the packet length, or 0 if cap is too small or the
 * arguments are invalid. */
size_t faketls_build_server_hello(uint8_t *out, size_t cap,
                                  const faketls_hello *hello,
                                  const tg_secret *secret,
                                  const uint8_t x25519_pub[32],
                                  const uint8_t *appdata, size_t appdata_len);

/* What the ServerHello looks like: the site's choice for this kind of
 * hello (site_profile learns it). Extensions are written in exts order;
 * only supported_versions and key_share can be written. */
typedef struct {
    uint16_t cipher;
    uint16_t group;           /* key_share group */
    uint16_t share_len;       /* key_share key_exchange length */
    uint8_t ext_count;
    uint16_t exts[FAKETLS_SH_MAX_EXTS];
} faketls_sh_shape;

/* The shape of mtg's answer: supported_versions, key_share X25519. */
void faketls_default_shape(faketls_sh_shape *out, uint16_t cipher);

/* Length of the shaped answer (ServerHello + CCS + one application-data
 * record of appdata_len bytes), or 0 when the shape cannot be written. */
size_t faketls_shaped_len(uint8_t session_id_len, const faketls_sh_shape *shape,
                          size_t appdata_len);

/* faketls_build_server_hello with the shape's cipher, extension order and
 * key_share: share is shape->share_len bytes (caller-drawn; a real X25519
 * key in its place). appdata as there (1..16384 bytes, may overlap out).
 * Returns the length, or 0 when cap is too small or the shape invalid. */
size_t faketls_build_shaped(uint8_t *out, size_t cap, const faketls_hello *hello,
                            const tg_secret *secret, const faketls_sh_shape *shape,
                            const uint8_t *share, const uint8_t *appdata, size_t appdata_len);

/* Client -> proxy record reader after the handshake. Keeps the partial
 * header and the rest of the current record across calls, so records may be
 * split anywhere. */
typedef struct {
    uint8_t hdr[FAKETLS_HEADER_LEN];
    uint8_t hdr_have;     /* header bytes collected for the current record */
    uint8_t type;         /* current record's type once hdr_have == 5 */
    uint16_t remaining;   /* payload bytes of the current record still due */
    /* A whole application-data record has been read. In TLS terms the
     * client's first one carries its Finished: a Go server counts the
     * handshake complete (and its Close sends close_notify) from then on. */
    uint8_t finished;
    uint8_t refused;      /* the current record fails once it is complete */
} faketls_rx;

void faketls_rx_init(faketls_rx *st);

/* Unwraps buf[0..len) in place: the payload of application-data (0x17)
 * records is moved to the front of buf and its length stored in *out_len;
 * the client's ChangeCipherSpec (14 03 03 00 01 01) is dropped, as mtg and
 * Go do. Returns 0, or -1 on a record Go's TLS 1.3 stack refuses with a
 * fatal alert (the stream is then unusable; faketls.c says which): a
 * version other than 03 03 (*reason = FAKETLS_R_BAD_VERSION) or a length
 * over 16640 (FAKETLS_R_BAD_RECORD_LEN), both at the header; another type,
 * or a ChangeCipherSpec other than 01 (FAKETLS_R_BAD_TYPE), once the
 * record is complete. On -1, *out_len still holds the payload recovered
 * before the refused record. reason may be NULL. */
int faketls_rx_unwrap(faketls_rx *st, uint8_t *buf, size_t len,
                      size_t *out_len, faketls_reason *reason);

/* A run of application-data payload: buf[off..off+len). */
typedef struct {
    size_t off, len;
} faketls_span;

/* The same parse as faketls_rx_unwrap without moving a byte: continues st's
 * record stream over buf[0..len) and lists the application-data payload
 * runs in order in spans[0..*count), at most max of them (max >= 1). *used
 * is how much of buf was parsed: len, unless the spans ran out first (then
 * call again with buf + *used). Returns 0, or -1 on a refused record, as
 * faketls_rx_unwrap (the runs before it are listed). reason may be NULL. */
int faketls_rx_spans(faketls_rx *st, const uint8_t *buf, size_t len, faketls_span *spans,
                     size_t max, size_t *count, size_t *used, faketls_reason *reason);

/* Writes the header 17 03 03 BE16(payload_len) of a proxy -> client
 * application-data record. payload_len must be <= FAKETLS_TX_MAX_PAYLOAD. */
void faketls_tx_header(uint8_t hdr[FAKETLS_HEADER_LEN], size_t payload_len);

#endif
