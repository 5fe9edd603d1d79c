#include "unit.h"

#include "crypto.h"
#include "secret.h"
#include "stack_probe.h"

/* mtg README: generate-secret google.com (base64url) */
#define README_B64 "7ibaERuTSGPH1RdztfYnN4tnb29nbGUuY29t"
#define README_B64_HEX "ee26da111b934863c7d51773b5f627378b676f6f676c652e636f6d"
/* mtg README: generate-secret --hex google.com (a different key) */
#define README_HEX "ee473ce5d4958eb5f968c87680a23854a0676f6f676c652e636f6d"
/* mtg example.config.toml */
#define REPO_HEX "ee367a189aee18fa31c190054efd4a8e9573746f726167652e676f6f676c65617069732e636f6d"

static secret_status parse(const char *text, tg_secret *s)
{
    memset(s, 0xaa, sizeof *s);
    return secret_parse(text, strlen(text), s);
}

TEST(secret_readme_base64url)
{
    tg_secret s;
    unsigned char key[16];
    char buf[128];
    CHECK_EQ_INT(parse(README_B64, &s), SECRET_OK);
    CHECK_EQ_INT(unit_unhex("26da111b934863c7d51773b5f627378b", key, sizeof key), 16);
    CHECK_MEM(s.key, key, 16);
    CHECK_STR(s.host, "google.com");
    CHECK_EQ_INT(s.host_len, 10);
    CHECK_EQ_INT(secret_format_base64url(&s, buf, sizeof buf), strlen(README_B64));
    CHECK_STR(buf, README_B64);
    CHECK_EQ_INT(secret_format_hex(&s, buf, sizeof buf), strlen(README_B64_HEX));
    CHECK_STR(buf, README_B64_HEX);
    /* and the hex form parses to the same secret */
    tg_secret t;
    CHECK_EQ_INT(parse(README_B64_HEX, &t), SECRET_OK);
    CHECK_MEM(t.key, s.key, 16);
    CHECK(strcmp(t.host, s.host) == 0);
}

TEST(secret_readme_hex)
{
    tg_secret s;
    unsigned char key[16];
    char buf[128];
    CHECK_EQ_INT(parse(README_HEX, &s), SECRET_OK);
    CHECK_EQ_INT(unit_unhex("473ce5d4958eb5f968c87680a23854a0", key, sizeof key), 16);
    CHECK_MEM(s.key, key, 16);
    CHECK_STR(s.host, "google.com");
    CHECK_EQ_INT(secret_format_hex(&s, buf, sizeof buf), strlen(README_HEX));
    CHECK_STR(buf, README_HEX);
}

TEST(secret_repo_example)
{
    tg_secret s, t;
    unsigned char key[16];
    char b64[128], hex[128];
    CHECK_EQ_INT(parse(REPO_HEX, &s), SECRET_OK);
    CHECK_EQ_INT(unit_unhex("367a189aee18fa31c190054efd4a8e95", key, sizeof key), 16);
    CHECK_MEM(s.key, key, 16);
    CHECK_STR(s.host, "storage.googleapis.com");
    CHECK_EQ_INT(s.host_len, 22);
    CHECK(secret_format_base64url(&s, b64, sizeof b64) > 0);
    CHECK_EQ_INT(parse(b64, &t), SECRET_OK);
    CHECK_MEM(t.key, key, 16);
    CHECK_STR(t.host, "storage.googleapis.com");
    CHECK(secret_format_hex(&t, hex, sizeof hex) > 0);
    CHECK_STR(hex, REPO_HEX);
}

TEST(secret_uppercase_hex)
{
    tg_secret s;
    char up[sizeof REPO_HEX], buf[128];
    for (size_t i = 0; i < sizeof REPO_HEX; i++)
        up[i] = (char)(REPO_HEX[i] >= 'a' && REPO_HEX[i] <= 'f' ? REPO_HEX[i] - 32 : REPO_HEX[i]);
    CHECK_EQ_INT(parse(up, &s), SECRET_OK);
    CHECK_STR(s.host, "storage.googleapis.com");
    secret_format_hex(&s, buf, sizeof buf);
    CHECK_STR(buf, REPO_HEX);    /* formatting is always lowercase */
}

