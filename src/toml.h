/* toml: a strict reader for the TOML subset mtg configs use.
 *
 * Supported: comments, bare and quoted keys, dotted keys (a.b = 1),
 * [table] and [a.b] headers, basic strings with escapes, literal strings,
 * integers (decimal with sign and underscores, 0x/0o/0b), floats (1.5,
 * 1e-3, inf, nan), booleans, and arrays of those values (single or
 * multi-line, trailing comma, comments inside).
 * Rejected with a clear message: multi-line strings, inline tables, arrays
 * of tables ([[x]]), nested arrays, dates and times, quoted keys containing
 * '.', NUL in strings, invalid UTF-8. Duplicate keys and tables are errors.
 *
 * The document is one malloc'd object (an arena of chunks) freed by
 * toml_free. Parsing is not a hot path; clarity wins over speed. */
#ifndef TGF_TOML_H
#define TGF_TOML_H

#include <stddef.h>
#include <stdint.h>

#define TOML_MAX_NAMES 4096      /* keys plus tables in one document */

typedef enum {
    TOML_STRING = 1,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_ARRAY
} toml_type;

typedef struct toml_value toml_value;
struct toml_value {
    toml_type type;
    int line;                 /* line where the value starts, from 1 */
    const char *str;          /* TOML_STRING: NUL-terminated UTF-8, no NUL inside */
    size_t str_len;
    int64_t i;                /* TOML_INTEGER */
    double f;                 /* TOML_FLOAT */
    int b;                    /* TOML_BOOL: 0 or 1 */
    const toml_value *items;  /* TOML_ARRAY */
    size_t count;
};

/* One "key = value" line. table is the dotted name of the table the key
 * lands in ("" for the top level), including any dotted-key prefix:
 * "[a]\n b.c = 1" gives table "a.b", key "c". */
typedef struct toml_entry toml_entry;
struct toml_entry {
    const char *table;
    const char *key;
    int line;
    toml_value value;
    const toml_entry *next;   /* document order */
};

/* One [header] line, in document order. */
typedef struct toml_table toml_table;
struct toml_table {
    const char *name;         /* dotted */
    int line;
    const toml_table *next;
};

typedef struct toml_doc toml_doc;

typedef struct {
    int line;                 /* 0 when not tied to a line (out of memory) */
    char msg[200];
} toml_error;

/* Parses len bytes of text (need not be NUL-terminated). Returns the
 * document, or NULL with err filled. */
toml_doc *toml_parse(const char *text, size_t len, toml_error *err);

/* Frees the document and everything it points to; NULL is allowed. */
void toml_free(toml_doc *doc);

const toml_entry *toml_entries(const toml_doc *doc);
const toml_table *toml_tables(const toml_doc *doc);
/* Number of lines in the text (at least 1). */
int toml_line_count(const toml_doc *doc);
/* Bytes of heap the document holds (arena chunks and the name table), so
 * tests can check that memory stays linear in the input. */
size_t toml_memory_used(const toml_doc *doc);

#endif
