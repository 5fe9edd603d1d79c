/* iplist: a set of IPv4 and IPv6 networks (FireHOL netset entries) as
 * sorted, merged ranges; a lookup is one binary search. Built once, then
 * read-only, so the event loops can read one while a thread builds the next.
 * Pure: no I/O. */
#ifndef TGF_IPLIST_H
#define TGF_IPLIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct iplist iplist;

typedef struct {
    uint32_t lo, hi;
} iplist_range4;

typedef struct {
    unsigned __int128 lo, hi;
} iplist_range6;

/* Collects entries; iplist_build turns them into a list. */
typedef struct {
    iplist_range4 *v4;
    size_t n4, cap4;
    iplist_range6 *v6;
    size_t n6, cap6;
    size_t entries;   /* entries added, as written (mtg's iplist_size) */
    int oom;
} iplist_builder;

void iplist_builder_init(iplist_builder *b);
/* Adds "1.2.3.4", "1.2.3.0/24", "2001:db8::/32" or "::1". 0 or -1 (not an
 * address or a network; out of memory sets b->oom). */
int iplist_builder_add(iplist_builder *b, const char *text);
/* Adds a FireHOL netset's text: one entry a line, '#' starts a comment,
 * blank lines skipped. As in mtg, an invalid line stops the file: entries
 * before it stay. Returns the entries added; *bad_line is the 1-based line
 * that stopped it, 0 when none did. */
size_t iplist_builder_add_netset(iplist_builder *b, const char *text, size_t len,
                                 size_t *bad_line);
/* Sorts and merges into a new list and empties the builder. NULL when out
 * of memory. */
iplist *iplist_build(iplist_builder *b);
void iplist_builder_free(iplist_builder *b);

/* 1 when the address (IPv4, IPv6, v4-mapped IPv6 as IPv4) is in the list. */
int iplist_contains(const iplist *l, const struct sockaddr *sa);
size_t iplist_entries(const iplist *l);
/* Ranges after merging (IPv4 + IPv6). */
size_t iplist_ranges(const iplist *l);
/* Another reference to l (several event loops read one list); returns l.
 * Every reference, the first included, is given back with iplist_free,
 * which frees the list with the last one. NULL is allowed in both. */
iplist *iplist_hold(iplist *l);
void iplist_free(iplist *l);

#endif
