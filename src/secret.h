/* secret: mtg's FakeTLS secret: 0xee || key(16) || hostname.
 * Text forms: hex, unpadded base64url (what mtg prints); standard base64 and
 * padded forms are accepted too. */
#ifndef TGF_SECRET_H
#define TGF_SECRET_H

#include <stddef.h>
#include <stdint.h>

#define SECRET_KEY_LEN 16
#define SECRET_HOST_MAX 255   /* hostname bytes; tdlib allows 182 */

typedef struct {
    uint8_t key[SECRET_KEY_LEN];
    char host[SECRET_HOST_MAX + 1];   /* NUL-terminated */
    size_t host_len;
} tg_secret;

typedef enum {
    SECRET_OK = 0,
    SECRET_ERR_EMPTY,        /* empty string */
    SECRET_ERR_ENCODING,     /* neither hex nor base64 */
    SECRET_ERR_PREFIX,       /* first byte is not 0xee (dd or bare secrets) */
    SECRET_ERR_SHORT,        /* shorter than 1 + 16 bytes */
    SECRET_ERR_ZERO_KEY,     /* key is all zeros */
    SECRET_ERR_NO_HOST,      /* hostname empty */
    SECRET_ERR_HOST_TOO_LONG,
    SECRET_ERR_HOST_CHARS    /* hostname has bytes outside printable ASCII */
} secret_status;

/* Parses text (len bytes, need not be NUL-terminated). */
secret_status secret_parse(const char *text, size_t len, tg_secret *out);
/* Human-readable explanation of a status, for error messages. */
const char *secret_status_str(secret_status st);

/* Formats into out (NUL-terminated). Return the length, or 0 if cap is too small.
 * Hex is lowercase; base64url has no padding. */
size_t secret_format_hex(const tg_secret *s, char *out, size_t cap);
size_t secret_format_base64url(const tg_secret *s, char *out, size_t cap);

/* Draws a random key for host. Returns 0, or -1 (RNG failure or bad host). */
int secret_generate(const char *host, tg_secret *out);

/* Wipes the key. */
void secret_wipe(tg_secret *s);

#endif
