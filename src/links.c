/* links: see links.h. */
#include "links.h"

#include <stdio.h>
#include <stdlib.h>

#include "netutil.h"

void links_url_encode(const char *in, char *out, size_t cap)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < cap; in++) {
        unsigned char ch = (unsigned char)*in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hexd[ch >> 4];
            out[o++] = hexd[ch & 15];
        }
    }
    if (cap)
        out[o] = '\0';
}

void links_web(const tgf_config *cfg, const uint8_t *key, char *host, size_t host_cap,
               char sec[LINKS_WEB_SECRET_LEN + 1], char *query, size_t query_cap)
{
    static const char hexd[] = "0123456789abcdef";
    const char *h = cfg->web.host[0] ? cfg->web.host : cfg->secret.host;
    size_t i = 0;
    for (; h[i] && i + 1 < host_cap; i++)
        host[i] = h[i] >= 'A' && h[i] <= 'Z' ? (char)(h[i] + 32) : h[i];
    host[i] = '\0';
    sec[0] = sec[1] = 'd';
    for (i = 0; i < SECRET_KEY_LEN; i++) {
        sec[2 + 2 * i] = hexd[key[i] >> 4];
        sec[3 + 2 * i] = hexd[key[i] & 15];
    }
    sec[LINKS_WEB_SECRET_LEN] = '\0';
    char server[3 * CONFIG_HOST_MAX + 1];
    links_url_encode(host, server, sizeof server);
    snprintf(query, query_cap, "server=%s&secret=%s", server, sec);
}

int links_port(const tgf_config *cfg, const char *text, unsigned *port)
{
    *port = net_port((const struct sockaddr *)&cfg->bind_addr);
    if (text == NULL)
        return 0;
    char *end;
    unsigned long n = strtoul(text, &end, 10);
    if (*text == '\0' || *end || n == 0 || n > 65535)
        return -1;
    *port = (unsigned)n;
    return 0;
}
