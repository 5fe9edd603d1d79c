/* relay: the byte mover reports a status and never closes anything; FIN is
 * passed on once the block is written; records toward the client follow
 * Go's size ramp. Exercised over socketpairs. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "close_reason.h"
#include "relay.h"
#include "unit.h"

static void pair(int fds[2])
{
    int ok = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0;
    CHECK(ok);
}

TEST(relay_copy_moves_and_passes_fin)
{
    int a[2], b[2];   /* a: "client" end a[0] -> relay reads a[1]; b: relay writes b[0] -> peer b[1] */
    pair(a);
    pair(b);
    pool p;
    pool_init(&p, 2, 0);
    relay_flow f = { 0 };
    uint64_t traffic = 0;
    f.traffic = &traffic;
    relay_xform x = { .kind = RELAY_COPY };
    CHECK_EQ_INT(write(a[0], "hello", 5), 5);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    char got[16] = "";
    CHECK_EQ_INT(read(b[1], got, sizeof got), 5);
    CHECK_MEM(got, "hello", 5);
    CHECK_EQ_INT(f.bytes, 5);
    CHECK_EQ_INT(f.read_bytes, 5);
    CHECK_EQ_INT(traffic, 5);
    CHECK(f.buf == NULL);   /* the block goes back once written */
    CHECK_EQ_INT(p.bytes_in_use, 0);
    /* nothing to read: OK, nothing held */
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    CHECK(!f.eof && f.buf == NULL);
    /* the source's FIN reaches the destination as a FIN */
    shutdown(a[0], SHUT_WR);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    CHECK(f.eof && f.shut);
    CHECK_EQ_INT(read(b[1], got, sizeof got), 0);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

TEST(relay_reports_errors_and_memory)
{
    signal(SIGPIPE, SIG_IGN);   /* as loop_init does: EPIPE, not death */
    int a[2], b[2];
    pair(a);
    pair(b);
    pool p;
    pool_init(&p, 0, POOL_SMALL_SIZE);   /* no room for a full block */
    relay_flow f = { 0 };
    relay_xform x = { .kind = RELAY_COPY };
    CHECK_EQ_INT(write(a[0], "x", 1), 1);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_NO_MEMORY);
    CHECK_EQ_INT(f.read_bytes, 0);   /* nothing was taken from the source */
    pool_destroy(&p);

    pool_init(&p, 0, 0);
    close(b[1]);   /* the destination is gone */
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_DST_ERROR);
    CHECK(f.len == 1 && f.buf != NULL);   /* the owner decides; the bytes stay */
    pool_put(&p, f.buf);
    f = (relay_flow){ 0 };
    CHECK_EQ_INT(relay_pump(&f, -1, b[0], &x, &p), RELAY_SRC_ERROR);
    CHECK(f.buf == NULL);
    close(a[0]); close(a[1]); close(b[0]);
    pool_destroy(&p);
}

TEST(relay_record_ramp_like_go)
{
    CHECK_EQ_INT(relay_record_payload_cap(0, 0), 1186 + 17);
    CHECK_EQ_INT(relay_record_payload_cap(1, 2000), 2 * 1186 + 17);
    CHECK_EQ_INT(relay_record_payload_cap(30, 100000), FAKETLS_TX_MAX_PAYLOAD);
    CHECK_EQ_INT(relay_record_payload_cap(2, 128 * 1024), FAKETLS_TX_MAX_PAYLOAD);
}

/* Reads everything now readable from fd into buf (at most cap bytes). */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n <= 0)
            return have;
        have += (size_t)n;
    }
}

/* Parses records out of buf[0..len): their payload lengths into lens (at
 * most max), payload bytes concatenated into out. Returns the record count,
 * or -1 when the framing is not 17 03 03 BE16 payload. */
