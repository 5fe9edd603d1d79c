#include "unit.h"

#include <math.h>
#include <stdlib.h>

#include "toml.h"

static toml_doc *parse(const char *text)
{
    toml_error err;
    toml_doc *d = toml_parse(text, strlen(text), &err);
    if (d == NULL)
        fprintf(stderr, "  (parse error line %d: %s)\n", err.line, err.msg);
    return d;
}

/* Expects a parse error on `line` whose message contains `what`. */
static void expect_error(const char *text, int line, const char *what, int src_line)
{
    toml_error err;
    toml_doc *d = toml_parse(text, strlen(text), &err);
    if (!unit_check(d == NULL, __FILE__, src_line, "parse succeeded, expected an error")) {
        toml_free(d);
        return;
    }
    unit_check(err.line == line && strstr(err.msg, what) != NULL, __FILE__, src_line,
               "got line %d '%s', want line %d containing '%s'", err.line, err.msg, line, what);
}
#define EXPECT_ERROR(text, line, what) expect_error(text, line, what, __LINE__)

static const toml_entry *find(const toml_doc *d, const char *table, const char *key)
{
    for (const toml_entry *e = toml_entries(d); e; e = e->next)
        if (strcmp(e->table, table) == 0 && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

TEST(toml_scalars)
{
    toml_doc *d = parse(
        "# comment\n"
        "a = 1\n"
        "b = -17 # trailing comment\n"
        "c = +1_000_000\n"
        "d = 0x7fffffffffffffff\n"
        "e = 0o17\n"
        "f = 0b101\n"
        "g = 1.5\n"
        "h = 1e-3\n"
        "i = -2.5E+2\n"
        "j = true\n"
        "k = false\n"
        "l = inf\n"
        "m = -9223372036854775808\n"
        "n = 0\n"
        "o = 3_0.0_1\n");
    CHECK(d != NULL);
    if (d == NULL)
        return;
    const toml_entry *e;
    CHECK((e = find(d, "", "a")) && e->value.type == TOML_INTEGER && e->value.i == 1 && e->line == 2);
    CHECK((e = find(d, "", "b")) && e->value.i == -17 && e->line == 3);
    CHECK((e = find(d, "", "c")) && e->value.i == 1000000);
    CHECK((e = find(d, "", "d")) && e->value.i == INT64_MAX);
    CHECK((e = find(d, "", "e")) && e->value.i == 15);
    CHECK((e = find(d, "", "f")) && e->value.i == 5);
    CHECK((e = find(d, "", "g")) && e->value.type == TOML_FLOAT && e->value.f == 1.5);
    CHECK((e = find(d, "", "h")) && e->value.type == TOML_FLOAT && e->value.f > 0.00099999 && e->value.f < 0.00100001);
    CHECK((e = find(d, "", "i")) && e->value.f == -250.0);
    CHECK((e = find(d, "", "j")) && e->value.type == TOML_BOOL && e->value.b == 1);
    CHECK((e = find(d, "", "k")) && e->value.type == TOML_BOOL && e->value.b == 0);
    CHECK((e = find(d, "", "l")) && isinf(e->value.f));
    CHECK((e = find(d, "", "m")) && e->value.i == INT64_MIN);
    CHECK((e = find(d, "", "n")) && e->value.i == 0);
    CHECK((e = find(d, "", "o")) && e->value.f == 30.01);
    CHECK_EQ_INT(toml_line_count(d), 17);
    toml_free(d);
}

TEST(toml_strings_and_escapes)
{
    toml_doc *d = parse(
        "a = \"plain\"\n"
        "b = \"q\\\"uote \\\\ back\\nnl\\ttab\"\n"
        "c = \"\\u00e9\\U0001F600\"\n"
        "d = 'C:\\path\\no\\escapes'\n"
        "e = \"\"\n"
        "f = ''\n"
        "g = \"h\xc3\xa9 # not a comment\"\n");
    CHECK(d != NULL);
    if (d == NULL)
        return;
    const toml_entry *e;
    CHECK((e = find(d, "", "a")) && e->value.type == TOML_STRING);
    CHECK_STR(e ? e->value.str : NULL, "plain");
    CHECK_STR((e = find(d, "", "b")) ? e->value.str : NULL, "q\"uote \\ back\nnl\ttab");
    CHECK_STR((e = find(d, "", "c")) ? e->value.str : NULL, "\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(e && e->value.str_len == 6);
    CHECK_STR((e = find(d, "", "d")) ? e->value.str : NULL, "C:\\path\\no\\escapes");
    CHECK_STR((e = find(d, "", "e")) ? e->value.str : NULL, "");
    CHECK_STR((e = find(d, "", "f")) ? e->value.str : NULL, "");
    CHECK_STR((e = find(d, "", "g")) ? e->value.str : NULL, "h\xc3\xa9 # not a comment");
    toml_free(d);
}

TEST(toml_tables_and_keys)
{
    toml_doc *d = parse(
        "top = 1\n"
        "[network]\n"
        "dns = \"x\"\n"
        "[ network.timeout ]\n"
        "idle = \"5m\"\n"
        "\n"
        "[\"defense\".'anti-replay']\n"
        "enabled = true\n"
        "[stats]\n"
        "prometheus.enabled = true\n"
        "\"quoted key\" = 2\n"
        "[datacenters]\n"
        "2 = [\"1.2.3.4:443\"]\n"
        "-3 = 1\n");
    CHECK(d != NULL);
    if (d == NULL)
        return;
    const toml_entry *e;
    CHECK((e = find(d, "", "top")) && e->line == 1);
    CHECK((e = find(d, "network", "dns")) && e->line == 3);
    CHECK((e = find(d, "network.timeout", "idle")) && e->line == 5);
    CHECK((e = find(d, "defense.anti-replay", "enabled")) && e->line == 8);
    CHECK((e = find(d, "stats.prometheus", "enabled")) && e->line == 10);
    CHECK(find(d, "stats", "quoted key") != NULL);
    CHECK(find(d, "datacenters", "2") != NULL);
    CHECK(find(d, "datacenters", "-3") != NULL);
    const toml_table *t = toml_tables(d);
    CHECK(t && strcmp(t->name, "network") == 0 && t->line == 2);
    t = t ? t->next : NULL;
    CHECK(t && strcmp(t->name, "network.timeout") == 0 && t->line == 4);
    t = t ? t->next : NULL;
    CHECK(t && strcmp(t->name, "defense.anti-replay") == 0 && t->line == 7);
    toml_free(d);
}

TEST(toml_arrays)
{
    toml_doc *d = parse(
        "a = []\n"
        "b = [\"x\", 'y', \"z\",]\n"
        "c = [\n"
        "  \"one\", # first\n"
        "  # a comment line\n"
        "  \"two\",\n"
        "]\n"
        "d = [1, 2, 3]\n"
        "e = [ 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17 ]\n"
        "f = [\r\n\"crlf\"\r\n]\r\n");
    CHECK(d != NULL);
    if (d == NULL)
        return;
    const toml_entry *e;
    CHECK((e = find(d, "", "a")) && e->value.type == TOML_ARRAY && e->value.count == 0);
    CHECK((e = find(d, "", "b")) && e->value.count == 3);
    CHECK(e && strcmp(e->value.items[1].str, "y") == 0 && strcmp(e->value.items[2].str, "z") == 0);
    CHECK((e = find(d, "", "c")) && e->value.count == 2 && e->line == 3);
    CHECK(e && e->value.items[0].line == 4 && e->value.items[1].line == 6);
    CHECK(e && strcmp(e->value.items[1].str, "two") == 0);
    CHECK((e = find(d, "", "d")) && e->value.count == 3 && e->value.items[2].i == 3);
    CHECK((e = find(d, "", "e")) && e->value.count == 17 && e->value.items[16].i == 17);
    CHECK((e = find(d, "", "f")) && e->value.count == 1 && e->line == 10);
    toml_free(d);
}

TEST(toml_errors_with_lines)
{
    EXPECT_ERROR("a = 1\nb = \"open\n", 2, "unterminated string");
    EXPECT_ERROR("a = 'open\n", 1, "unterminated string");
    EXPECT_ERROR("a = \"x\\q\"\n", 1, "invalid escape '\\q'");
    EXPECT_ERROR("a = \"\\u12\"\n", 1, "hex digits");
    EXPECT_ERROR("a = \"\\ud800\"\n", 1, "Unicode scalar");
    EXPECT_ERROR("a = \"\\u0000\"\n", 1, "NUL");
    EXPECT_ERROR("a = 1\na = 2\n", 2, "duplicate key 'a' (first defined on line 1)");
    EXPECT_ERROR("[t]\nx = 1\n[t]\n", 3, "duplicate table [t] (first defined on line 1)");
    EXPECT_ERROR("[t]\nx = 1\n\n[u]\n[t]\n", 5, "duplicate table [t]");
    EXPECT_ERROR("a = 1\n[a.b]\n", 2, "'a' is a value");
    EXPECT_ERROR("a.b = 1\n[a]\n", 2, "dotted keys");
    EXPECT_ERROR("a.b = 1\na.b.c = 2\n", 2, "'a.b' is a value");
    EXPECT_ERROR("[a.b]\nc = 1\n[a]\nb.d = 1\n", 4, "dotted key extends table [a.b]");
    EXPECT_ERROR("[a]\n\"b\" = 1\nb = 2\n", 3, "duplicate key 'a.b'");
    EXPECT_ERROR("a = \n", 1, "missing value");
    EXPECT_ERROR("a\n", 1, "expected '='");
    EXPECT_ERROR("= 1\n", 1, "expected a key");
    EXPECT_ERROR("a = 1 b = 2\n", 1, "one key = value per line");
    EXPECT_ERROR("a = hello\n", 1, "strings need quotes");
    EXPECT_ERROR("a = 01\n", 1, "leading zeros");
    EXPECT_ERROR("a = 1__0\n", 1, "invalid value");
    EXPECT_ERROR("a = _1\n", 1, "invalid value");
    EXPECT_ERROR("a = 1_\n", 1, "invalid value");
    EXPECT_ERROR("a = 1.\n", 1, "invalid value");
    EXPECT_ERROR("a = .5\n", 1, "invalid value");
    EXPECT_ERROR("a = 1e\n", 1, "invalid value");
    EXPECT_ERROR("a = 9223372036854775808\n", 1, "out of range");
    EXPECT_ERROR("a = 0x8000000000000000\n", 1, "out of range");
    EXPECT_ERROR("a = 1e999\n", 1, "out of range");
    EXPECT_ERROR("a = -0x1\n", 1, "invalid value");
    EXPECT_ERROR("a = 1979-05-27\n", 1, "dates");
    EXPECT_ERROR("a = 07:32:00\n", 1, "dates");
    EXPECT_ERROR("a = {x = 1}\n", 1, "inline tables");
    EXPECT_ERROR("[[a]]\n", 1, "arrays of tables");
    EXPECT_ERROR("a = [[1]]\n", 1, "nested arrays");
    EXPECT_ERROR("a = \"\"\"x\"\"\"\n", 1, "multi-line strings");
    EXPECT_ERROR("a = '''x'''\n", 1, "multi-line strings");
    EXPECT_ERROR("a = [1,\n2\n", 1, "unterminated array");
    EXPECT_ERROR("a = [1 2]\n", 1, "expected ',' or ']'");
    EXPECT_ERROR("a = [,]\n", 1, "expected a value");
    EXPECT_ERROR("[a\n", 1, "expected ']'");
    EXPECT_ERROR("[]\n", 1, "expected a key");
    EXPECT_ERROR("\"a.b\" = 1\n", 1, "containing '.'");
    EXPECT_ERROR("\"\" = 1\n", 1, "empty quoted key");
    EXPECT_ERROR("a = 1\r\nb = 2\r", 2, "carriage return");
    EXPECT_ERROR("a = 1\n# bad \x01 control\n", 2, "control character");
    EXPECT_ERROR("a = \"tab\tok but \x7f not\"\n", 1, "control character");
    EXPECT_ERROR("a = 1\nb = \"\xff\"\n", 2, "invalid UTF-8");
    EXPECT_ERROR("a = \"\xc0\xaf\"\n", 1, "invalid UTF-8");         /* overlong */
    EXPECT_ERROR("a = \"\xed\xa0\x80\"\n", 1, "invalid UTF-8");     /* surrogate */
    EXPECT_ERROR("a = true1\n", 1, "invalid value");
}

TEST(toml_nul_byte)
{
    toml_error err;
    const char text[] = "a = 1\nb = \"x\0y\"\n";
    CHECK(toml_parse(text, sizeof text - 1, &err) == NULL);
    CHECK_EQ_INT(err.line, 2);
    CHECK(strstr(err.msg, "NUL") != NULL);
}

TEST(toml_empty_and_no_trailing_newline)
{
    toml_doc *d = toml_parse("", 0, NULL);
    CHECK(d != NULL && toml_entries(d) == NULL && toml_tables(d) == NULL);
    toml_free(d);
    d = toml_parse(NULL, 0, NULL);
    CHECK(d != NULL);
    toml_free(d);
    d = parse("a = \"x\" # c");
    CHECK(d != NULL && find(d, "", "a") != NULL);
    toml_free(d);
    d = parse("\n\n   \t\n# only comments\n");
    CHECK(d != NULL && toml_entries(d) == NULL);
    toml_free(d);
    toml_free(NULL);
}

/* A key can be repeated up to the name limit; past it the parser refuses
 * instead of growing without bound. */
TEST(toml_name_limit)
{
    size_t cap = (TOML_MAX_NAMES + 10) * 16;
    char *text = malloc(cap);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    size_t n = 0;
    for (int i = 0; i < TOML_MAX_NAMES + 1; i++)
        n += (size_t)snprintf(text + n, cap - n, "k%d = %d\n", i, i);
    toml_error err;
    toml_doc *d = toml_parse(text, n, &err);
    CHECK(d == NULL);
    CHECK(strstr(err.msg, "too many") != NULL);
    CHECK_EQ_INT(err.line, TOML_MAX_NAMES + 1);
    toml_free(d);
    free(text);
}

/* Many strings on one line: memory must stay linear in the input. Each
 * basic string used to reserve the rest of its line, so this 80 KB line
 * took about 800 MB. */
TEST(toml_many_strings_one_line_bounded_memory)
{
    enum { ITEMS = 20000 };
    size_t cap = 16 + ITEMS * 5;
    char *text = malloc(cap);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    size_t n = 0;
    memcpy(text, "a = [", 5);
    n = 5;
    for (int i = 0; i < ITEMS; i++) {
        /* Mix in an escape so the escape path is measured as well. */
        memcpy(text + n, i % 2 ? "\"x\"," : "\"\\t\",", i % 2 ? 4 : 5);
        n += i % 2 ? 4 : 5;
    }
    text[n++] = ']';
    toml_error err;
    toml_doc *d = toml_parse(text, n, &err);
    CHECK(d != NULL);
    if (d != NULL) {
        const toml_entry *e = toml_entries(d);
        CHECK(e != NULL && e->value.type == TOML_ARRAY && e->value.count == ITEMS);
        if (e != NULL && e->value.count == ITEMS) {
            CHECK_STR(e->value.items[0].str, "\t");
            CHECK_STR(e->value.items[ITEMS - 1].str, "x");
        }
        /* About 4 MB is the array itself (64-byte values, doubling). */
        size_t used = toml_memory_used(d);
        CHECK_MSG(used < 8u << 20, "toml_memory_used = %zu bytes for a %zu-byte input", used, n);
    }
    toml_free(d);
    free(text);
}
