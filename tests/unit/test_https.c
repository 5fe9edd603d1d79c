/* https and tlstrust: URL parsing, and PEM bundles into trust anchors
 * (a CA certificate, text around it, a non-certificate object, bad PEM). */
#include "unit.h"

#include "https.h"
#include "tlstrust.h"

static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBNTCB3KADAgECAgEBMAoGCCqGSM49BAMCMBoxGDAWBgNVBAMMD3RnZnJvbnQg\n"
    "dW5pdCBDQTAeFw0yNDAxMDEwMDAwMDBaFw00NDAxMDEwMDAwMDBaMBoxGDAWBgNV\n"
    "BAMMD3RnZnJvbnQgdW5pdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDuj\n"
    "YqIKCvjnsrfXAk7XUe5UBchL19SfhLWVp0kBqGg5GAlD8rNWiPeLj1prPbpRhm4x\n"
    "hUqpJ9INm/JxI67oo76jEzARMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID\n"
    "SAAwRQIgDqx9bvuN4i/Irre5KVX3YOjVB6Clr8I8ShfEZG4XOt8CIQCZgZl2Tj70\n"
    "zkOOPrvaDHvLJSQlUmlrx2nvF6fmepl77w==\n"
    "-----END CERTIFICATE-----";   /* no final newline on purpose */

TEST(https_parse_url_forms)
{
    char host[256], path[256];
    uint16_t port = 0;
    CHECK(https_parse_url("https://iplists.firehol.org/files/firehol_level1.netset", host,
                          sizeof host, &port, path, sizeof path) == 0);
    CHECK(strcmp(host, "iplists.firehol.org") == 0 && port == 443 &&
          strcmp(path, "/files/firehol_level1.netset") == 0);
    CHECK(https_parse_url("https://[::1]:8443", host, sizeof host, &port, path, sizeof path) == 0);
    CHECK(strcmp(host, "::1") == 0 && port == 8443 && strcmp(path, "/") == 0);
    CHECK(https_parse_url("https://h?x=1", host, sizeof host, &port, path, sizeof path) == 0);
    CHECK(strcmp(path, "/?x=1") == 0);
    static const char *const bad[] = {
        "http://h/", "https://", "https://:1/", "https://h:0/", "https://h:70000/",
        "https://[::1/", "https://h:x/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(https_parse_url(bad[i], host, sizeof host, &port, path, sizeof path) < 0,
                  "accepted %s", bad[i]);
}

TEST(tlstrust_reads_pem_bundles)
{
    tlstrust t;
    char err[200];
    char bundle[4096];
    tlstrust_init(&t);
    snprintf(bundle, sizeof bundle, "# a comment line\n%s\n-----BEGIN PRIVATE KEY-----\n"
             "AAAA\n-----END PRIVATE KEY-----\n%s", ca_pem, ca_pem);
    int n = tlstrust_add_pem(&t, bundle, strlen(bundle), err, sizeof err);
    CHECK_MSG(n == 2, "added %d: %s", n, err);
    CHECK_EQ_INT(t.count, 2);
    if (t.count >= 1) {
        CHECK(t.ta[0].flags & BR_X509_TA_CA);
        CHECK(t.ta[0].pkey.key_type == BR_KEYTYPE_EC);
        CHECK(t.ta[0].pkey.key.ec.curve == BR_EC_secp256r1 && t.ta[0].pkey.key.ec.qlen == 65);
        CHECK(t.ta[0].dn.len > 10);
    }
    CHECK_EQ_INT(tlstrust_add_pem(&t, "no pem here\n", 12, err, sizeof err), 0);
    static const char broken[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    CHECK(tlstrust_add_pem(&t, broken, sizeof broken - 1, err, sizeof err) < 0);
    CHECK(tlstrust_add_file(&t, "/nonexistent/ca.pem", err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent/ca.pem") != NULL);
    tlstrust_free(&t);
    CHECK_EQ_INT(t.count, 0);
}
