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

/* Standard base64 with its padding: whole quads, '=' only at the end. */
static bool base64_well_formed(const char *s, size_t len, size_t *padding)
{
    size_t pad = 0;
    if (len == 0 || len % 4 != 0)
        return false;
    while (pad < 2 && s[len - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++)
        if (!is_base64_char(s[i]))
            return false;
    *padding = pad;
    return true;
}

bool webhook_secret_decode(const char *secret, unsigned char **key,
                           size_t *key_len, char *err, size_t errlen)
{
    static const char prefix[] = WEBHOOK_SECRET_PREFIX;
    size_t pad = 0;
    *key = NULL;
    if (strncmp(secret, prefix, sizeof prefix - 1) != 0) {
        snprintf(err, errlen,
                 "secret: must be whsec_ followed by the key in base64 (the "
                 "Standard Webhooks form)");
        return false;
    }
    const char *b64 = secret + sizeof prefix - 1;
    size_t len = strlen(b64);
    if (!base64_well_formed(b64, len, &pad)) {
        snprintf(err, errlen,
                 "secret: the part after whsec_ is not valid base64 (standard "
                 "alphabet, padded with '=')");
        return false;
    }
    unsigned char *out = malloc(len / 4 * 3 + 1);
    if (!out)
        abort();
    int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
    if (n < 0 || (size_t)n < pad || (size_t)n - pad == 0) {
        free(out);
        snprintf(err, errlen, "secret: the key after whsec_ is empty");
        return false;
    }
    *key = out;
    *key_len = (size_t)n - pad; /* EVP_DecodeBlock counts padding bytes */
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
