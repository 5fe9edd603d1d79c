/* A ClientHello captured from a real third-party client: mtcute 0.30.3's
 * FakeTLS MTProxy transport (tests/interop/mtcute), connecting with secret
 * ee 0123456789abcdef0123456789abcdef "example.com". It carries GREASE,
 * a post-quantum key share and mtcute's own extension order, so it checks
 * the parser against bytes no test helper of ours produced. */
#include "unit.h"

#include <stdint.h>

#include "faketls.h"
#include "secret.h"

#define CAPTURED_TS 1795587629  /* the timestamp inside its random */
#define CAPTURED_LEN 1817

static const char captured_hex[] =
    "160301071401000710030379eee4d0ef0de7be146606af0e2818904f784c5a8f1aeeb0c4"
    "e4727c93008339207e30595ed804a92295cd0934ea20f1d789fb7d34c26b5426939e8d8d"
    "dd04f82f00202a2a130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f"
    "0035010006a70a0a000044cd0005000302683200170000001b0003020002000b00020100"
    "000500050100000000002d0002010100230000fe0d011a0000010001ac00203c7aab6236"
    "35215e37154f420aaeaf44d92813163e29cd2c9e841e8e7529ddaf00f0df3bff211fb060"
    "1f1bffd1968716269eccd1c3bcb2f5504cb36166550b3e20aa86f8c6eb69766315de97a1"
    "12e256a81fad80ad13c2cbc11f9cc5d6cf652212f6805e982a2423e3cbbf518c9848e718"
    "d714acacd867b64468c17b145d7ad807d1f446bf5ca6107083cf870e4e3ef8bbd3177b45"
    "ab9f9d9d8891fb55c37608ef2686684af829bf5664cdedde867ba447a5e91905efd71dba"
    "0d01e57ea94ce71d0b0163bc136f40d586a354d95ff1825231a7904423fc522f15162a8a"
    "eea7bbcf16b01927cc1ca9325d0ea965210a946544bfe1335619331cc6e6b0b44d4fe288"
    "c76431b4d90acf228fdefaf37a225b527b000d0012001004030804040105030805050108"
    "060601002b0007061a1a03040303003304ef04eddada00010011ec04c0859604a465205e"
    "582163624bad35581b30285d9cbc82200a585abab835744abaa7be2618ce334bd2b36a78"
    "69c2c7c948daf39717a3c32cc4a2716a3b3b76714021261573893de08e7a14b349145c07"
    "3bb11d2a3059d78e3c85be92d612adf8bd31f268f1c7a8a04984b359a67b4a9e7e5419f8"
    "e1bc57561a667b60005b48d76a1ce3f30787485cb08aa536c48a36dc22967a00454ac517"
    "0b8036285b6230572fdb19fa324622d8317df8aa8ceb1c4be114c3846684a447e764865c"
    "a9cf6f56c2848b7ec7e568771a452ab3be48255e6c69a2f4745fb5ac08c49c0872d42f1d"
    "b9a58b6c3933386a321c3db3fa993fbb1a6ca3823098bde0f8350a9035cf4563e6e2711b"
    "59630ed00dc7d77103ac3fb7b97d2fa9c8fdf1a621f3cc51ab4ccd39c0d7773db3487e78"
    "89b70375035442abd0c4bf982022f698cf12c57d0fd5712a59404d850ef9460d9d372973"
    "fabdda74ad012b2b1be50c64cc2618f6a83d09d0b770a7e3c780b026284e9917d04b5374"
    "35153e853ee1649d00464b8e312db1262e4650a954852ffa0185fc38c9958733bc0479e6"
    "0bc03206a6093a43430981fca1c547879b1df64f3a9a59115463f6ea845148621a16a1d1"
    "5aa9a18acd1b563bd14a1a80c487a46c529fdb38c8e404ce2243d11333aa3c49da87a7bf"
    "e6836ffcb88c4925f19491aac0a082a5ae2894b57f44604cf1c7c2870de4d4868d09a9b1"
    "41aa2f5a6586b3b57f170657c05bc3eb0e75d2c803a75b225b8187b138532c09ca30b737"
    "34a0e1e1177d598ec8b08452f06f7493cb8f15a0ceca96af396cc4116ed3eb0fc4c00431"
    "ba1c82924654976084574864d9c0def184b3f5a9b8a1412ac8c764b9c0b0844a127b7d4a"
    "c199d3c9264dd42c0bd4be6c853e84c28ec20122770486f1aa16f027529a3668a327b4c1"
    "311a4155a0d17c15955cbf3d65a1041466844311802b67ad2aa128308264c4c7fb5aad5c"
    "3350bdc76ba68aa8a5bc3b86c36761e6a7065193568255df57689f624e09f5c6f3dc8c07"
    "f99eddd23bb94156e6d03306cb0610e80c9c83259dca8d797968cca467751a15919b1f72"
    "799e1030001c04888e851be894730f4386cc03415a69b266a4713dc80989a42b5cd7c856"
    "b779731918bb26245b3495b959afdbb54aa27971bae494e39b57849c0069f4c987b9382c"
    "9211cf1657c724907a0b99b2b845ec263df80679745c73519b74e45171c8697ca7952772"
    "9bc271bb7449533840f33da3159fd8e92e628b22cf2a0a20397ceb69842b53308fc14559"
    "e06c93f19c67ec731bd10aad6446f15a31a8c4c1a55159c50a043aa0545ea50a36812bad"
    "f27d644229ba94cc23b88662457b1b4a3fc81c8776b59e18a67561f0b157860a3f451543"
    "b2276c1b19155b4699f24cc4fa75af9b52b2db30c4104a92a16a89ec18714bb0992b3195"
    "6472636ba6103a8de9609ef750c6cc6b07c315076d3978b6c166231c91b2479c6c0cb017"
    "2c374cda78760b5f1c93c572d72d0af88eace9c91ee99b026c1480c1cfb0f18710e65d4e"
    "918bd7c95cadbacb0ffa03e806cb2bd7c59f103e61ec1ba8c00acd62797d3612912757cf"
    "47b05ba077b0ac23955850d1984c4755bc1f0a87738091e32412b04a7ee362db2b7a25a5"
    "f94b8abca7afe8b3eb1ceeeae7031080164abeac8c7802882241a75d7bde330c01af1451"
    "a6dbfb6a69601a6265dae0cbf712ec9e70ea866365001d00200ad8ef7f326686d879c2f2"
    "0a1ec53501593c4eeb1827d0e49de921069c5c272900000010000e00000b6578616d706c"
    "652e636f6d00120000ff010001000010000e000c02683208687474702f312e31000a000c"
    "000adada11ec001d001700181a1a000100";

