/* Fuzzes secret_parse: any accepted input must format (hex and base64url)
 * and parse back to exactly the same secret. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

static void same_or_die(const tg_secret *a, const tg_secret *b)
{
    if (memcmp(a->key, b->key, SECRET_KEY_LEN) != 0 || a->host_len != b->host_len ||
        memcmp(a->host, b->host, a->host_len + 1) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_secret s, t;
    char text[2 * (1 + SECRET_KEY_LEN + SECRET_HOST_MAX) + 1];

    if (secret_parse((const char *)data, size, &s) != SECRET_OK)
        return 0;
    if (s.host_len == 0 || s.host_len > SECRET_HOST_MAX || strlen(s.host) != s.host_len)
        abort();

    size_t n = secret_format_hex(&s, text, sizeof text);
    if (n == 0 || secret_parse(text, n, &t) != SECRET_OK)
        abort();
    same_or_die(&s, &t);

    n = secret_format_base64url(&s, text, sizeof text);
    if (n == 0 || secret_parse(text, n, &t) != SECRET_OK)
        abort();
    same_or_die(&s, &t);
    return 0;
}