TEST(secret_base64_variants)
{
    /* 27 bytes: ee + 16 + "google.com"; base64 of it has no padding, so
     * build a secret whose length needs padding: host "a.bc" -> 21 bytes. */
    tg_secret s, t;
    char b64[128];
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f627378b612e6263", &s), SECRET_OK);
    CHECK_EQ_INT(secret_format_base64url(&s, b64, sizeof b64), 28);
    CHECK_STR(b64, "7ibaERuTSGPH1RdztfYnN4thLmJj");
    /* 22 bytes -> 30 unpadded chars, 32 padded with "==" */
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f627378b612e626364", &s), SECRET_OK);
    CHECK_EQ_INT(secret_format_base64url(&s, b64, sizeof b64), 30);
    CHECK_STR(b64, "7ibaERuTSGPH1RdztfYnN4thLmJjZA");
    CHECK_EQ_INT(parse("7ibaERuTSGPH1RdztfYnN4thLmJjZA==", &t), SECRET_OK);
    CHECK_STR(t.host, "a.bcd");
    CHECK_EQ_INT(parse("7ibaERuTSGPH1RdztfYnN4thLmJjZA=", &t), SECRET_ERR_ENCODING);
    CHECK_EQ_INT(parse("7ibaERuTSGPH1RdztfYnN4thLmJjZA===", &t), SECRET_ERR_ENCODING);
    /* standard alphabet: a key with bytes that encode to '+' and '/' */
    CHECK_EQ_INT(parse("eefbff0102030405060708090a0b0c0d0e612e6263", &s), SECRET_OK);
    CHECK_EQ_INT(secret_format_base64url(&s, b64, sizeof b64), 28);
    CHECK_STR(b64, "7vv_AQIDBAUGBwgJCgsMDQ5hLmJj");
    CHECK_EQ_INT(parse("7vv/AQIDBAUGBwgJCgsMDQ5hLmJj", &t), SECRET_OK);
    CHECK_MEM(t.key, s.key, 16);
    CHECK_STR(t.host, "a.bc");
    /* mixing '-'/'_' with '+'/'/' is rejected */
    CHECK_EQ_INT(parse("7vv/AQIDBAUGBwgJCgsMDQ5hLm-j", &t), SECRET_ERR_ENCODING);
}

TEST(secret_errors)
{
    tg_secret s;
    CHECK_EQ_INT(secret_parse("", 0, &s), SECRET_ERR_EMPTY);
    CHECK_EQ_INT(parse("not a secret!", &s), SECRET_ERR_ENCODING);
    CHECK_EQ_INT(parse("A", &s), SECRET_ERR_ENCODING);
    CHECK_EQ_INT(parse("ee26da11 1b934863c7d51773b5f627378b676f6f676c652e636f6d", &s),
                 SECRET_ERR_ENCODING);
    /* dd secret and a bare 16-byte secret */
    CHECK_EQ_INT(parse("dd26da111b934863c7d51773b5f627378b", &s), SECRET_ERR_PREFIX);
    CHECK_EQ_INT(parse("26da111b934863c7d51773b5f627378b", &s), SECRET_ERR_PREFIX);
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f6", &s), SECRET_ERR_SHORT);
    CHECK_EQ_INT(parse("ee", &s), SECRET_ERR_SHORT);
    CHECK_EQ_INT(parse("ee00000000000000000000000000000000676f6f676c652e636f6d", &s),
                 SECRET_ERR_ZERO_KEY);
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f627378b", &s), SECRET_ERR_NO_HOST);
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f627378b676f6f20676c65", &s),
                 SECRET_ERR_HOST_CHARS);   /* space */
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f627378b676f7f", &s),
                 SECRET_ERR_HOST_CHARS);   /* DEL */
    CHECK_EQ_INT(parse("ee26da111b934863c7d51773b5f627378b67c3a9", &s),
                 SECRET_ERR_HOST_CHARS);   /* UTF-8 */

    /* host of exactly 255 bytes is fine, 256 is too long */
    char hex[2 * (17 + 257) + 1];
    strcpy(hex, "ee26da111b934863c7d51773b5f627378b");
    for (int i = 0; i < 255; i++)
        strcat(hex, "61");
    CHECK_EQ_INT(parse(hex, &s), SECRET_OK);
    CHECK_EQ_INT(s.host_len, 255);
    strcat(hex, "61");
    CHECK_EQ_INT(parse(hex, &s), SECRET_ERR_HOST_TOO_LONG);
    strcat(hex, "61");
    CHECK_EQ_INT(parse(hex, &s), SECRET_ERR_HOST_TOO_LONG);

    for (int st = SECRET_OK; st <= SECRET_ERR_HOST_CHARS; st++)
        CHECK(strlen(secret_status_str((secret_status)st)) > 0);
}

