/* web_page: the bridge page Telegram Desktop's hidden WebView loads from
 * https://HOST/?bridge=CAP, and the relay's other fixed HTTP answers (pure).
 *
 * The page implements the WebView's side of the contract (webproxy-facts.md
 * section 2.3): it sets TelegramWebProxy.onmessage, then posts the init
 * message with the #android nonce; every ArrayBuffer from the client (one or
 * more v1 frames) goes to the relay over a same-origin WebSocket opened
 * with the single-use token as its subprotocol; every WebSocket message
 * from the relay is validated and handed to the client one frame per
 * message. Inline script only (CSP nonce), no external resources, no
 * storage; queues bounded; it never throws into the client. */
#ifndef TGF_WEB_PAGE_H
#define TGF_WEB_PAGE_H

#include <stddef.h>

#define WEB_PAGE_MAX 12288        /* the whole response, headers included */
#define WEB_SUBPROTO_PREFIX "tproxy-v1."

/* Writes the complete HTTP/1.1 200 response (headers and body) for host,
 * the carrier's path, the token and a fresh CSP nonce (24 base64url
 * characters) into out. Returns its length, or 0 when cap is too small. */
size_t web_page_render(const char *host, const char *ws_path, const char *token,
                       const char *csp_nonce, char *out, size_t cap);

/* The relay's answer for a request that is not the bridge's: a marker
 * that Caddy's handle_response turns into the site's own answer, so the
 * client gets exactly what the site would have sent. close: add
 * "Connection: close". */
size_t web_page_site(int close, char *out, size_t cap);
/* An authentic capability in a non-canonical request: a local, uncacheable
 * 404 (never the site's, which might cache or log it). */
size_t web_page_not_found(int close, char *out, size_t cap);
/* 400 for a head this listener refuses; the connection closes. */
size_t web_page_bad_request(char *out, size_t cap);
/* 503 over the session limit; the connection closes. */
size_t web_page_busy(char *out, size_t cap);
/* The 101 answer to a WebSocket upgrade. */
size_t web_page_upgrade(const char *accept, const char *proto, size_t proto_len, char *out,
                        size_t cap);

/* The header Caddy's handle_response matches on. */
#define WEB_SITE_MARKER "X-Tgfront-Route"

#endif
