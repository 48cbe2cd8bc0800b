#include "webhook_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Standard base64, padded with '=' or not (secrets are given both ways;
 * the specification's libraries accept either). *padded_len is the length
 * with its padding. */
static bool base64_well_formed(const char *s, size_t len, size_t *padded_len)
{
    size_t pad = 0;
    while (pad < len && pad < 2 && s[len - 1 - pad] == '=')
        pad++;
    size_t data = len - pad;
    if (data == 0 || data % 4 == 1 || (pad && len % 4 != 0))
        return false;
    for (size_t i = 0; i < data; i++)
        if (!is_base64_char(s[i]))
            return false;
    *padded_len = (data + 3) / 4 * 4;
    return true;
}

bool webhook_secret_decode(const char *secret, unsigned char **key,
                           size_t *key_len, char *err, size_t errlen)
{
    static const char prefix[] = WEBHOOK_SECRET_PREFIX;
    *key = NULL;
    if (strncmp(secret, prefix, sizeof prefix - 1) != 0) {
        snprintf(err, errlen,
                 "secret: must be whsec_ followed by the key in base64 (the "
                 "Standard Webhooks form)");
        return false;
    }
    const char *b64 = secret + sizeof prefix - 1;
    size_t len = strlen(b64), padded_len = 0;
    if (!base64_well_formed(b64, len, &padded_len)) {
        snprintf(err, errlen,
                 "secret: the part after whsec_ is not a base64 key "
                 "(standard alphabet)");
        return false;
    }
    /* EVP_DecodeBlock takes whole quads and counts padding as zero bytes. */
    char *quads = calloc(padded_len + 1, 1);
    unsigned char *out = malloc(padded_len / 4 * 3 + 1);
    if (!quads || !out)
        abort();
    memcpy(quads, b64, len);
    size_t data = strcspn(quads, "=");
    memset(quads + data, '=', padded_len - data);
    int n = EVP_DecodeBlock(out, (const unsigned char *)quads, (int)padded_len);
    memset(quads, 0, padded_len);
    free(quads);
    if (n < 0) {
        free(out);
        snprintf(err, errlen, "secret: the part after whsec_ is not base64");
        return false;
    }
    *key = out;
    *key_len = (size_t)n - (padded_len - data); /* less the padding */
    return true;
}

/* HMAC-SHA256 of the pieces, one after another, into digest (32 bytes). */
static bool hmac_sha256(const unsigned char *key, size_t key_len,
                        const char *const *pieces, const size_t *lens,
                        size_t npieces, unsigned char *digest)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end()};
    size_t out_len = 0;
    bool ok = ctx && EVP_MAC_init(ctx, key, key_len, params);
    for (size_t i = 0; ok && i < npieces; i++)
        ok = EVP_MAC_update(ctx, (const unsigned char *)pieces[i], lens[i]);
    ok = ok && EVP_MAC_final(ctx, digest, &out_len, 32) && out_len == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

bool webhook_sign(const unsigned char *key, size_t key_len, const char *id,
                  const char *timestamp, const char *body, size_t body_len,
                  char out[WEBHOOK_SIGNATURE_MAX])
{
    const char *pieces[] = {id, ".", timestamp, ".", body ? body : ""};
    size_t lens[] = {strlen(id), 1, strlen(timestamp), 1, body ? body_len : 0};
    unsigned char digest[32];
    if (!hmac_sha256(key, key_len, pieces, lens, 5, digest))
        return false;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, digest, sizeof digest);
    return true;
}