static int parse_records(const uint8_t *buf, size_t len, size_t *lens, int max, uint8_t *out,
                         size_t *out_len)
{
    int n = 0;
    size_t at = 0;
    *out_len = 0;
    while (at < len) {
        if (len - at < 5 || buf[at] != 0x17 || buf[at + 1] != 3 || buf[at + 2] != 3 || n == max)
            return -1;
        size_t l = (size_t)buf[at + 3] << 8 | buf[at + 4];
        if (len - at - 5 < l)
            return -1;
        memcpy(out + *out_len, buf + at + 5, l);
        *out_len += l;
        lens[n++] = l;
        at += 5 + l;
    }
    return n;
}

TEST(relay_tg_down_frames_records)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    pool p;
    pool_init(&p, 0, 0);
    crypto_ctr k1, k2;
    uint8_t key[32] = { 1 }, iv[16] = { 2 };
    crypto_ctr_init(&k1, key, iv);
    crypto_ctr_init(&k2, key, iv);   /* the same stream twice: plaintext comes back */
    uint32_t records = 0;
    uint64_t bytes = 0;
    relay_xform x = { .kind = RELAY_TG_DOWN, .first = &k1, .second = &k2,
                      .tx_records = &records, .tx_bytes = &bytes };
    relay_flow f = { 0 };
    static uint8_t big[4000], rec[8000], plain[8000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 13 + 1);
    CHECK_EQ_INT(write(a[0], big, sizeof big), (long)sizeof big);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    size_t n = drain(b[1], rec, sizeof rec), plain_len = 0, lens[8];
    /* One read fills the slots of several records laid end to end, sized
     * as Go's first records are: one segment's worth, then one more each. */
    int got = parse_records(rec, n, lens, 8, plain, &plain_len);
    CHECK_EQ_INT(got, 3);
    CHECK_EQ_INT(lens[0], 1186 + 17);
    CHECK_EQ_INT(lens[1], 2 * 1186 + 17);
    CHECK_EQ_INT(lens[2], 4000 - (1186 + 17) - (2 * 1186 + 17));
    CHECK_EQ_INT(plain_len, sizeof big);
    CHECK_MEM(plain, big, sizeof big);
    CHECK_EQ_INT(records, 3);
    CHECK_EQ_INT(bytes, n);
    CHECK_EQ_INT(f.bytes, n);
    CHECK(f.buf == NULL);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

/* A bulk transfer toward the client: past the ramp, records are full size
 * and a read that fills a block makes the next read take a batch block
 * (four records per system call); the byte stream is intact and the bytes
 * held never exceed one batch block. */
