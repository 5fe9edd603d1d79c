/* stats: the Prometheus endpoint ([stats.prometheus]): a tiny HTTP/1.0
 * responder on its own listener, served by the same event loop. */
#ifndef TGF_STATS_H
#define TGF_STATS_H

struct server;

/* Accepts pending scrapes on s->stats_listener. */
void stats_accept(struct server *s);
/* Closes scrapes that took too long (called on every tick). */
void stats_check_deadlines(struct server *s, unsigned long long now_ms);
void stats_close_all(struct server *s);

#endif
