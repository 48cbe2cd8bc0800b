/* Standard Webhooks signing: the specification's own example (secret,
 * id, timestamp and payload with the signature its reference libraries
 * compute), unpadded secrets, and the secret forms refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "webhook_sign.h"

static const char spec_secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char spec_id[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
static const char spec_timestamp[] = "1614265330";
static const char spec_body[] = "{\"test\": 2432232314}";

static void sign_with(const char *secret, const char *expected)
{
    unsigned char *key = NULL;
    size_t key_len = 0;
    char err[200] = "", sig[WEBHOOK_SIGNATURE_MAX];
    CHECK(webhook_secret_decode(secret, &key, &key_len, err, sizeof err));
    CHECK(key != NULL);
    if (!key)
        return;
    CHECK(webhook_sign(key, key_len, spec_id, spec_timestamp, spec_body,
                       strlen(spec_body), sig));
    CHECK_STR(sig, expected);
    free(key);
}

static void refused(const char *secret, const char *why)
{
    unsigned char *key = NULL;
    size_t key_len = 0;
    char err[200] = "";
    CHECK(!webhook_secret_decode(secret, &key, &key_len, err, sizeof err));
    CHECK(key == NULL);
    CHECK(strncmp(err, "secret: ", 8) == 0 && strstr(err, why));
}

int main(void)
{
    sign_with(spec_secret, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* The same base64 without its last quad's two characters: 22 bytes,
     * as the reference libraries decode it (unpadded). */
    sign_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa",
              "v1,NGhpgGclx7oy4HF/0nlvRC/YBnFJ6sJDQJjtt4tmU4s=");
    refused("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_");
    refused("whsec_", "base64");
    refused("whsec_abc*", "base64");
    refused("whsec_abcde", "base64"); /* 5 characters: no whole byte */
    refused("whsec_ab=c", "base64");
    return check_summary();
}
