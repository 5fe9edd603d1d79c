/* The [web] table: defaults, values, and refusals with file:line. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "config.h"
#include "log.h"

#define TOP "secret = \"eed1f7eb92b30576b129fb49069ca45dfc6578616d706c652e636f6d\"\n" \
            "bind-to = \"0.0.0.0:443\"\n"

static int load(const char *text, tgf_config *cfg, char *err, size_t cap)
{
    log_level old = log_get_level();
    log_set_level(LOG_ERROR);
    int rc = config_load_string(text, strlen(text), "t.toml", cfg, err, cap);
    log_set_level(old);
    return rc;
}

TEST(web_config_defaults)
{
    static tgf_config cfg;
    char err[512] = "";
    CHECK_MSG(load(TOP, &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.web.enabled, 0);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&cfg.web.bind_addr;
    CHECK_EQ_INT(a->sin_family, AF_INET);
    CHECK_EQ_INT(ntohs(a->sin_port), 8081);
    CHECK_EQ_INT(ntohl(a->sin_addr.s_addr), 0x7f000001);
    CHECK_STR(cfg.web.host, "");
    CHECK_STR(cfg.web.ws_path, "/api/v1/socket");
    CHECK_EQ_INT(cfg.web.max_sessions, 256);
    CHECK_EQ_INT(cfg.web.max_streams, 64);
    CHECK_EQ_INT(cfg.web.trust_forwarded_for, 1);
}

TEST(web_config_values)
{
    static tgf_config cfg;
    char err[512] = "";
    const char *t = TOP "[web]\nenabled = true\nbind-to = \"[::1]:9000\"\n"
                        "host = \"xn--e1afmkfd.example\"\nsocket-path = \"/a/b_c-1\"\n"
                        "max-sessions = 10\nmax-streams = 5\ntrust-forwarded-for = false\n";
    CHECK_MSG(load(t, &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.web.enabled, 1);
    CHECK_EQ_INT(cfg.web.bind_addr.ss_family, AF_INET6);
    CHECK_STR(cfg.web.host, "xn--e1afmkfd.example");
    CHECK_STR(cfg.web.ws_path, "/a/b_c-1");
    CHECK_EQ_INT(cfg.web.max_sessions, 10);
    CHECK_EQ_INT(cfg.web.max_streams, 5);
    CHECK_EQ_INT(cfg.web.trust_forwarded_for, 0);
}

TEST(web_config_refusals)
{
    static const struct { const char *body; const char *what; } bad[] = {
        { "bind-to = \"0.0.0.0:8081\"", "loopback" },
        { "bind-to = \"192.168.1.1:8081\"", "loopback" },
        { "bind-to = \"localhost:8081\"", "IP:PORT" },
        { "host = \"Proxy.example.com\"", "lower-case" },
        { "host = \"localhost\"", "with a dot" },
        { "host = \"a..b\"", "DNS name" },
        { "host = \"-a.b\"", "DNS name" },
        { "host = \"a-.b\"", "DNS name" },
        { "socket-path = \"api\"", "absolute path" },
        { "socket-path = \"/a//b\"", "absolute path" },
        { "socket-path = \"/a/\"", "absolute path" },
        { "socket-path = \"/a?b\"", "absolute path" },
        { "max-streams = 2000", "between" },
        { "max-sessions = 70000", "between" },
        { "enabled = 1", "boolean" },
        { "nonsense = 1", "nonsense" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        static tgf_config cfg;
        char text[512], err[512] = "";
        snprintf(text, sizeof text, TOP "[web]\n%s\n", bad[i].body);
        int rc = load(text, &cfg, err, sizeof err);
        CHECK_MSG(rc != 0 && strncmp(err, "t.toml:4:", 9) == 0 && strstr(err, bad[i].what),
                  "case %zu (%s): rc %d, error '%s'", i, bad[i].body, rc, err);
    }
}
