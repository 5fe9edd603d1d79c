/* cli_check: `check-config`, the one validator of a configuration made of
 * layers (the image's defaults, a mounted mtg config, the environment).
 *
 *   tgfront check-config [--domain HOST] [--write OUT] [--get KEY] FILE...
 *
 * Each FILE is read with the strict TOML reader; a key set in a later file
 * replaces every spelling of it in earlier files. The merged document goes
 * through the same config reader as `run` (every key, type and bound), so
 * what passes here is what `run` accepts. On a refusal, one line on stderr
 * names the file and line the refused key came from, and one line on
 * stdout, "key DOTTED.NAME", lets a caller (the image's /init) name its own
 * variable. Exit 0, or 2. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "crypto.h"
#include "toml.h"

#define CHECK_MAX_FILES 8
#define CHECK_MAX_ENTRIES 1024
#define CHECK_FILE_MAX (1024 * 1024)

typedef struct {
    const toml_entry *e;
    const char *file;
    int dropped;
    int out_line;           /* line in the merged text */
} layer_entry;

typedef struct {
    toml_doc *docs[CHECK_MAX_FILES];
    char *texts[CHECK_MAX_FILES];
    size_t text_lens[CHECK_MAX_FILES];
    size_t ndocs;
    layer_entry ents[CHECK_MAX_ENTRIES];
    size_t nents;
    char *out;              /* merged text */
    size_t out_len, out_cap;
} merge_state;

/* Spellings that set the same thing (config.c's aliases and the two
 * [domain-fronting] address keys): a later file's one replaces them all. */
static const char *const same_key[][3] = {
    { "domain-fronting.host", "domain-fronting.ip", ".domain-fronting-ip" },
    { "domain-fronting.port", ".domain-fronting-port", NULL },
    { "domain-fronting.proxy-protocol", ".domain-fronting-proxy-protocol", NULL },
    { "network.dns", "network.doh-ip", NULL },
};

static void dotted(const toml_entry *e, char *out, size_t cap)
{
    snprintf(out, cap, "%s.%s", e->table, e->key);
}

static int same_group(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return 1;
    for (size_t g = 0; g < sizeof same_key / sizeof same_key[0]; g++) {
        int ia = 0, ib = 0;
        for (size_t k = 0; k < 3 && same_key[g][k]; k++) {
            ia |= strcmp(a, same_key[g][k]) == 0;
            ib |= strcmp(b, same_key[g][k]) == 0;
        }
        if (ia && ib)
            return 1;
    }
    return 0;
}