TEST(secret_format_capacity)
{
    tg_secret s;
    char buf[64];
    CHECK_EQ_INT(parse(README_HEX, &s), SECRET_OK);
    CHECK_EQ_INT(secret_format_hex(&s, buf, strlen(README_HEX)), 0);
    CHECK_EQ_INT(secret_format_hex(&s, buf, strlen(README_HEX) + 1), strlen(README_HEX));
    CHECK_EQ_INT(secret_format_base64url(&s, buf, 36), 0);
    CHECK_EQ_INT(secret_format_base64url(&s, buf, 37), 36);
}

TEST(secret_generate_roundtrip)
{
    tg_secret s, t;
    char buf[128];
    CHECK_EQ_INT(secret_generate("example.org", &s), 0);
    CHECK_STR(s.host, "example.org");
    CHECK(secret_format_base64url(&s, buf, sizeof buf) > 0);
    CHECK_EQ_INT(parse(buf, &t), SECRET_OK);
    CHECK_MEM(t.key, s.key, 16);
    CHECK_STR(t.host, "example.org");
    CHECK_EQ_INT(secret_generate("", &s), -1);
    CHECK_EQ_INT(secret_generate("bad host", &s), -1);
    secret_wipe(&t);
    static const unsigned char zero[16];
    CHECK_MEM(t.key, zero, 16);
}

/* ---- no key bytes left behind on failure --------------------------------- */

#define PROBE_KEY_HEX "5ec73a91d20b4f68e1a7c43b9f0d2e81"

typedef struct {
    const char *text;
    secret_status st;
} probe_parse_args;

static void probe_parse(void *arg)
{
    probe_parse_args *a = arg;
    tg_secret s;
    a->st = secret_parse(a->text, strlen(a->text), &s);
    if (a->st == SECRET_OK)
        secret_wipe(&s);
}

/* Positive control: a frame that keeps the key is found, so the clean
 * scans mean something. */
static void probe_leaky(void *arg)
{
    volatile uint8_t copy[16];
    for (size_t i = 0; i < sizeof copy; i++)
        copy[i] = ((const uint8_t *)arg)[i];
}

TEST(secret_failed_parse_wipes_decoded_key)
{
    uint8_t key[16];
    CHECK_EQ_INT(unit_unhex(PROBE_KEY_HEX, key, sizeof key), 16);

    /* Hex decodes the key, then fails on "=="; base64 refuses the odd
     * padding before writing anything, so only a wipe removes the key. */
    probe_parse_args a = { "ee" PROBE_KEY_HEX "61==", SECRET_OK };
    probe_call(probe_parse, &a);
    CHECK_EQ_INT(a.st, SECRET_ERR_ENCODING);
    CHECK(!probe_stack_has(key, sizeof key));

    /* base64url of ee || key || "a.bc" with a bad last character: base64
     * writes the key before it fails. */
    a.text = "7l7HOpHSC09o4afEO58NLoFhLmJj!";
    probe_call(probe_parse, &a);
    CHECK_EQ_INT(a.st, SECRET_ERR_ENCODING);
    CHECK(!probe_stack_has(key, sizeof key));

    /* The same secret, valid: parsed and then wiped by the caller. */
    a.text = "7l7HOpHSC09o4afEO58NLoFhLmJj";
    probe_call(probe_parse, &a);
    CHECK_EQ_INT(a.st, SECRET_OK);
    CHECK(!probe_stack_has(key, sizeof key));

    /* Last, so it cannot spoil the checks above. */
    probe_call(probe_leaky, key);
    CHECK(probe_stack_has(key, sizeof key));
    crypto_wipe(key, sizeof key);
}
