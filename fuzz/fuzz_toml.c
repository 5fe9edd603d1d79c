/* Fuzzes toml_parse: any input either fails with a line inside the text or
 * yields a document whose strings, lines and arrays are self-consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

static void check_value(const toml_value *v, int lines)
{
    if (v->line < 1 || v->line > lines)
        abort();
    switch (v->type) {
    case TOML_STRING:
        if (v->str == NULL || strlen(v->str) != v->str_len)
            abort();
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->count; i++) {
            if (v->items[i].type == TOML_ARRAY)
                abort();   /* nested arrays are refused */
            check_value(&v->items[i], lines);
        }
        break;
    case TOML_INTEGER:
    case TOML_FLOAT:
        break;
    case TOML_BOOL:
        if (v->b != 0 && v->b != 1)
            abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    toml_error err;
    toml_doc *doc = toml_parse((const char *)data, size, &err);
    if (doc == NULL) {
        if (err.msg[0] == '\0' || strlen(err.msg) >= sizeof err.msg)
            abort();
        return 0;
    }
    int lines = toml_line_count(doc);
    if (lines < 1)
        abort();
    size_t names = 0;
    for (const toml_entry *e = toml_entries(doc); e != NULL; e = e->next) {
        if (e->key[0] == '\0' || strchr(e->key, '.') != NULL || e->line < 1 || e->line > lines)
            abort();
        check_value(&e->value, lines);
        names++;
    }
    for (const toml_table *t = toml_tables(doc); t != NULL; t = t->next) {
        if (t->name[0] == '\0' || t->line < 1 || t->line > lines)
            abort();
        names++;
    }
    if (names > TOML_MAX_NAMES)
        abort();
    toml_free(doc);
    return 0;
}