static size_t load(uint8_t *buf)
{
    return unit_unhex(captured_hex, buf, CAPTURED_LEN);
}

static void load_secret(tg_secret *s)
{
    const char *text = "ee0123456789abcdef0123456789abcdef6578616d706c652e636f6d";
    CHECK_EQ_INT(secret_parse(text, strlen(text), s), SECRET_OK);
}

TEST(captured_mtcute_hello_accepted)
{
    static uint8_t buf[CAPTURED_LEN];
    CHECK_EQ_INT(load(buf), CAPTURED_LEN);
    tg_secret s;
    load_secret(&s);
    faketls_hello h;
    faketls_reason why = FAKETLS_R_NONE;
    CHECK_EQ_INT(faketls_check_client_hello(buf, CAPTURED_LEN, &s, CAPTURED_TS, 3000, &h, &why),
                 FAKETLS_OK);
    CHECK_EQ_INT(h.consumed, CAPTURED_LEN);
    CHECK_EQ_INT(h.timestamp, CAPTURED_TS);
    CHECK_EQ_INT(h.session_id_len, 32);
    CHECK_EQ_INT(h.cipher_suite, 0x1301);
    CHECK_MEM(h.client_random, buf + 11, 32);
}

TEST(captured_mtcute_hello_every_prefix_needs_more)
{
    static uint8_t buf[CAPTURED_LEN];
    load(buf);
    tg_secret s;
    load_secret(&s);
    for (size_t n = 0; n < CAPTURED_LEN; n++) {
        faketls_reason why = FAKETLS_R_NONE;
        faketls_result r = faketls_check_client_hello(buf, n, &s, CAPTURED_TS, 3000, NULL, &why);
        if (r != FAKETLS_NEED_MORE) {
            CHECK_EQ_INT(n, -1);   /* report the first prefix that was not NEED_MORE */
            break;
        }
    }
}

TEST(captured_mtcute_hello_wrong_key_or_time)
{
    static uint8_t buf[CAPTURED_LEN];
    load(buf);
    tg_secret s;
    load_secret(&s);
    faketls_reason why = FAKETLS_R_NONE;
    CHECK_EQ_INT(faketls_check_client_hello(buf, CAPTURED_LEN, &s, CAPTURED_TS + 4, 3000, NULL, &why),
                 FAKETLS_REJECT);
    CHECK_EQ_INT(why, FAKETLS_R_TIME_SKEW);
    s.key[0] ^= 1;
    CHECK_EQ_INT(faketls_check_client_hello(buf, CAPTURED_LEN, &s, CAPTURED_TS, 3000, NULL, &why),
                 FAKETLS_REJECT);
    CHECK_EQ_INT(why, FAKETLS_R_BAD_DIGEST);
}
