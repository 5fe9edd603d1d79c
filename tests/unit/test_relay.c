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
    static uint8_t big[4000];
    memset(big, 'z', sizeof big);
    CHECK_EQ_INT(write(a[0], big, sizeof big), (long)sizeof big);
    CHECK_EQ_INT(relay_pump(&f, a[1], b[0], &x, &p), RELAY_OK);
    uint8_t rec[2000];
    ssize_t n = read(b[1], rec, sizeof rec);
    /* the first record carries one segment's worth, as Go's first does */
    CHECK_EQ_INT(n, 5 + 1186 + 17);
    CHECK(rec[0] == 0x17 && rec[1] == 3 && rec[2] == 3);
    CHECK_EQ_INT((rec[3] << 8 | rec[4]), 1186 + 17);
    CHECK(rec[5] == 'z' && rec[n - 1] == 'z');
    CHECK_EQ_INT(records, 1);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    pool_destroy(&p);
}

TEST(close_reasons_table)
{
    CHECK_STR(close_reason_get(CLOSE_DONE)->name, "done");
    CHECK(!close_reason_get(CLOSE_DONE)->rst_client && !close_reason_get(CLOSE_DONE)->rst_peer);
    CHECK(close_reason_get(CLOSE_PEER_RESET)->rst_client);
    CHECK(close_reason_get(CLOSE_CLIENT_RESET)->rst_peer);
    CHECK(close_reason_get(CLOSE_FRONT_UNREACHABLE)->rst_client);
    CHECK_STR(close_reason_get((close_reason)999)->name, "none");
    for (int r = 0; r < CLOSE_REASON_COUNT; r++)
        CHECK_MSG(close_reason_get((close_reason)r)->name != NULL, "reason %d has no name", r);
}
