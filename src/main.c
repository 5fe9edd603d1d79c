/* main: the subcommand table (mtg's names and shapes). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crypto.h"

static const char usage_text[] =
    "Usage: tgfront COMMAND [ARGS]\n"
    "\n"
    "A FakeTLS MTProto proxy for Telegram that fronts everything else to a real\n"
    "web server (mtg v2 compatible configuration).\n"
    "\n"
    "Commands:\n"
    "  run CONFIG [--user USER]        run the proxy with an mtg TOML config\n"
    "  simple-run BIND SECRET [FLAGS]  run without a config file (see simple-run --help)\n"
    "  generate-secret [--hex] HOST    print a new FakeTLS secret for HOST\n"
    "  access CONFIG [--ipv4 IP] [--ipv6 IP] [--port N] [--hex]\n"
    "                                  print tg:// and t.me links as JSON\n"
    "  doctor CONFIG                   check the config, DCs and the fronting target\n"
    "  healthcheck HOST:PORT...        exit 0 if every address accepts TCP\n"
    "  check-config [--domain HOST] [--write OUT] FILE...\n"
    "                                  merge config layers and check them as run would\n"
    "  links CONFIG [--port N] [--no-qr]\n"
    "                                  print the proxy links and a QR code\n"
    "  version                         print the version\n"
    "  help                            print this text\n";

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("missing command");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "-v") || !strcmp(cmd, "--version")) {
        printf("tgfront %s (AES: %s)\n", TGFRONT_VERSION, crypto_aes_impl());
        return CLI_EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {
        { "run", cli_run },
        { "simple-run", cli_simple_run },
        { "generate-secret", cli_generate_secret },
        { "access", cli_access },
        { "doctor", cli_doctor },
        { "healthcheck", cli_healthcheck },
        { "check-config", cli_check_config },
        { "links", cli_links },
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    return cli_usage_error("unknown command '%s'", cmd);
}
