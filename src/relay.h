/* relay: the byte movers of an established connection (see relay.c). Only
 * conn.c calls these; each may close the connection (conn_close), so the
 * caller checks c->state afterwards. */
#ifndef TGF_RELAY_H
#define TGF_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"

/* read(2) with results normalised once: >0 bytes, 0 EOF, -1 would block,
 * -2 error (errno kept). */
ssize_t relay_read(int fd, uint8_t *buf, size_t cap);

/* Write the pending bytes of the up (client -> peer) or down (peer ->
 * client) flow; release the block when empty and pass a FIN on once the
 * source has ended. 0, or -1 when the destination reset or vanished. */
int relay_flush_up(conn *c);
int relay_flush_down(conn *c);

/* One read from the client (or the peer) into the flow toward the other
 * side, transformed for Telegram relays, and written on at once. */
void relay_from_client(conn *c);
void relay_from_peer(conn *c);

#endif