TEST(relay_tg_down_batches_after_a_full_read)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    int sz = 1 << 20;
    setsockopt(a[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(b[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    pool p;
    pool_init(&p, 4, 0);
    crypto_ctr k1, k2, r1, r2;
    uint8_t key1[32] = { 7 }, key2[32] = { 9 }, iv[16] = { 3 };
    crypto_ctr_init(&k1, key1, iv);
    crypto_ctr_init(&k2, key2, iv);
    crypto_ctr_init(&r1, key1, iv);
    crypto_ctr_init(&r2, key2, iv);
    uint32_t records = 40;
    uint64_t bytes = 1 << 20;   /* past the ramp */
    relay_xform x = { .kind = RELAY_TG_DOWN, .first = &k1, .second = &k2,
                      .tx_records = &records, .tx_bytes = &bytes };
    relay_flow f = { 0 };
    static uint8_t src[200000], out[220000], plain[220000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 31 + 7);
    size_t sent = 0, n = 0;
    int calls = 0;
    while (sent < sizeof src || f.len) {
        if (sent < sizeof src) {
            ssize_t w = write(a[0], src + sent, sizeof src - sent);
            if (w > 0)
                sent += (size_t)w;
        }
        CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
        CHECK(p.bytes_in_use <= POOL_BATCH_SIZE);
        n += drain(b[1], out + n, sizeof out - n);
        if (++calls > 1000)
            break;
    }
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    n += drain(b[1], out + n, sizeof out - n);
    size_t lens[64], plain_len = 0;
    int got = parse_records(out, n, lens, 64, plain, &plain_len);
    CHECK(got > 0);
    CHECK_EQ_INT(plain_len, sizeof src);
    crypto_ctr_apply(&r1, plain, plain_len);
    crypto_ctr_apply(&r2, plain, plain_len);
    CHECK_MEM(plain, src, sizeof src);
    int full = 0, runts = 0;
    for (int i = 0; i < got; i++) {
        CHECK_MSG(lens[i] <= FAKETLS_TX_MAX_PAYLOAD, "record %d: %zu bytes", i, lens[i]);
        full += lens[i] == FAKETLS_TX_MAX_PAYLOAD;
        /* a short record right after a full one that is not the end of a
         * read: the 16 KiB block's tail must not become a runt record */
        runts += i > 0 && i + 1 < got && lens[i] < 100 && lens[i - 1] == FAKETLS_TX_MAX_PAYLOAD;
    }
    CHECK_MSG(runts == 0, "%d runt records after full ones", runts);
    CHECK_MSG(full >= 8, "only %d full records of %d", full, got);
    CHECK(p.in_use_peak >= 1);
    CHECK_EQ_INT(p.bytes_in_use, 0);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

/* Client records of many sizes (and a ChangeCipherSpec among them) through
 * TG_UP, the input written in pieces of every size from 1 to 40 and in one
 * go: the DC gets exactly the payload, through both key streams. */
TEST(relay_tg_up_strips_records_at_every_split)
{
    static uint8_t wire[6000], payload[6000], out[6000];
    size_t wire_len = 0, pay_len = 0;
    static const size_t sizes[] = { 1, 0, 17, 1, 5, 1000, 2, 64, 1500, 300 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t type = i == 3 ? 0x14 : 0x17;   /* the CCS, 01 */
        wire[wire_len++] = type;
        wire[wire_len++] = 3;
        wire[wire_len++] = 3;
        wire[wire_len++] = (uint8_t)(sizes[i] >> 8);
        wire[wire_len++] = (uint8_t)sizes[i];
        for (size_t j = 0; j < sizes[i]; j++) {
            uint8_t v = type == 0x14 ? 1 : (uint8_t)(i * 40 + j);
            wire[wire_len++] = v;
            if (type == 0x17)
                payload[pay_len++] = v;
        }
    }
    uint8_t key1[32] = { 4 }, key2[32] = { 5 }, iv[16] = { 6 };
    int bad = 0;
    for (size_t piece = 1; piece <= 41; piece++) {
        size_t step = piece == 41 ? wire_len : piece;
        int a[2], b[2];
        pair(a);
        pair(b);
        pool p;
        pool_init(&p, 2, 0);
        crypto_ctr k1, k2;
        crypto_ctr_init(&k1, key1, iv);
        crypto_ctr_init(&k2, key2, iv);
        faketls_rx rx;
        faketls_rx_init(&rx);
        relay_xform x = { .kind = RELAY_TG_UP, .rx = &rx, .first = &k1, .second = &k2 };
        relay_flow f = { 0 };
        size_t n = 0;
        for (size_t off = 0; off < wire_len; off += step) {
            size_t len = wire_len - off < step ? wire_len - off : step;
            bad += write(a[0], wire + off, len) != (ssize_t)len;
            bad += relay_pump(&f, a[1], b[0], &x, &p) != RELAY_OK;
            n += drain(b[1], out + n, sizeof out - n);
        }
        crypto_ctr_init(&k1, key1, iv);
        crypto_ctr_init(&k2, key2, iv);
        crypto_ctr_apply(&k1, out, n);
        crypto_ctr_apply(&k2, out, n);
        if (n != pay_len || memcmp(out, payload, pay_len) != 0) {
            FAIL("pieces of %zu: %zu of %zu payload bytes, or different", step, n, pay_len);
            bad++;
        }
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
        pool_destroy(&p);
    }
    CHECK_EQ_INT(bad, 0);
}

/* A broken record header from the client: RELAY_BAD_RECORD with the reason,
 * the block returned. */
TEST(relay_tg_up_reports_bad_record)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    pool p;
    pool_init(&p, 2, 0);
    crypto_ctr k1, k2;
    uint8_t key[32] = { 1 }, iv[16] = { 1 };
    crypto_ctr_init(&k1, key, iv);
    crypto_ctr_init(&k2, key, iv);
    faketls_rx rx;
    faketls_rx_init(&rx);
    relay_xform x = { .kind = RELAY_TG_UP, .rx = &rx, .first = &k1, .second = &k2 };
    relay_flow f = { 0 };
    static const uint8_t bad[] = { 0x17, 3, 3, 0, 1, 'a', 0x17, 3, 1, 0, 1, 'b' };
    CHECK_EQ_INT(write(a[0], bad, sizeof bad), (long)sizeof bad);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_BAD_RECORD);
    CHECK_EQ_INT(x.why, FAKETLS_R_BAD_VERSION);
    CHECK(f.buf == NULL);
    CHECK_EQ_INT(p.bytes_in_use, 0);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

/* Fast mode's down direction: no key streams, the bytes pass unchanged
 * inside the records. */
TEST(relay_tg_down_without_streams_copies_into_records)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    pool p;
    pool_init(&p, 0, 0);
    uint32_t records = 0;
    uint64_t bytes = 0;
    relay_xform x = { .kind = RELAY_TG_DOWN, .tx_records = &records, .tx_bytes = &bytes };
    relay_flow f = { 0 };
    static uint8_t msg[3000], rec[4000], plain[4000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i ^ 0x5a);
    CHECK_EQ_INT(write(a[0], msg, sizeof msg), (long)sizeof msg);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    size_t n = drain(b[1], rec, sizeof rec), lens[4], plain_len = 0;
    CHECK_EQ_INT(parse_records(rec, n, lens, 4, plain, &plain_len), 2);
    CHECK_EQ_INT(plain_len, sizeof msg);
    CHECK_MEM(plain, msg, sizeof msg);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

/* Fast mode toward the client: the two streams are one (same key, same
 * offset), so the payload passes unchanged; at the DC's FIN the
 * close_notify record is encrypted with the client's stream at the offset
 * the client has reached, although the relay never applied it. */
TEST(relay_tg_down_same_streams_then_close_notify)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    pool p;
    pool_init(&p, 0, 0);
    crypto_ctr dc_rx, cli_tx, client_rx;
    uint8_t key[32] = { 8 }, iv[16] = { 9 };
    crypto_ctr_init(&dc_rx, key, iv);
    crypto_ctr_init(&cli_tx, key, iv);
    crypto_ctr_init(&client_rx, key, iv);
    uint32_t records = 0;
    uint64_t bytes = 0;
    relay_xform x = { .kind = RELAY_TG_DOWN, .first = &dc_rx, .second = &cli_tx,
                      .same_streams = 1, .tx_records = &records, .tx_bytes = &bytes };
    relay_flow f = { 0 };
    static uint8_t msg[5000], rec[6000], plain[6000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7);
    CHECK_EQ_INT(write(a[0], msg, sizeof msg), (long)sizeof msg);
    shutdown(a[0], SHUT_WR);
    for (int i = 0; i < 4 && !f.shut; i++)
        CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    CHECK(f.eof && f.shut);
    size_t n = drain(b[1], rec, sizeof rec), lens[8], plain_len = 0;
    int got = parse_records(rec, n, lens, 8, plain, &plain_len);
    CHECK(got >= 2);
    CHECK_EQ_INT(plain_len, sizeof msg + 19);
    CHECK_MEM(plain, msg, sizeof msg);   /* unchanged: the streams cancel */
    CHECK_EQ_INT(lens[got - 1], 19);
    /* The client decrypts the alert at offset 5000 of its stream. */
    crypto_ctr_skip(&client_rx, sizeof msg);
    crypto_ctr_apply(&client_rx, plain + sizeof msg, 19);
    CHECK_EQ_INT(plain[sizeof msg], 0x7f);
    CHECK(plain[sizeof msg + 1] >= 64);
    CHECK(plain[sizeof msg + 2] == 0 && plain[sizeof msg + 3] == 0);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

/* The record conn.c sends when it ends a session itself: one 24-byte
 * application-data record; with the client's stream it decrypts to the
 * never-completing packet start (at the offset the client has reached, in
 * fast mode too), and the stream moves on so a second record follows it;
 * without a stream its payload is random. */
TEST(relay_close_notify_record)
{
    uint8_t key[32] = { 3 }, iv[16] = { 4 };
    crypto_ctr cli_tx, client_rx;
    crypto_ctr_init(&cli_tx, key, iv);
    crypto_ctr_init(&client_rx, key, iv);
    uint32_t records = 3;
    uint64_t bytes = 3 * 5 + 1000;   /* 1000 payload bytes sent so far */
    relay_xform x = { .kind = RELAY_TG_DOWN, .second = &cli_tx, .same_streams = 1,
                      .tx_records = &records, .tx_bytes = &bytes };
    uint8_t rec[2 * RELAY_CLOSE_NOTIFY_LEN];
    CHECK_EQ_INT(RELAY_CLOSE_NOTIFY_LEN, 24);
    CHECK_EQ_INT(relay_close_notify(&x, rec), 24);
    CHECK(!x.same_streams);
    CHECK_EQ_INT(relay_close_notify(&x, rec + 24), 24);
    static const uint8_t hdr[5] = { 0x17, 0x03, 0x03, 0x00, 0x13 };
    CHECK_MEM(rec, hdr, 5);
    CHECK_MEM(rec + 24, hdr, 5);
    crypto_ctr_skip(&client_rx, 1000);
    for (int i = 0; i < 2; i++) {
        uint8_t *pt = rec + 24 * i + 5;
        crypto_ctr_apply(&client_rx, pt, 19);
        CHECK_EQ_INT(pt[0], 0x7f);
        CHECK(pt[1] >= 64 && pt[2] == 0 && pt[3] == 0);
    }
    CHECK_EQ_INT(records, 3);   /* the ramp's counters are the relay's */

    relay_xform bare = { .kind = RELAY_TG_DOWN };
    uint8_t a[RELAY_CLOSE_NOTIFY_LEN], b[RELAY_CLOSE_NOTIFY_LEN];
    CHECK_EQ_INT(relay_close_notify(&bare, a), 24);
    CHECK_EQ_INT(relay_close_notify(&bare, b), 24);
    CHECK_MEM(a, hdr, 5);
    CHECK(memcmp(a + 5, b + 5, 19) != 0);   /* random, not a constant */
}

TEST(close_reasons_table)
{
    CHECK_STR(close_reason_get(CLOSE_DONE)->name, "done");
    CHECK(!close_reason_get(CLOSE_DONE)->rst_client && !close_reason_get(CLOSE_DONE)->rst_peer);
    CHECK(close_reason_get(CLOSE_PEER_RESET)->rst_client);
    CHECK(close_reason_get(CLOSE_CLIENT_RESET)->rst_peer);
    CHECK(close_reason_get(CLOSE_FRONT_UNREACHABLE)->rst_client);
    CHECK_STR(close_reason_get((close_reason)999)->name, "none");
    /* What a Go TLS server writes before its FIN: close_notify when we end
     * a session, alert + close_notify for a bad record, nothing with RST. */
    CHECK_EQ_INT(close_reason_get(CLOSE_IDLE)->alerts, 1);
    CHECK_EQ_INT(close_reason_get(CLOSE_SHUTDOWN)->alerts, 1);
    CHECK_EQ_INT(close_reason_get(CLOSE_DC_UNREACHABLE)->alerts, 1);
    CHECK_EQ_INT(close_reason_get(CLOSE_BAD_RECORD)->alerts, 2);
    CHECK_EQ_INT(close_reason_get(CLOSE_CLIENT_RESET)->alerts, 0);
    CHECK_EQ_INT(close_reason_get(CLOSE_PROXY_HEADER)->alerts, 0);
    for (int r = 0; r < CLOSE_REASON_COUNT; r++)
        CHECK_MSG(!(close_reason_get((close_reason)r)->rst_client &&
                    close_reason_get((close_reason)r)->alerts),
                  "reason %d sends alerts before an RST", r);
    for (int r = 0; r < CLOSE_REASON_COUNT; r++)
        CHECK_MSG(close_reason_get((close_reason)r)->name != NULL, "reason %d has no name", r);
}
