/* cli: the subcommands. Each returns the process exit code: 0 success,
 * 1 runtime failure (doctor checks, healthcheck), 2 usage or start-up error. */
#ifndef TGF_CLI_H
#define TGF_CLI_H

#ifndef TGFRONT_VERSION
#define TGFRONT_VERSION "0.1.0"
#endif

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cli_run(int argc, char **argv);
int cli_simple_run(int argc, char **argv);
int cli_generate_secret(int argc, char **argv);
int cli_access(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_healthcheck(int argc, char **argv);
int cli_check_config(int argc, char **argv);   /* cli_check.c */
int cli_links(int argc, char **argv);          /* cli_links.c */

/* Prints "tgfront: <what>" to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads a config file, printing the error line on failure. 0 or -1. */
#include "config.h"
int cli_load_config(const char *path, tgf_config *cfg);

/* What `run` and `simple-run` take besides the config. */
typedef struct {
    const char *user;   /* --user, or NULL */
    int ready_fd;       /* --ready-fd: gets "\n" once listening, then closed; -1 = none */
} cli_run_opts;

/* simple-run's arguments (argv[0] is "simple-run") into cfg and opts: mtg's
 * defaults for simple-run, then every flag through config_set, so flags and
 * file keys share bounds. 0: ready to run; 1: --help printed; -1: a
 * message was printed (exit 2). */
int cli_simple_run_parse(int argc, char **argv, tgf_config *cfg, cli_run_opts *opts);

#endif
