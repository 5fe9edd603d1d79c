/* netutil: socket helpers shared by the server, the connections and the
 * commands (doctor, healthcheck). Errors return -1 with errno set. */
#ifndef TGF_NETUTIL_H
#define TGF_NETUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dc.h"

void net_set_nodelay(int fd);
/* SO_KEEPALIVE with idle/interval/count (seconds); count 0 = leave the OS's. */
void net_set_keepalive(int fd, unsigned idle_s, unsigned interval_s, unsigned count);

/* Non-blocking listening socket; an IPv6 wildcard also accepts IPv4. */
int net_listen(const struct sockaddr *sa, socklen_t len, int backlog);
/* Starts a non-blocking connect. Returns the fd (connect may be in progress). */
int net_connect_start(const struct sockaddr *sa, socklen_t len);
/* After writability: 0 when connected, else the socket error (errno value). */
int net_connect_error(int fd);
/* Closes with RST instead of FIN (SO_LINGER 0): how a reset is mirrored. */
void net_close_reset(int fd);

/* Resolves host (name or literal) to up to cap addresses with port set.
 * Blocking: for start-up and commands only. Returns count or -1 with a
 * message in err. */
int net_resolve(const char *host, uint16_t port, dc_addr *out, size_t cap, char *err,
                size_t err_cap);
/* 1 when the address (port ignored) is loopback or one of this host's own
 * interface addresses; 0 otherwise. */
int net_is_own_address(const struct sockaddr *sa);
uint16_t net_port(const struct sockaddr *sa);
/* 1 when the IP parts are equal, v4-mapped IPv6 counting as IPv4. */
int net_same_ip(const struct sockaddr *a, const struct sockaddr *b);
int net_is_v4mapped(const struct sockaddr *sa);
int net_is_wildcard(const struct sockaddr *sa);
/* "1.2.3.4" / "::1" without port. */
void net_format_ip(const struct sockaddr *sa, char *out, size_t cap);
/* Blocking connect with a timeout, for commands. Returns 0 or -1 (errno). */
int net_probe_connect(const struct sockaddr *sa, socklen_t len, unsigned timeout_ms);

#endif
