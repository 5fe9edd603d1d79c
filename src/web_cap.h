/* web_cap: the WEB proxy's credentials (pure but for the RNG).
 *
 * The bridge capability is what Telegram Desktop derives from the link
 * (ComputeWebProxyBridgeCapability): base64url_nopad(HMAC-SHA256(key = the
 * secret bytes as the link spells them, msg = "tdesktop-web-proxy-bridge-v1\n"
 * + host)), 43 characters. A link's secret is either the 16 key bytes
 * (plain) or 0xdd + the key (padded intermediate), so each configured key
 * has two capabilities; a request is matched against all of them in
 * constant time. */
#ifndef TGF_WEB_CAP_H
#define TGF_WEB_CAP_H

#include <stddef.h>
#include <stdint.h>

#define WEB_CAP_LEN 43      /* base64url of 32 bytes, no padding */
#define WEB_TOKEN_LEN 43

/* Base64 of in[0..len) into out (NUL-terminated): url = the URL alphabet,
 * pad = '=' padding. Returns the length, or 0 when cap is too small. */
size_t web_b64_encode(const uint8_t *in, size_t len, int url, int pad, char *out, size_t cap);
/* Decodes standard base64 with its padding. 0, or -1 when malformed. */
int web_b64_decode_std(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* 1 when s is 43 characters of canonical unpadded base64url of 32 bytes
 * (the last character's two unused low bits zero). */
int web_cap_canonical(const char *s, size_t len);

/* The capability for secret bytes sec[0..sec_len) (16, or 17 with the
 * leading 0xdd) and host (its ACE, lower-case form), NUL-terminated. */
void web_cap_compute(const uint8_t *sec, size_t sec_len, const char *host,
                     char out[WEB_CAP_LEN + 1]);

typedef enum { WEB_CAP_PLAIN = 0, WEB_CAP_PADDED = 1 } web_cap_kind;

typedef struct {
    char cap[WEB_CAP_LEN + 1];
    uint8_t key[16];
    web_cap_kind kind;
} web_cap_entry;

/* Finds the entry whose capability equals s[0..len): every entry is
 * compared, each in constant time, whatever matches. Returns its index or
 * -1. */
int web_cap_match(const web_cap_entry *e, size_t n, const char *s, size_t len);

/* Short-lived single-use carrier tokens: minted with each bridge page,
 * presented once in Sec-WebSocket-Protocol. A fixed table: when full, the
 * oldest token gives way. */
#define WEB_TOKENS_MAX 1024
#define WEB_TOKEN_TTL_MS 120000

typedef struct {
    char tok[WEB_TOKEN_LEN];
    uint64_t expires_ms;     /* 0 = free */
    int cap_index;           /* the capability the page was served for */
} web_token;

typedef struct {
    web_token t[WEB_TOKENS_MAX];
    size_t next;             /* round-robin slot for the next token */
} web_tokens;

void web_tokens_init(web_tokens *s);
/* Mints a token valid until now + WEB_TOKEN_TTL_MS into out
 * (NUL-terminated). Returns 0, or -1 when the RNG fails. */
int web_tokens_mint(web_tokens *s, uint64_t now_ms, int cap_index, char out[WEB_TOKEN_LEN + 1]);
/* Takes the live token equal to s[0..len) out of the store (every slot is
 * compared in constant time). Returns its cap_index, or -1. */
int web_tokens_take(web_tokens *s, uint64_t now_ms, const char *tok, size_t len);

#endif
