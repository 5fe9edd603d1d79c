/* config: `workers` (tgfront's own key; mtg has none): 0 or omitted means
 * one event loop per CPU, 1..CONFIG_WORKERS_MAX a fixed number. */
#include "unit.h"

#include "config.h"
#include "workers.h"

#include <sched.h>

#define SECRET_HEX "eed1f7eb92b30576b129fb49069ca45dfc6578616d706c652e636f6d"  /* example.com */
#define TOP "secret = \"" SECRET_HEX "\"\nbind-to = \"0.0.0.0:443\"\n"

static int load(const char *text, tgf_config *cfg, char *err, size_t cap)
{
    return config_load_string(text, strlen(text), "t.toml", cfg, err, cap);
}

static size_t cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? (size_t)CPU_COUNT(&set) : 1;
}

TEST(config_workers_default_is_cpu_count)
{
    static tgf_config cfg;
    char err[512] = "";
    CHECK_MSG(load(TOP, &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.workers, 0);
    CHECK_EQ_INT(workers_count(&cfg), cpus());
    CHECK_MSG(load(TOP "workers = 0\n", &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(workers_count(&cfg), cpus());
}

TEST(config_workers_fixed)
{
    static tgf_config cfg;
    char err[512] = "";
    CHECK_MSG(load(TOP "workers = 1\n", &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(cfg.workers, 1);
    CHECK_EQ_INT(workers_count(&cfg), 1);
    CHECK_MSG(load(TOP "workers = 256\n", &cfg, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(workers_count(&cfg), 256);
    CHECK_EQ_INT(config_set(&cfg, "workers", "3", "flag", err, sizeof err), 0);
    CHECK_EQ_INT(workers_count(&cfg), 3);
}

TEST(config_workers_bounds)
{
    static tgf_config cfg;
    char err[512] = "";
    CHECK(load(TOP "workers = 257\n", &cfg, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "t.toml:3") && strstr(err, "between 0 and 256"), "%s", err);
    CHECK(load(TOP "workers = -1\n", &cfg, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "between 0 and 256"), "%s", err);
    CHECK(load(TOP "workers = \"2\"\n", &cfg, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "must be an integer"), "%s", err);
    CHECK(load(TOP "[network]\nworkers = 2\n", &cfg, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "'workers' belongs at the top"), "%s", err);
}
