/* web_config: the [web] table (tgfront's own): the WEB proxy mode's
 * loopback listener, limits and the carrier's path. config.c declares the
 * keys; README documents them. */
#ifndef TGF_WEB_CONFIG_H
#define TGF_WEB_CONFIG_H

#include <stdint.h>
#include <sys/socket.h>

#define WEB_HOST_MAX 253
#define WEB_PATH_MAX 64

typedef struct {
    int enabled;                         /* default false */
    struct sockaddr_storage bind_addr;   /* loopback only; default 127.0.0.1:8081 */
    socklen_t bind_len;
    char host[WEB_HOST_MAX + 1];         /* "" = the secret's hostname */
    char ws_path[WEB_PATH_MAX + 1];      /* default "/api/v1/socket" */
    uint32_t max_sessions;               /* default 256 */
    uint32_t max_streams;                /* per session, default 64 */
    int trust_forwarded_for;             /* default true: client address from X-Forwarded-For */
} tgf_web_config;

#endif
