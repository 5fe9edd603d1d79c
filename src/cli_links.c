/* cli_links: `links`, the proxy links for people: tg:// and t.me links
 * (base64url and hex secrets) and a QR code of the tg:// link drawn with
 * text blocks, for a phone to scan from a terminal or a log.
 *
 *   tgfront links CONFIG [--port N] [--no-qr]
 *
 * The QR code comes from Nayuki's QR Code generator (Debian's
 * qr-code-generator source, compiled in). Light modules are drawn as
 * blocks, dark ones as spaces, with the 4-module quiet zone drawn too, as
 * qrencode's UTF8 output does: a terminal or log viewer with a dark
 * background shows it the right way round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "links.h"
#include "crypto.h"
#include "netutil.h"
#include "qrcodegen.h"

#define QR_BORDER 4

/* Light module at (x, y), the quiet zone included. */
static int light(const uint8_t *qr, int size, int x, int y)
{
    x -= QR_BORDER;
    y -= QR_BORDER;
    if (x < 0 || y < 0 || x >= size || y >= size)
        return 1;
    return !qrcodegen_getModule(qr, x, y);
}

/* Prints text as a QR code, two module rows per line. 0 or -1. */
static int print_qr(const char *text)
{
    static uint8_t qr[qrcodegen_BUFFER_LEN_MAX], tmp[qrcodegen_BUFFER_LEN_MAX];
    if (!qrcodegen_encodeText(text, tmp, qr, qrcodegen_Ecc_LOW, qrcodegen_VERSION_MIN,
                              qrcodegen_VERSION_MAX, qrcodegen_Mask_AUTO, true))
        return -1;
    int size = qrcodegen_getSize(qr), full = size + 2 * QR_BORDER;
    for (int y = 0; y < full; y += 2) {
        for (int x = 0; x < full; x++) {
            int top = light(qr, size, x, y), bottom = y + 1 < full ? light(qr, size, x, y + 1) : 0;
            fputs(top && bottom ? "\xe2\x96\x88" : top ? "\xe2\x96\x80" : bottom ? "\xe2\x96\x84" : " ",
                  stdout);
        }
        putchar('\n');
    }
    return 0;
}

/* The WEB proxy links of one key, when [web] is on. */
static void print_web_links(const tgf_config *cfg, const uint8_t *key)
{
    char host[CONFIG_HOST_MAX + 1], sec[LINKS_WEB_SECRET_LEN + 1], q[1024];
    links_web(cfg, key, host, sizeof host, sec, q, sizeof q);
    printf("tg://webproxy?%s\n", q);
    printf("https://t.me/webproxy?%s\n", q);
    crypto_wipe(sec, sizeof sec);
    crypto_wipe(q, sizeof q);
}

/* The four link forms of one secret and, with qr, a QR code of the first. */
static int print_secret_links(const tg_secret *sec, unsigned port, int qr)
{
    char shex[2 * (1 + SECRET_KEY_LEN + SECRET_HOST_MAX) + 8], sb64[sizeof shex];
    secret_format_hex(sec, shex, sizeof shex);
    secret_format_base64url(sec, sb64, sizeof sb64);
    char server[3 * SECRET_HOST_MAX + 1];
    links_url_encode(sec->host, server, sizeof server);

    /* Query keys sorted, as mtg (and `access`) print them. */
    static char tg[sizeof shex + sizeof server + 64];
    snprintf(tg, sizeof tg, "tg://proxy?port=%u&secret=%s&server=%s", port, sb64, server);
    printf("%s\n", tg);
    printf("https://t.me/proxy?port=%u&secret=%s&server=%s\n", port, sb64, server);
    printf("tg://proxy?port=%u&secret=%s&server=%s\n", port, shex, server);
    printf("https://t.me/proxy?port=%u&secret=%s&server=%s\n", port, shex, server);
    int rc = 0;
    if (qr) {
        printf("QR code of %s:\n", tg);
        if (print_qr(tg) < 0) {
            fprintf(stderr, "tgfront: links: the link is too long for a QR code\n");
            rc = -1;
        }
    }
    crypto_wipe(shex, sizeof shex);
    crypto_wipe(sb64, sizeof sb64);
    crypto_wipe(tg, sizeof tg);
    return rc;
}

int cli_links(int argc, char **argv)
{
    const char *path = NULL, *port_text = NULL;
    int qr = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("Usage: tgfront links CONFIG [--port N] [--no-qr]");
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--no-qr")) {
            qr = 0;
        } else if (!strcmp(a, "--port") || !strcmp(a, "-p")) {
            if (i + 1 >= argc)
                return cli_usage_error("links: %s needs a value", a);
            port_text = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error("links: unknown flag '%s'", a);
        } else if (path) {
            return cli_usage_error("links: one CONFIG path expected");
        } else {
            path = a;
        }
    }
    if (!path)
        return cli_usage_error("links: missing CONFIG path");
    static tgf_config cfg;
    if (cli_load_config(path, &cfg) < 0)
        return CLI_EXIT_USAGE;
    unsigned port;
    if (links_port(&cfg, port_text, &port) < 0)
        return cli_usage_error("links: --port must be 1..65535, got '%s'", port_text);
    int rc = CLI_EXIT_OK;
    /* Every secret: mtg's single one (named default) first, then the
     * [secrets] table in file order. A name heads its links when there is
     * more than one, so the operator knows whose link is whose. */
    for (size_t i = 0; i < cfg.secret_count; i++) {
        tg_secret s = cfg.secret;
        memcpy(s.key, cfg.secret_keys[i], SECRET_KEY_LEN);
        if (cfg.secret_count > 1)
            printf("secret %s:\n", cfg.secrets[i].name);
        if (print_secret_links(&s, port, qr) < 0)
            rc = CLI_EXIT_FAIL;
        /* After the FakeTLS links and their QR code: those are what every
         * client takes; the WEB link only Telegram Desktop 7.1 and later. */
        if (cfg.web.enabled)
            print_web_links(&cfg, cfg.secret_keys[i]);
        secret_wipe(&s);
    }
    secret_wipe(&cfg.secret);
    crypto_wipe(cfg.secret_keys, sizeof cfg.secret_keys);
    fflush(stdout);
    return rc;
}
