/* dc: Telegram datacenter addresses (mtg's table), prefer-ip ordering and
 * the [datacenters] overrides tests and private deployments use. */
#ifndef TGF_DC_H
#define TGF_DC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DC_MAX_ADDRS 8        /* addresses per DC, built-in or override */
#define DC_MAX_OVERRIDES 16   /* distinct DC numbers in [datacenters] */

typedef enum {
    DC_PREFER_IPV6 = 0,   /* mtg default */
    DC_PREFER_IPV4,
    DC_ONLY_IPV6,
    DC_ONLY_IPV4
} dc_prefer;

typedef struct {
    struct sockaddr_storage addr;
    socklen_t len;
} dc_addr;

typedef struct {
    int dc;                        /* positive DC number */
    dc_addr addrs[DC_MAX_ADDRS];
    size_t count;
} dc_override;

typedef struct {
    dc_override overrides[DC_MAX_OVERRIDES];
    size_t override_count;
    dc_prefer prefer;
    int allow_fallback;            /* allow-fallback-on-unknown-dc */
} dc_table;

/* Parses "prefer-ipv6" etc. (case-insensitive). Returns 0 or -1. */
int dc_prefer_parse(const char *text, dc_prefer *out);
const char *dc_prefer_name(dc_prefer p);

/* Maps the client's signed DC id to the DC to dial: |dc|, 0 -> 2. Returns
 * the DC number, or -1 when unknown (no built-in or override addresses) and
 * fallback is off; with fallback an unknown DC becomes 2. */
int dc_resolve(const dc_table *t, int16_t raw_dc);

/* Fills out with the addresses to try for dc, in dial order: overrides
 * replace the built-in list; each family shuffled (rand_seed feeds the
 * shuffle), families ordered/filtered by t->prefer. Returns the count. */
size_t dc_addresses(const dc_table *t, int dc, uint32_t rand_seed,
                    dc_addr *out, size_t cap);

/* Parses "ip:port" or "[ipv6]:port" (literal IP only). Returns 0 or -1. */
int dc_parse_hostport(const char *text, dc_addr *out);

/* Formats an address as "ip:port" / "[ip]:port". */
void dc_format_addr(const struct sockaddr *sa, char *out, size_t cap);

#endif