static int read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tgfront: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CHECK_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf != NULL && n <= CHECK_FILE_MAX &&
           ((r = read(fd, buf + n, CHECK_FILE_MAX + 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        n += r > 0 ? (size_t)r : 0;
    close(fd);
    if (buf == NULL || r < 0 || n > CHECK_FILE_MAX) {
        fprintf(stderr, "tgfront: %s: cannot read (or larger than 1 MiB)\n", path);
        free(buf);
        return -1;
    }
    *text = buf;
    *len = n;
    return 0;
}

/* Appends printf output to the merged text. 0 or -1 (out of memory). */
__attribute__((format(printf, 2, 3)))
static int out_printf(merge_state *m, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = m->out_cap - m->out_len;
        va_start(ap, fmt);
        int n = vsnprintf(m->out ? m->out + m->out_len : NULL, m->out ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (m->out && (size_t)n < room) {
            m->out_len += (size_t)n;
            return 0;
        }
        size_t cap = (m->out_cap + (size_t)n + 1) * 2;
        char *p = realloc(m->out, cap);
        if (p == NULL)
            return -1;
        m->out = p;
        m->out_cap = cap;
    }
}

static int out_string(merge_state *m, const char *s, size_t len)
{
    if (out_printf(m, "\"") < 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int rc;
        if (ch == '"' || ch == '\\')
            rc = out_printf(m, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            rc = out_printf(m, "\\u%04x", ch);
        else
            rc = out_printf(m, "%c", ch);
        if (rc < 0)
            return -1;
    }
    return out_printf(m, "\"");
}

/* The shortest text that reads back as the same double, as TOML spells it. */
static int out_float(merge_state *m, double f)
{
    if (f != f)
        return out_printf(m, "nan");
    if (f > 1e308 * 10 || f < -1e308 * 10)
        return out_printf(m, f > 0 ? "inf" : "-inf");
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    if (strpbrk(buf, ".eE") == NULL)
        strcat(buf, ".0");
    return out_printf(m, "%s", buf);
}

static int out_value(merge_state *m, const toml_value *v)
{
    switch (v->type) {
    case TOML_STRING:
        return out_string(m, v->str, v->str_len);
    case TOML_INTEGER:
        return out_printf(m, "%lld", (long long)v->i);
    case TOML_FLOAT:
        return out_float(m, v->f);
    case TOML_BOOL:
        return out_printf(m, v->b ? "true" : "false");
    case TOML_ARRAY:
        if (out_printf(m, "[") < 0)
            return -1;
        for (size_t i = 0; i < v->count; i++)
            if ((i && out_printf(m, ", ") < 0) || out_value(m, &v->items[i]) < 0)
                return -1;
        return out_printf(m, "]");
    }
    return -1;
}

static int bare_key(const char *k)
{
    if (*k == '\0')
        return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '-' || *k == '_'))
            return 0;
    return 1;
}

static int out_entry(merge_state *m, layer_entry *le, int *line)
{
    const char *k = le->e->key;
    if ((bare_key(k) ? out_printf(m, "%s = ", k)
                     : (out_string(m, k, strlen(k)) < 0 ? -1 : out_printf(m, " = "))) < 0 ||
        out_value(m, &le->e->value) < 0 || out_printf(m, "\n") < 0)
        return -1;
    le->out_line = (*line)++;
    return 0;
}

/* Whether entry i is the first live one of its table. */
static int first_of_table(const merge_state *m, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (!m->ents[j].dropped && strcmp(m->ents[j].e->table, m->ents[i].e->table) == 0)
            return 0;
    return 1;
}

/* The merged document: top-level keys, then each table in first-seen order,
 * one key per line (so an error's line names one entry). */
static int merge_write(merge_state *m)
{
    int line = 2;
    if (out_printf(m, "# merged by tgfront check-config\n") < 0)
        return -1;
    for (size_t i = 0; i < m->nents; i++)
        if (!m->ents[i].dropped && m->ents[i].e->table[0] == '\0' && out_entry(m, &m->ents[i], &line) < 0)
            return -1;
    for (size_t i = 0; i < m->nents; i++) {
        const char *table = m->ents[i].e->table;
        if (m->ents[i].dropped || table[0] == '\0' || !first_of_table(m, i))
            continue;
        if (out_printf(m, "\n[%s]\n", table) < 0)
            return -1;
        line += 2;
        for (size_t j = i; j < m->nents; j++)
            if (!m->ents[j].dropped && strcmp(m->ents[j].e->table, table) == 0 &&
                out_entry(m, &m->ents[j], &line) < 0)
                return -1;
    }
    return 0;
}

static int merge_add(merge_state *m, const char *path)
{
    if (m->ndocs == CHECK_MAX_FILES) {
        fprintf(stderr, "tgfront: check-config: at most %d files\n", CHECK_MAX_FILES);
        return -1;
    }
    char *text;
    size_t len;
    if (read_file(path, &text, &len) < 0)
        return -1;
    m->texts[m->ndocs] = text;
    m->text_lens[m->ndocs] = len;
    toml_error terr;
    toml_doc *doc = toml_parse(text, len, &terr);
    m->ndocs++;
    if (doc == NULL) {
        fprintf(stderr, "tgfront: %s:%d: %s\n", path, terr.line, terr.msg);
        return -1;
    }
    m->docs[m->ndocs - 1] = doc;
    for (const toml_entry *e = toml_entries(doc); e != NULL; e = e->next) {
        char name[300], other[300];
        dotted(e, name, sizeof name);
        for (size_t j = 0; j < m->nents; j++) {
            dotted(m->ents[j].e, other, sizeof other);
            if (!m->ents[j].dropped && same_group(name, other))
                m->ents[j].dropped = 1;
        }
        if (m->nents == CHECK_MAX_ENTRIES) {
            fprintf(stderr, "tgfront: check-config: more than %d keys\n", CHECK_MAX_ENTRIES);
            return -1;
        }
        m->ents[m->nents++] = (layer_entry){ .e = e, .file = path };
    }
    return 0;
}

static void merge_free(merge_state *m)
{
    for (size_t i = 0; i < m->ndocs; i++) {
        toml_free(m->docs[i]);
        if (m->texts[i]) {
            crypto_wipe(m->texts[i], m->text_lens[i]);   /* secrets */
            free(m->texts[i]);
        }
    }
    if (m->out) {
        crypto_wipe(m->out, m->out_len);
        free(m->out);
    }
}

/* Reports config_load_string's "merged:LINE: message" against the file and
 * line the key came from. */
static void report(const merge_state *m, const char *err)
{
    const char *msg = err;
    long line = 0;
    const char *colon = strchr(err, ':');
    if (colon != NULL) {
        char *end;
        line = strtol(colon + 1, &end, 10);
        if (end != colon + 1 && *end == ':') {
            msg = end + 1;
            while (*msg == ' ')
                msg++;
        }
    }
    char name[300] = "";
    const char *file = NULL;
    int file_line = 0;
    for (size_t i = 0; i < m->nents; i++)
        if (!m->ents[i].dropped && m->ents[i].out_line == line) {
            dotted(m->ents[i].e, name, sizeof name);
            file = m->ents[i].file;
            file_line = m->ents[i].e->line;
        }
    /* Errors about the whole document (a missing key) name the key only. */
    const char *q = strstr(msg, "key '");
    if (file == NULL && q != NULL) {
        q += 5;
        const char *qe = strchr(q, '\'');
        if (qe != NULL && qe - q < (long)sizeof name - 1)
            snprintf(name, sizeof name, "%s%.*s", memchr(q, '.', (size_t)(qe - q)) ? "" : ".",
                     (int)(qe - q), q);
    }
    if (file != NULL)
        fprintf(stderr, "tgfront: %s:%d: %s\n", file, file_line, msg);
    else
        fprintf(stderr, "tgfront: %s\n", msg);
    if (name[0])
        printf("key %s\n", name[0] == '.' ? name + 1 : name);
    fflush(stdout);
}

static int write_out(const merge_state *m, const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "tgfront: %s: cannot create: %s\n", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < m->out_len) {
        ssize_t n = write(fd, m->out + off, m->out_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "tgfront: %s: cannot write: %s\n", tmp, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        fprintf(stderr, "tgfront: %s: cannot write: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* --get KEY: the merged value as TOML spells it, strings without quotes. */
static int print_key(merge_state *m, const char *key)
{
    for (size_t i = m->nents; i-- > 0;) {
        char name[300];
        dotted(m->ents[i].e, name, sizeof name);
        const char *bare = name[0] == '.' ? name + 1 : name;
        if (m->ents[i].dropped || strcmp(bare, key) != 0)
            continue;
        const toml_value *v = &m->ents[i].e->value;
        if (v->type == TOML_STRING) {
            fwrite(v->str, 1, v->str_len, stdout);
            putchar('\n');
            return CLI_EXIT_OK;
        }
        merge_state one = { 0 };
        if (out_value(&one, v) < 0)
            return CLI_EXIT_FAIL;
        printf("%.*s\n", (int)one.out_len, one.out);
        free(one.out);
        return CLI_EXIT_OK;
    }
    return CLI_EXIT_FAIL;
}

int cli_check_config(int argc, char **argv)
{
    const char *domain = NULL, *out_path = NULL, *get = NULL;
    static merge_state m;
    int rc = CLI_EXIT_USAGE, nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("Usage: tgfront check-config [--domain HOST] [--write OUT] [--get KEY] FILE...\n"
                 "Later files' keys replace earlier ones'; the result is checked as `run` would.");
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "--domain") || !strcmp(a, "--write") || !strcmp(a, "--get")) {
            if (i + 1 >= argc)
                return cli_usage_error("check-config: %s needs a value", a);
            const char **slot = a[2] == 'd' ? &domain : a[2] == 'w' ? &out_path : &get;
            *slot = argv[++i];
            continue;
        }
        if (a[0] == '-')
            return cli_usage_error("check-config: unknown flag '%s'", a);
        nfiles++;
    }
    if (nfiles == 0)
        return cli_usage_error("check-config: missing FILE");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--domain") || !strcmp(argv[i], "--write") || !strcmp(argv[i], "--get")) {
            i++;
            continue;
        }
        if (merge_add(&m, argv[i]) < 0)
            goto done;
    }
    if (get != NULL) {
        rc = print_key(&m, get);
        goto done;
    }
    if (merge_write(&m) < 0) {
        fprintf(stderr, "tgfront: check-config: out of memory\n");
        goto done;
    }
    static tgf_config cfg;
    char err[600];
    if (config_load_string(m.out, m.out_len, "merged", &cfg, err, sizeof err) < 0) {
        report(&m, err);
        goto done;
    }
    if (domain != NULL && strcmp(cfg.secret.host, domain) != 0) {
        char want[2 * SECRET_HOST_MAX + 1] = "";
        for (size_t i = 0; domain[i] && i < SECRET_HOST_MAX; i++)
            snprintf(want + 2 * i, 3, "%02x", (unsigned char)domain[i]);
        char key[2 * SECRET_KEY_LEN + 1];
        for (size_t i = 0; i < SECRET_KEY_LEN; i++)
            snprintf(key + 2 * i, 3, "%02x", cfg.secret.key[i]);
        const char *file = "";
        int line = 0;
        for (size_t i = 0; i < m.nents; i++)
            if (!m.ents[i].dropped && !strcmp(m.ents[i].e->table, "") &&
                !strcmp(m.ents[i].e->key, "secret")) {
                file = m.ents[i].file;
                line = m.ents[i].e->line;
            }
        fprintf(stderr, "tgfront: %s:%d: key 'secret' is for '%s', not '%s'; expected ee%s%s "
                "(same key, hostname part = hex('%s'))\n", file, line, cfg.secret.host, domain,
                key, want, domain);
        printf("key secret\n");
        crypto_wipe(key, sizeof key);
        secret_wipe(&cfg.secret);
        goto done;
    }
    secret_wipe(&cfg.secret);
    if (out_path != NULL && write_out(&m, out_path) < 0)
        goto done;
    rc = CLI_EXIT_OK;
done:
    merge_free(&m);
    return rc;
}
