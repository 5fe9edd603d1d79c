#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void net_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void net_set_keepalive(int fd, unsigned idle_s, unsigned interval_s, unsigned count)
{
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int v;
    if (idle_s) {
        v = (int)idle_s;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v);
    }
    if (interval_s) {
        v = (int)interval_s;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof v);
    }
    if (count) {
        v = (int)count;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof v);
    }
}

int net_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sa->sa_family == AF_INET6 && net_is_wildcard(sa))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_connect_start(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_connect_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

void net_close_reset(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

int net_resolve(const char *host, uint16_t port, dc_addr *out, size_t cap, char *err,
                size_t err_cap)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_cap, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof out[n].addr)
            continue;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memcpy(&out[n].addr, ai->ai_addr, ai->ai_addrlen);
        out[n].len = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, err_cap, "'%s' has no IPv4 or IPv6 address", host);
        return -1;
    }
    return (int)n;
}

int net_is_v4mapped(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 &&
           IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

uint16_t net_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int net_is_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

int net_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    struct in_addr a4, b4;
    int a_is4 = 0, b_is4 = 0;
    if (a->sa_family == AF_INET) { a4 = ((const struct sockaddr_in *)a)->sin_addr; a_is4 = 1; }
    else if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)a)->sin6_addr)) {
        memcpy(&a4, ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr + 12, 4); a_is4 = 1;
    }
    if (b->sa_family == AF_INET) { b4 = ((const struct sockaddr_in *)b)->sin_addr; b_is4 = 1; }
    else if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)b)->sin6_addr)) {
        memcpy(&b4, ((const struct sockaddr_in6 *)b)->sin6_addr.s6_addr + 12, 4); b_is4 = 1;
    }
    if (a_is4 != b_is4)
        return 0;
    if (a_is4)
        return a4.s_addr == b4.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

int net_is_own_address(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t ip = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        if ((ip >> 24) == 127 || ip == 0)
            return 1;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127)
            return 1;
    }
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return 0;
    int own = 0;
    for (struct ifaddrs *i = ifs; i && !own; i = i->ifa_next)
        if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
            own = net_same_ip(sa, i->ifa_addr);
    freeifaddrs(ifs);
    return own;
}

void net_format_ip(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *src = sa->sa_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, src, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

int net_probe_connect(const struct sockaddr *sa, socklen_t len, unsigned timeout_ms)
{
    int fd = net_connect_start(sa, len);
    if (fd < 0)
        return -1;
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int rc = poll(&p, 1, (int)timeout_ms);
    int err = rc == 0 ? ETIMEDOUT : (rc < 0 ? errno : net_connect_error(fd));
    close(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
