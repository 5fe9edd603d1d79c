/* tlstrust: PEM -> DER -> br_x509_trust_anchor, as BearSSL's own tools do
 * (tools/certs.c), with one growable buffer per object. */
#include "tlstrust.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLSTRUST_FILE_MAX (8u << 20)   /* a CA bundle is about 200 KB */

typedef struct {
    unsigned char *p;
    size_t len, cap;
    int oom;
} buf;

static void buf_add(void *ctx, const void *data, size_t len)
{
    buf *b = ctx;
    if (b->oom)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void *dup_bytes(const void *src, size_t len)
{
    void *p = malloc(len ? len : 1);
    if (p)
        memcpy(p, src, len);
    return p;
}

static void free_anchor(br_x509_trust_anchor *ta)
{
    free(ta->dn.data);
    if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
        free(ta->pkey.key.rsa.n);
        free(ta->pkey.key.rsa.e);
    } else if (ta->pkey.key_type == BR_KEYTYPE_EC) {
        free(ta->pkey.key.ec.q);
    }
}

static int add_der(tlstrust *t, const unsigned char *der, size_t len, char *err, size_t cap)
{
    br_x509_decoder_context dc;
    buf dn = { 0 };
    br_x509_decoder_init(&dc, buf_add, &dn);
    br_x509_decoder_push(&dc, der, len);
    const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
    if (pk == NULL || dn.oom) {
        snprintf(err, cap, "certificate %zu: cannot decode (BearSSL error %d)", t->count + 1,
                 br_x509_decoder_last_error(&dc));
        free(dn.p);
        return -1;
    }
    br_x509_trust_anchor ta;
    memset(&ta, 0, sizeof ta);
    ta.dn.data = dn.p;
    ta.dn.len = dn.len;
    ta.flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
    ta.pkey.key_type = pk->key_type;
    int ok = 0;
    if (pk->key_type == BR_KEYTYPE_RSA) {
        ta.pkey.key.rsa.n = dup_bytes(pk->key.rsa.n, pk->key.rsa.nlen);
        ta.pkey.key.rsa.nlen = pk->key.rsa.nlen;
        ta.pkey.key.rsa.e = dup_bytes(pk->key.rsa.e, pk->key.rsa.elen);
        ta.pkey.key.rsa.elen = pk->key.rsa.elen;
        ok = ta.pkey.key.rsa.n && ta.pkey.key.rsa.e;
    } else if (pk->key_type == BR_KEYTYPE_EC) {
        ta.pkey.key.ec.curve = pk->key.ec.curve;
        ta.pkey.key.ec.q = dup_bytes(pk->key.ec.q, pk->key.ec.qlen);
        ta.pkey.key.ec.qlen = pk->key.ec.qlen;
        ok = ta.pkey.key.ec.q != NULL;
    } else {
        snprintf(err, cap, "certificate %zu: unsupported key type", t->count + 1);
        free(dn.p);
        return -1;
    }
    if (ok && t->count == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        br_x509_trust_anchor *p = realloc(t->ta, ncap * sizeof *p);
        if (p) {
            t->ta = p;
            t->cap = ncap;
        } else {
            ok = 0;
        }
    }
    if (!ok) {
        free_anchor(&ta);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    t->ta[t->count++] = ta;
    return 0;
}

void tlstrust_init(tlstrust *t) { memset(t, 0, sizeof *t); }

int tlstrust_add_pem(tlstrust *t, const char *pem, size_t len, char *err, size_t err_cap)
{
    br_pem_decoder_context pc;
    br_pem_decoder_init(&pc);
    buf der = { 0 };
    int added = 0, in_cert = 0, rc = 0;
    const char *p = pem;
    size_t left = len;
    /* A final newline lets the decoder see the last END line. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        if (pass == 1) {
            p = "\n";
            left = 1;
        }
        while (left > 0 && rc == 0) {
            size_t n = br_pem_decoder_push(&pc, p, left);
            p += n;
            left -= n;
            switch (br_pem_decoder_event(&pc)) {
            case BR_PEM_BEGIN_OBJ:
                in_cert = strcmp(br_pem_decoder_name(&pc), "CERTIFICATE") == 0;
                der.len = 0;
                br_pem_decoder_setdest(&pc, in_cert ? buf_add : NULL, in_cert ? &der : NULL);
                break;
            case BR_PEM_END_OBJ:
                if (in_cert) {
                    if (der.oom) {
                        snprintf(err, err_cap, "out of memory");
                        rc = -1;
                    } else if (add_der(t, der.p, der.len, err, err_cap) < 0) {
                        rc = -1;
                    } else {
                        added++;
                    }
                }
                in_cert = 0;
                break;
            case BR_PEM_ERROR:
                snprintf(err, err_cap, "malformed PEM");
                rc = -1;
                break;
            default:
                break;
            }
        }
    }
    free(der.p);
    return rc < 0 ? -1 : added;
}

int tlstrust_add_file(tlstrust *t, const char *path, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = malloc(TLSTRUST_FILE_MAX);
    size_t len = text ? fread(text, 1, TLSTRUST_FILE_MAX, f) : 0;
    int bad = ferror(f) || text == NULL;
    fclose(f);
    if (bad) {
        snprintf(err, err_cap, "%s: cannot read", path);
        free(text);
        return -1;
    }
    char why[200];
    int n = tlstrust_add_pem(t, text, len, why, sizeof why);
    free(text);
    if (n < 0)
        snprintf(err, err_cap, "%s: %s", path, why);
    return n;
}

void tlstrust_free(tlstrust *t)
{
    for (size_t i = 0; i < t->count; i++)
        free_anchor(&t->ta[i]);
    free(t->ta);
    memset(t, 0, sizeof *t);
}
