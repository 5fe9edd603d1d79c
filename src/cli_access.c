/* cli_access: `generate-secret` and `access` (links as mtg prints them). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "links.h"
#include "crypto.h"
#include "netutil.h"

int cli_generate_secret(int argc, char **argv)
{
    int hex = 0;
    const char *host = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hex") || !strcmp(argv[i], "-x"))
            hex = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("Usage: tgfront generate-secret [--hex] HOSTNAME");
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-')
            return cli_usage_error("generate-secret: unknown flag '%s'", argv[i]);
        else if (host)
            return cli_usage_error("generate-secret: one HOSTNAME expected");
        else
            host = argv[i];
    }
    if (!host)
        return cli_usage_error("generate-secret: missing HOSTNAME");
    tg_secret s;
    if (secret_generate(host, &s) < 0)
        return cli_usage_error("generate-secret: '%s' is not a usable hostname (1..%d printable "
                               "ASCII characters)", host, SECRET_HOST_MAX);
    char out[2 * (1 + SECRET_KEY_LEN + SECRET_HOST_MAX) + 8];
    size_t n = hex ? secret_format_hex(&s, out, sizeof out)
                   : secret_format_base64url(&s, out, sizeof out);
    secret_wipe(&s);
    if (n == 0)
        return CLI_EXIT_FAIL;
    puts(out);
    return CLI_EXIT_OK;
}

/* JSON string body: the hostname may hold '"' or '\\' (any printable ASCII). */
static void json_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '"' || *in == '\\')
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/* One link object "key": {...} at indentation in (spaces). */
static void print_links(const char *in, const char *key, const char *field, const char *server,
                        unsigned port, const char *secret, int last)
{
    char q[1024], tg[1200], tme[1200], enc[3700];
    char srv_enc[600];
    links_url_encode(server, srv_enc, sizeof srv_enc);
    /* Query keys sorted, as mtg does. */
    snprintf(q, sizeof q, "port=%u&secret=%s&server=%s", port, secret, srv_enc);
    snprintf(tg, sizeof tg, "tg://proxy?%s", q);
    snprintf(tme, sizeof tme, "https://t.me/proxy?%s", q);
    char server_json[600];
    json_escape(server, server_json, sizeof server_json);
    printf("%s  \"%s\": {\n", in, key);
    printf("%s    \"%s\": \"%s\",\n", in, field, server_json);
    printf("%s    \"port\": %u,\n", in, port);
    printf("%s    \"tg_url\": \"%s\",\n", in, tg);
    links_url_encode(tg, enc, sizeof enc);
    printf("%s    \"tg_qrcode\": \"https://api.qrserver.com/v1/create-qr-code?data=%s&format=svg&qzone=4\",\n", in, enc);
    printf("%s    \"tme_url\": \"%s\",\n", in, tme);
    links_url_encode(tme, enc, sizeof enc);
    printf("%s    \"tme_qrcode\": \"https://api.qrserver.com/v1/create-qr-code?data=%s&format=svg&qzone=4\"\n", in, enc);
    printf("%s  }%s\n", in, last ? "" : ",");
}

/* The WEB proxy link (tg://webproxy) of one key (links.h). */
static void print_web_links(const tgf_config *cfg, const uint8_t *key, const char *in)
{
    char host[CONFIG_HOST_MAX + 1], sec[LINKS_WEB_SECRET_LEN + 1], q[1024];
    links_web(cfg, key, host, sizeof host, sec, q, sizeof q);
    char host_json[600];
    json_escape(host, host_json, sizeof host_json);
    printf("%s  \"web\": {\n", in);
    printf("%s    \"host\": \"%s\",\n", in, host_json);
    printf("%s    \"secret\": \"%s\",\n", in, sec);
    printf("%s    \"tg_url\": \"tg://webproxy?%s\",\n", in, q);
    printf("%s    \"tme_url\": \"https://t.me/webproxy?%s\"\n", in, q);
    printf("%s  },\n", in);
    crypto_wipe(sec, sizeof sec);
    crypto_wipe(q, sizeof q);
}

static int parse_ip(const char *text, int family, char *out, size_t cap)
{
    unsigned char buf[16];
    if (inet_pton(family, text, buf) != 1)
        return -1;
    return inet_ntop(family, buf, out, (socklen_t)cap) ? 0 : -1;
}

/* The link objects and the "secret" object of secret i, at indentation in;
 * the caller closes the last line. */
