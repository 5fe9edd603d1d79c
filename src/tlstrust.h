/* tlstrust: X.509 trust anchors for BearSSL, read from PEM files (the
 * system CA bundle, Caddy's local root, a file given by the user). Used by
 * the list fetcher and doctor; never on the relay path. */
#ifndef TGF_TLSTRUST_H
#define TGF_TLSTRUST_H

#include <stddef.h>

#include <bearssl.h>

/* Debian's bundle, also where the image keeps its CA certificates. */
#define TLSTRUST_SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

typedef struct {
    br_x509_trust_anchor *ta;   /* owned, with their dn and key bytes */
    size_t count, cap;
} tlstrust;

void tlstrust_init(tlstrust *t);
/* Adds every CERTIFICATE in the PEM file at path. Returns the number added
 * (0 when the file holds none), or -1 with err set (cannot read, bad PEM,
 * unsupported key). */
int tlstrust_add_file(tlstrust *t, const char *path, char *err, size_t err_cap);
/* Adds every CERTIFICATE in PEM text. Same returns. */
int tlstrust_add_pem(tlstrust *t, const char *pem, size_t len, char *err, size_t err_cap);
void tlstrust_free(tlstrust *t);

#endif
