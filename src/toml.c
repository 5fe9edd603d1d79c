/* toml: strict reader for the TOML subset in toml.h. A recursive-descent
 * parser over one buffer; every string, entry and array lives in an arena
 * owned by the document so toml_free releases it all. */
#include "toml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 16384
#define KEY_MAX 512        /* bytes of a full dotted key path */
#define NUMBER_MAX 80      /* bytes of a number token */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk;

/* How a dotted name came to exist; decides which redefinitions are legal. */
typedef enum {
    NAME_VALUE,      /* key = value */
    NAME_HEADER,     /* [name] */
    NAME_IMPLICIT,   /* parent of a header: [a.b] makes "a" */
    NAME_DOTTED      /* prefix of a dotted key: a.b = 1 makes "a" */
} name_kind;

typedef struct {
    const char *path;
    name_kind kind;
    int line;
} name_def;

struct toml_doc {
    chunk *chunks;
    toml_entry *first, *last;
    toml_table *tfirst, *tlast;
    name_def *names;
    size_t name_count;
    int lines;
};

typedef struct {
    const char *p, *end;
    int line;
    toml_doc *doc;
    toml_error *err;
    const char *table;   /* current [header] path, "" at the top */
} parser;

/* ---- memory ---------------------------------------------------------- */

static void *arena_alloc(toml_doc *doc, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    chunk *c = doc->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *out = (char *)c->data + c->used;
    c->used += n;
    return out;
}