static void print_secret(const tgf_config *cfg, size_t i, const char *in, unsigned port,
                         const char *v4, const char *v6, int hex)
{
    tg_secret s = cfg->secret;
    memcpy(s.key, cfg->secret_keys[i], SECRET_KEY_LEN);
    char shex[2 * (1 + SECRET_KEY_LEN + SECRET_HOST_MAX) + 8], sb64[sizeof shex];
    secret_format_hex(&s, shex, sizeof shex);
    secret_format_base64url(&s, sb64, sizeof sb64);
    secret_wipe(&s);
    const char *link_secret = hex ? shex : sb64;
    /* No address from flags or config: the secret's hostname is the server
     * (never an IP-echo service). */
    if (v4[0])
        print_links(in, "ipv4", "ip", v4, port, link_secret, 0);
    if (v6[0])
        print_links(in, "ipv6", "ip", v6, port, link_secret, 0);
    if (!v4[0] && !v6[0])
        print_links(in, "hostname", "host", cfg->secret.host, port, link_secret, 0);
    if (cfg->web.enabled)
        print_web_links(cfg, cfg->secret_keys[i], in);
    printf("%s  \"secret\": {\n%s    \"hex\": \"%s\",\n%s    \"base64\": \"%s\"\n%s  }", in, in,
           shex, in, sb64, in);
    crypto_wipe(shex, sizeof shex);
    crypto_wipe(sb64, sizeof sb64);
}

int cli_access(int argc, char **argv)
{
    const char *path = NULL, *ip4 = NULL, *ip6 = NULL, *port_text = NULL;
    int hex = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("Usage: tgfront access CONFIG [-i|--ipv4 IP] [-I|--ipv6 IP] [-p|--port N] [-x|--hex]");
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "-x") || !strcmp(a, "--hex")) {
            hex = 1;
        } else if (!strcmp(a, "-i") || !strcmp(a, "--ipv4") || !strcmp(a, "-I") ||
                   !strcmp(a, "--ipv6") || !strcmp(a, "-p") || !strcmp(a, "--port")) {
            if (!has_value)
                return cli_usage_error("access: %s needs a value", a);
            const char *v = argv[++i];
            if (a[1] == 'i' || !strcmp(a, "--ipv4"))
                ip4 = v;
            else if (a[1] == 'I' || !strcmp(a, "--ipv6"))
                ip6 = v;
            else
                port_text = v;
        } else if (a[0] == '-') {
            return cli_usage_error("access: unknown flag '%s'", a);
        } else if (path) {
            return cli_usage_error("access: one CONFIG path expected");
        } else {
            path = a;
        }
    }
    if (!path)
        return cli_usage_error("access: missing CONFIG path");
    static tgf_config cfg;
    if (cli_load_config(path, &cfg) < 0)
        return CLI_EXIT_USAGE;

    unsigned port;
    if (links_port(&cfg, port_text, &port) < 0)
        return cli_usage_error("access: --port must be 1..65535, got '%s'", port_text);
    char v4[INET_ADDRSTRLEN] = "", v6[INET6_ADDRSTRLEN] = "";
    if (ip4 && parse_ip(ip4, AF_INET, v4, sizeof v4) < 0)
        return cli_usage_error("access: --ipv4 must be an IPv4 address, got '%s'", ip4);
    if (ip6 && parse_ip(ip6, AF_INET6, v6, sizeof v6) < 0)
        return cli_usage_error("access: --ipv6 must be an IPv6 address, got '%s'", ip6);
    if (!ip4 && cfg.have_public_ipv4)
        net_format_ip((const struct sockaddr *)&cfg.public_ipv4, v4, sizeof v4);
    if (!ip6 && cfg.have_public_ipv6)
        net_format_ip((const struct sockaddr *)&cfg.public_ipv6, v6, sizeof v6);

    /* mtg's shape for the first secret, then every secret by name. */
    printf("{\n");
    print_secret(&cfg, 0, "", port, v4, v6, hex);
    printf(",\n  \"secrets\": {\n");
    for (size_t i = 0; i < cfg.secret_count; i++) {
        printf("    \"%s\": {\n", cfg.secrets[i].name);
        print_secret(&cfg, i, "    ", port, v4, v6, hex);
        printf("\n    }%s\n", i + 1 < cfg.secret_count ? "," : "");
    }
    printf("  }\n}\n");
    crypto_wipe(cfg.secret_keys, sizeof cfg.secret_keys);
    crypto_wipe(cfg.secret_hmac, sizeof cfg.secret_hmac);
    secret_wipe(&cfg.secret);
    return CLI_EXIT_OK;
}