static char *arena_strndup(toml_doc *doc, const char *s, size_t n)
{
    char *out = arena_alloc(doc, n + 1);
    if (out != NULL) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

/* Config values include the proxy secret, so the arena is cleared before
 * it goes back to malloc. volatile keeps the stores from being elided. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void toml_free(toml_doc *doc)
{
    if (doc == NULL)
        return;
    for (chunk *c = doc->chunks; c != NULL;) {
        chunk *next = c->next;
        wipe(c->data, c->used);
        free(c);
        c = next;
    }
    free(doc->names);
    free(doc);
}

/* ---- errors ---------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static int fail(parser *ps, const char *fmt, ...)
{
    va_list ap;
    ps->err->line = ps->line;
    va_start(ap, fmt);
    vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int oom(parser *ps)
{
    return fail(ps, "out of memory");
}

/* Describes the character at p for "unexpected ..." messages. */
static const char *describe(const parser *ps, char *buf, size_t cap)
{
    if (ps->p >= ps->end)
        return "end of file";
    unsigned char c = (unsigned char)*ps->p;
    if (c == '\n' || c == '\r')
        return "end of line";
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

/* ---- lexical helpers ------------------------------------------------- */

static int at_end(const parser *ps) { return ps->p >= ps->end; }
static int peek(const parser *ps) { return at_end(ps) ? -1 : (unsigned char)*ps->p; }
static int peek_at(const parser *ps, size_t k)
{
    return ps->end - ps->p > (ptrdiff_t)k ? (unsigned char)ps->p[k] : -1;
}

static int is_bare_key_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* TOML forbids raw control characters except tab in strings and comments. */
static int is_bad_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static void skip_ws(parser *ps)
{
    while (!at_end(ps) && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

static int skip_comment(parser *ps)
{
    if (peek(ps) != '#')
        return 0;
    while (!at_end(ps) && *ps->p != '\n') {
        if (*ps->p == '\r' && peek_at(ps, 1) == '\n')
            break;
        if (is_bad_control((unsigned char)*ps->p))
            return fail(ps, "control character 0x%02x in comment", (unsigned char)*ps->p);
        ps->p++;
    }
    return 0;
}

/* Consumes one newline (LF or CRLF) if present: 1, none: 0, lone CR: -1. */
static int eat_newline(parser *ps)
{
    if (peek(ps) == '\n') {
        ps->p++;
        ps->line++;
        return 1;
    }
    if (peek(ps) == '\r') {
        if (peek_at(ps, 1) != '\n')
            return fail(ps, "carriage return without a line feed");
        ps->p += 2;
        ps->line++;
        return 1;
    }
    return 0;
}

/* After a header or key/value: optional spaces and comment, then the end
 * of the line or of the file. */
static int expect_eol(parser *ps)
{
    char buf[16];
    skip_ws(ps);
    if (skip_comment(ps) < 0)
        return -1;
    if (at_end(ps))
        return 0;
    int r = eat_newline(ps);
    if (r < 0)
        return -1;
    if (r == 0)
        return fail(ps, "unexpected %s after value (one key = value per line)",
                    describe(ps, buf, sizeof buf));
    return 0;
}

/* Spaces, newlines and comments, as allowed inside arrays. */
static int skip_ws_nl(parser *ps)
{
    for (;;) {
        skip_ws(ps);
        if (skip_comment(ps) < 0)
            return -1;
        int r = eat_newline(ps);
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
    }
}

/* Whole-text checks done once so later code can trust the bytes: valid
 * UTF-8 and no NUL. Also counts lines. */
static int check_text(parser *ps)
{
    const unsigned char *s = (const unsigned char *)ps->p;
    size_t n = (size_t)(ps->end - ps->p);
    int line = 1;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '\n')
            line++;
        if (c == 0) {
            ps->line = line;
            return fail(ps, "NUL byte in file");
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else goto bad;
        if (n - i < len)
            goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        i += len;
        continue;
bad:
        ps->line = line;
        return fail(ps, "invalid UTF-8");
    }
    ps->doc->lines = line;
    return 0;
}

/* ---- strings --------------------------------------------------------- */

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int parse_unicode_escape(parser *ps, size_t digits, char *out, size_t *outlen)
{
    uint32_t cp = 0;
    for (size_t k = 0; k < digits; k++) {
        int c = peek(ps);
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else return fail(ps, "\\%c escape needs %zu hex digits", digits == 4 ? 'u' : 'U', digits);
        cp = cp << 4 | (uint32_t)v;
        ps->p++;
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return fail(ps, "escape U+%04X is not a Unicode scalar value", (unsigned)cp);
    if (cp == 0)
        return fail(ps, "\\u0000 (NUL) is not allowed in strings");
    *outlen = utf8_encode(cp, out);
    return 0;
}

/* Bytes from p (just after the opening quote) up to the closing quote, or
 * up to the end of the line when the string is unterminated (the decoder
 * then reports it). A backslash always consumes the next byte, exactly as
 * the decoder does, so an escaped quote does not end the scan. */
static size_t basic_string_extent(const parser *ps)
{
    const char *s = ps->p;
    while (s < ps->end && *s != '"' && *s != '\n') {
        if (*s == '\\' && s + 1 < ps->end && s[1] != '\n')
            s++;
        s++;
    }
    return (size_t)(s - ps->p);
}

/* Escapes never make the text longer (\uXXXX is 6 bytes in, at most 3
 * out), so the raw extent plus the NUL is enough. Sizing by the string,
 * not the rest of the line, keeps memory linear when one line holds many
 * strings. */
static char *alloc_for_string(parser *ps)
{
    return arena_alloc(ps->doc, basic_string_extent(ps) + 1);
}

/* p at the opening quote. */
static int parse_basic_string(parser *ps, const char **out, size_t *out_len)
{
    int line = ps->line;
    ps->p++;
    if (peek(ps) == '"' && peek_at(ps, 1) == '"')
        return fail(ps, "multi-line strings (\"\"\") are not supported");
    char *buf = alloc_for_string(ps);
    if (buf == NULL)
        return oom(ps);
    size_t n = 0;
    for (;;) {
        int c = peek(ps);
        if (c < 0 || c == '\n' || (c == '\r' && peek_at(ps, 1) == '\n')) {
            ps->line = line;
            return fail(ps, "unterminated string");
        }
        if (c == '"') {
            ps->p++;
            break;
        }
        if (is_bad_control((unsigned char)c))
            return fail(ps, "control character 0x%02x in string (use an escape)", c);
        if (c != '\\') {
            buf[n++] = (char)c;
            ps->p++;
            continue;
        }
        ps->p++;
        int e = peek(ps);
        if (e < 0 || e == '\n' || e == '\r') {
            ps->line = line;
            return fail(ps, "unterminated string");
        }
        ps->p++;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case 'n': buf[n++] = '\n'; break;
        case 't': buf[n++] = '\t'; break;
        case 'r': buf[n++] = '\r'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'u':
        case 'U': {
            size_t k = 0;
            if (parse_unicode_escape(ps, e == 'u' ? 4 : 8, buf + n, &k) < 0)
                return -1;
            n += k;
            break;
        }
        default:
            ps->p--;
            if (e >= 0x20 && e < 0x7f)
                return fail(ps, "invalid escape '\\%c' in string", e);
            return fail(ps, "invalid escape in string");
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int parse_literal_string(parser *ps, const char **out, size_t *out_len)
{
    ps->p++;
    if (peek(ps) == '\'' && peek_at(ps, 1) == '\'')
        return fail(ps, "multi-line strings (''') are not supported");
    const char *start = ps->p;
    for (;;) {
        int c = peek(ps);
        if (c < 0 || c == '\n' || (c == '\r' && peek_at(ps, 1) == '\n'))
            return fail(ps, "unterminated string");
        if (c == '\'')
            break;
        if (is_bad_control((unsigned char)c))
            return fail(ps, "control character 0x%02x in string", c);
        ps->p++;
    }
    size_t n = (size_t)(ps->p - start);
    ps->p++;
    char *buf = arena_strndup(ps->doc, start, n);
    if (buf == NULL)
        return oom(ps);
    *out = buf;
    *out_len = n;
    return 0;
}

/* ---- keys ------------------------------------------------------------ */

static int append_component(parser *ps, char *path, size_t *len, const char *s, size_t n)
{
    if (*len + (*len ? 1 : 0) + n >= KEY_MAX)
        return fail(ps, "key is too long (max %d bytes)", KEY_MAX - 1);
    if (*len)
        path[(*len)++] = '.';
    memcpy(path + *len, s, n);
    *len += n;
    path[*len] = '\0';
    return 0;
}

/* Reads a possibly dotted key into path (components joined with '.').
 * Quoted components may not contain '.', so the joined form is unambiguous. */
static int parse_key(parser *ps, char *path, size_t *plen)
{
    char buf[16];
    *plen = 0;
    path[0] = '\0';
    for (;;) {
        int c = peek(ps);
        if (c == '"' || c == '\'') {
            const char *s;
            size_t n;
            if ((c == '"' ? parse_basic_string(ps, &s, &n) : parse_literal_string(ps, &s, &n)) < 0)
                return -1;
            if (n == 0)
                return fail(ps, "empty quoted key");
            for (size_t k = 0; k < n; k++) {
                if (s[k] == '.')
                    return fail(ps, "quoted keys containing '.' are not supported");
                if (is_bad_control((unsigned char)s[k]) || s[k] == '\t')
                    return fail(ps, "control character in key");
            }
            if (append_component(ps, path, plen, s, n) < 0)
                return -1;
        } else if (c >= 0 && is_bare_key_char(c)) {
            const char *start = ps->p;
            while (!at_end(ps) && is_bare_key_char((unsigned char)*ps->p))
                ps->p++;
            if (append_component(ps, path, plen, start, (size_t)(ps->p - start)) < 0)
                return -1;
        } else {
            return fail(ps, "expected a key, found %s", describe(ps, buf, sizeof buf));
        }
        skip_ws(ps);
        if (peek(ps) != '.')
            return 0;
        ps->p++;
        skip_ws(ps);
    }
}

/* ---- names (duplicate detection) ------------------------------------ */

static name_def *find_name(toml_doc *doc, const char *path, size_t len)
{
    for (size_t i = 0; i < doc->name_count; i++) {
        const char *q = doc->names[i].path;
        if (strncmp(q, path, len) == 0 && q[len] == '\0')
            return &doc->names[i];
    }
    return NULL;
}

static name_def *add_name(parser *ps, const char *path, size_t len, name_kind kind)
{
    toml_doc *doc = ps->doc;
    if (doc->name_count == TOML_MAX_NAMES) {
        fail(ps, "too many keys and tables (max %d)", TOML_MAX_NAMES);
        return NULL;
    }
    if (doc->names == NULL) {
        doc->names = malloc(TOML_MAX_NAMES * sizeof *doc->names);
        if (doc->names == NULL) {
            oom(ps);
            return NULL;
        }
    }
    char *copy = arena_strndup(doc, path, len);
    if (copy == NULL) {
        oom(ps);
        return NULL;
    }
    name_def *n = &doc->names[doc->name_count++];
    n->path = copy;
    n->kind = kind;
    n->line = ps->line;
    return n;
}

/* Every proper prefix of path (from index `from` on, i.e. skipping the
 * prefixes that are the current table itself) must be a table. */
static int define_prefixes(parser *ps, const char *path, size_t from, name_kind kind)
{
    for (size_t i = from; path[i] != '\0'; i++) {
        if (path[i] != '.')
            continue;
        name_def *n = find_name(ps->doc, path, i);
        if (n == NULL) {
            if (add_name(ps, path, i, kind) == NULL)
                return -1;
            continue;
        }
        if (n->kind == NAME_VALUE)
            return fail(ps, "'%.*s' is a value (line %d), not a table", (int)i, path, n->line);
        if (kind == NAME_DOTTED && n->kind == NAME_HEADER)
            return fail(ps, "dotted key extends table [%.*s] defined on line %d; "
                        "put the key under that header", (int)i, path, n->line);
    }
    return 0;
}

static int define_header(parser *ps, const char *path, size_t len)
{
    if (define_prefixes(ps, path, 0, NAME_IMPLICIT) < 0)
        return -1;
    name_def *n = find_name(ps->doc, path, len);
    if (n == NULL)
        return add_name(ps, path, len, NAME_HEADER) ? 0 : -1;
    switch (n->kind) {
    case NAME_HEADER:
        return fail(ps, "duplicate table [%s] (first defined on line %d)", path, n->line);
    case NAME_VALUE:
        return fail(ps, "table [%s] redefines the key set on line %d", path, n->line);
    case NAME_DOTTED:
        return fail(ps, "table [%s] was already defined by dotted keys on line %d", path, n->line);
    case NAME_IMPLICIT:
        n->kind = NAME_HEADER;
        n->line = ps->line;
        return 0;
    }
    return 0;
}

static int define_key(parser *ps, const char *full, size_t len, size_t table_len)
{
    if (define_prefixes(ps, full, table_len ? table_len + 1 : 0, NAME_DOTTED) < 0)
        return -1;
    name_def *n = find_name(ps->doc, full, len);
    if (n == NULL)
        return add_name(ps, full, len, NAME_VALUE) ? 0 : -1;
    if (n->kind == NAME_VALUE)
        return fail(ps, "duplicate key '%s' (first defined on line %d)", full, n->line);
    return fail(ps, "key '%s' redefines the table from line %d", full, n->line);
}

/* ---- values ---------------------------------------------------------- */

static int is_token_char(int c)
{
    return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

static int digit_value(int c, int base)
{
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return -1;
    return v < base ? v : -1;
}

/* Copies a run of digits with TOML underscore rules (each '_' between two
 * digits) into out without the underscores. Returns digits copied, -1 on a
 * misplaced underscore. */
static int copy_digits(const char **s, const char *end, int base, char *out, size_t *n)
{
    int count = 0, prev_digit = 0;
    while (*s < end) {
        int c = (unsigned char)**s;
        if (c == '_') {
            if (!prev_digit || *s + 1 >= end || digit_value((unsigned char)(*s)[1], base) < 0)
                return -1;
            prev_digit = 0;
            (*s)++;
            continue;
        }
        if (digit_value(c, base) < 0)
            break;
        out[(*n)++] = (char)c;
        prev_digit = 1;
        count++;
        (*s)++;
    }
    return count;
}

static int parse_prefixed_int(parser *ps, const char *t, size_t len, toml_value *v)
{
    int base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
    char clean[NUMBER_MAX + 1];
    size_t n = 0;
    const char *s = t + 2, *end = t + len;
    int d = copy_digits(&s, end, base, clean, &n);
    if (d <= 0 || s != end)
        return fail(ps, "invalid integer '%.*s'", (int)len, t);
    clean[n] = '\0';
    errno = 0;
    unsigned long long u = strtoull(clean, NULL, base);
    if (errno == ERANGE || u > INT64_MAX)
        return fail(ps, "integer '%.*s' is out of range", (int)len, t);
    v->type = TOML_INTEGER;
    v->i = (int64_t)u;
    return 0;
}

static int parse_number(parser *ps, const char *t, size_t len, toml_value *v)
{
    if (len > NUMBER_MAX)
        return fail(ps, "number is too long");
    if (len > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b'))
        return parse_prefixed_int(ps, t, len, v);

    char clean[NUMBER_MAX + 1];
    size_t n = 0;
    const char *s = t, *end = t + len;
    if (*s == '+' || *s == '-')
        clean[n++] = *s++;
    const char *int_start = s;
    int d = copy_digits(&s, end, 10, clean, &n);
    if (d <= 0)
        goto bad;
    if (d > 1 && *int_start == '0')
        return fail(ps, "leading zeros are not allowed in '%.*s'", (int)len, t);
    int is_float = 0;
    if (s < end && *s == '.') {
        clean[n++] = *s++;
        if (copy_digits(&s, end, 10, clean, &n) <= 0)
            goto bad;
        is_float = 1;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        clean[n++] = *s++;
        if (s < end && (*s == '+' || *s == '-'))
            clean[n++] = *s++;
        if (copy_digits(&s, end, 10, clean, &n) <= 0)
            goto bad;
        is_float = 1;
    }
    if (s != end)
        goto bad;
    clean[n] = '\0';
    errno = 0;
    if (is_float) {
        double f = strtod(clean, NULL);
        if (errno == ERANGE && (f == HUGE_VAL || f == -HUGE_VAL))
            return fail(ps, "float '%.*s' is out of range", (int)len, t);
        v->type = TOML_FLOAT;
        v->f = f;
        return 0;
    }
    long long i = strtoll(clean, NULL, 10);
    if (errno == ERANGE)
        return fail(ps, "integer '%.*s' is out of range", (int)len, t);
    v->type = TOML_INTEGER;
    v->i = i;
    return 0;
bad:
    return fail(ps, "invalid value '%.*s' (strings need quotes)", (int)len, t);
}

static int looks_like_date(const char *t, size_t len)
{
    if (memchr(t, ':', len) != NULL)
        return 1;
    if (len < 5)
        return 0;
    for (int k = 0; k < 4; k++)
        if (t[k] < '0' || t[k] > '9')
            return 0;
    return t[4] == '-';
}

/* Bare words: booleans, numbers, inf/nan. */
static int parse_token(parser *ps, toml_value *v)
{
    char buf[16];
    const char *t = ps->p;
    while (!at_end(ps) && is_token_char((unsigned char)*ps->p))
        ps->p++;
    size_t len = (size_t)(ps->p - t);
    if (len == 0)
        return fail(ps, "expected a value, found %s", describe(ps, buf, sizeof buf));
#define IS(word) (len == sizeof(word) - 1 && memcmp(t, word, len) == 0)
    if (IS("true") || IS("false")) {
        v->type = TOML_BOOL;
        v->b = IS("true");
        return 0;
    }
    if (IS("inf") || IS("+inf") || IS("-inf")) {
        v->type = TOML_FLOAT;
        v->f = t[0] == '-' ? -HUGE_VAL : HUGE_VAL;
        return 0;
    }
    if (IS("nan") || IS("+nan") || IS("-nan")) {
        v->type = TOML_FLOAT;
        v->f = NAN;
        return 0;
    }
#undef IS
    if (looks_like_date(t, len))
        return fail(ps, "dates and times are not supported");
    return parse_number(ps, t, len, v);
}

static int parse_value(parser *ps, toml_value *v, int in_array);

static int parse_array(parser *ps, toml_value *v)
{
    char buf[16];
    int open_line = ps->line;
    size_t cap = 8, count = 0;
    toml_value *items = arena_alloc(ps->doc, cap * sizeof *items);
    if (items == NULL)
        return oom(ps);
    ps->p++;
    for (;;) {
        if (skip_ws_nl(ps) < 0)
            return -1;
        if (peek(ps) == ']')
            break;
        if (at_end(ps)) {
            ps->line = open_line;
            return fail(ps, "unterminated array");
        }
        if (count == cap) {
            /* The old block stays in the arena: at most doubles the space. */
            toml_value *bigger = arena_alloc(ps->doc, 2 * cap * sizeof *items);
            if (bigger == NULL)
                return oom(ps);
            memcpy(bigger, items, count * sizeof *items);
            items = bigger;
            cap *= 2;
        }
        if (parse_value(ps, &items[count], 1) < 0)
            return -1;
        count++;
        if (skip_ws_nl(ps) < 0)
            return -1;
        if (peek(ps) == ',') {
            ps->p++;
            continue;
        }
        if (peek(ps) == ']')
            break;
        if (at_end(ps)) {
            ps->line = open_line;
            return fail(ps, "unterminated array");
        }
        return fail(ps, "expected ',' or ']' in array, found %s", describe(ps, buf, sizeof buf));
    }
    ps->p++;
    v->type = TOML_ARRAY;
    v->items = items;
    v->count = count;
    return 0;
}

static int parse_value(parser *ps, toml_value *v, int in_array)
{
    memset(v, 0, sizeof *v);
    v->line = ps->line;
    switch (peek(ps)) {
    case '"':
        v->type = TOML_STRING;
        return parse_basic_string(ps, &v->str, &v->str_len);
    case '\'':
        v->type = TOML_STRING;
        return parse_literal_string(ps, &v->str, &v->str_len);
    case '[':
        if (in_array)
            return fail(ps, "nested arrays are not supported");
        return parse_array(ps, v);
    case '{':
        return fail(ps, "inline tables are not supported; use a [table] header");
    case -1:
    case '\n':
    case '\r':
    case '#':
        return fail(ps, "missing value");
    default:
        return parse_token(ps, v);
    }
}

/* ---- lines ----------------------------------------------------------- */

static int parse_header(parser *ps)
{
    char buf[16], path[KEY_MAX];
    size_t len;
    ps->p++;
    if (peek(ps) == '[')
        return fail(ps, "arrays of tables ([[...]]) are not supported");
    skip_ws(ps);
    if (parse_key(ps, path, &len) < 0)
        return -1;
    if (peek(ps) != ']')
        return fail(ps, "expected ']' after table name, found %s", describe(ps, buf, sizeof buf));
    ps->p++;
    if (define_header(ps, path, len) < 0)
        return -1;
    toml_table *t = arena_alloc(ps->doc, sizeof *t);
    char *name = arena_strndup(ps->doc, path, len);
    if (t == NULL || name == NULL)
        return oom(ps);
    t->name = name;
    t->line = ps->line;
    t->next = NULL;
    if (ps->doc->tlast)
        ps->doc->tlast->next = t;
    else
        ps->doc->tfirst = t;
    ps->doc->tlast = t;
    ps->table = name;
    return expect_eol(ps);
}

static int parse_keyval(parser *ps)
{
    char buf[16], key[KEY_MAX], full[2 * KEY_MAX];
    size_t klen;
    int line = ps->line;
    if (parse_key(ps, key, &klen) < 0)
        return -1;
    if (peek(ps) != '=')
        return fail(ps, "expected '=' after key '%s', found %s", key, describe(ps, buf, sizeof buf));
    ps->p++;
    skip_ws(ps);

    size_t tlen = strlen(ps->table);
    int flen = snprintf(full, sizeof full, "%s%s%s", ps->table, tlen ? "." : "", key);
    if (define_key(ps, full, (size_t)flen, tlen) < 0)
        return -1;

    toml_entry *e = arena_alloc(ps->doc, sizeof *e);
    if (e == NULL)
        return oom(ps);
    memset(e, 0, sizeof *e);
    if (parse_value(ps, &e->value, 0) < 0)
        return -1;

    const char *last_dot = strrchr(full, '.');
    size_t table_len = last_dot ? (size_t)(last_dot - full) : 0;
    e->table = arena_strndup(ps->doc, full, table_len);
    e->key = arena_strndup(ps->doc, last_dot ? last_dot + 1 : full,
                           strlen(last_dot ? last_dot + 1 : full));
    if (e->table == NULL || e->key == NULL)
        return oom(ps);
    e->line = line;
    if (ps->doc->last)
        ps->doc->last->next = e;
    else
        ps->doc->first = e;
    ps->doc->last = e;
    return expect_eol(ps);
}

static int parse_document(parser *ps)
{
    for (;;) {
        skip_ws(ps);
        if (skip_comment(ps) < 0)
            return -1;
        if (at_end(ps))
            return 0;
        int r = eat_newline(ps);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if ((peek(ps) == '[' ? parse_header(ps) : parse_keyval(ps)) < 0)
            return -1;
    }
}

toml_doc *toml_parse(const char *text, size_t len, toml_error *err)
{
    toml_error dummy;
    if (err == NULL)
        err = &dummy;
    err->line = 0;
    err->msg[0] = '\0';
    toml_doc *doc = calloc(1, sizeof *doc);
    if (doc == NULL) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    if (text == NULL)
        text = "";
    parser ps = { text, text + len, 1, doc, err, "" };
    if (check_text(&ps) < 0 || parse_document(&ps) < 0) {
        toml_free(doc);
        return NULL;
    }
    return doc;
}

const toml_entry *toml_entries(const toml_doc *doc) { return doc->first; }
const toml_table *toml_tables(const toml_doc *doc) { return doc->tfirst; }
int toml_line_count(const toml_doc *doc) { return doc->lines; }

size_t toml_memory_used(const toml_doc *doc)
{
    size_t total = sizeof *doc;
    for (const chunk *c = doc->chunks; c != NULL; c = c->next)
        total += sizeof *c + c->cap;
    if (doc->names != NULL)
        total += TOML_MAX_NAMES * sizeof *doc->names;
    return total;
}
