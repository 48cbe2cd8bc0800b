/* SigV4: every case of the AWS Signature Version 4 test suite (a directory
 * given as argv[1]; a missing or empty directory fails the test), the
 * signing-key example of the AWS documentation, and a Kinesis PutRecords
 * request with a session token. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "../check.h"
#include "sigv4.h"

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    char *data;
    long size;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)size + 1);
    if (fread(data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(data);
        return NULL;
    }
    data[size] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)size;
    return data;
}

static void strip_trailing_newlines(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

typedef struct parsed_request {
    char *method, *path, *query;
    sigv4_header headers[32];
    char *header_storage[32];
    size_t nheaders;
    const char *body;
    size_t body_len;
    char *text;
} parsed_request;

/* Parses request.txt: request line, headers (continuation lines start with
 * whitespace), an empty line, the body. */
static bool parse_request(char *text, size_t len, parsed_request *r)
{
    char *line_end = strchr(text, '\n');
    char *line = text, *p, *sp1, *sp2;

    memset(r, 0, sizeof *r);
    r->text = text;
    if (!line_end)
        line_end = text + len;
    *line_end = '\0';
    sp1 = strchr(line, ' ');
    sp2 = strrchr(line, ' ');
    if (!sp1 || sp1 == sp2)
        return false;
    *sp1 = '\0';
    *sp2 = '\0';
    r->method = line;
    r->path = sp1 + 1;
    p = strchr(r->path, '?');
    if (p) {
        *p = '\0';
        r->query = p + 1;
    }
    p = line_end < text + len ? line_end + 1 : text + len;
    while (p < text + len) {
        char *end = strchr(p, '\n');
        char *colon;

        if (!end)
            end = text + len;
        *end = '\0';
        if (*p == '\0') {
            r->body = end + 1 <= text + len ? end + 1 : text + len;
            r->body_len = (size_t)(text + len - r->body);
            return true;
        }
        if ((*p == ' ' || *p == '\t') && r->nheaders > 0) {
            size_t i = r->nheaders - 1;
            char *joined;

            if (asprintf(&joined, "%s\n%s", r->headers[i].value, p) < 0)
                return false;
            free(r->header_storage[i]);
            r->header_storage[i] = joined;
            r->headers[i].value = joined;
        } else {
            colon = strchr(p, ':');
            if (!colon || r->nheaders == 32)
                return false;
            *colon = '\0';
            r->headers[r->nheaders].name = p;
            r->header_storage[r->nheaders] = strdup(colon + 1);
            r->headers[r->nheaders].value = r->header_storage[r->nheaders];
            r->nheaders++;
        }
        p = end + 1;
    }
    r->body = NULL;
    r->body_len = 0;
    return true;
}

static void free_request(parsed_request *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->header_storage[i]);
    free(r->text);
}

static const char *authorization_line(char *signed_request)
{
    char *p = strstr(signed_request, "Authorization:");
    char *end;

    if (!p)
        return NULL;
    p += strlen("Authorization:");
    end = strchr(p, '\n');
    if (end)
        *end = '\0';
    return p;
}

/* Returns false when the case could not be run at all. */
static bool run_case(const char *dir, const char *name)
{
    char casedir[4096];
    char *context_text, *request_text, *canonical, *sts, *signature,
        *signed_req;
    size_t request_len = 0;
    json_t *context;
    json_error_t jerr;
    parsed_request req;
    sigv4_request sreq;
    sigv4_params params;
    sigv4_signature sig;
    struct tm tm;
    char err[256];
    bool ok;

    snprintf(casedir, sizeof casedir, "%s/%s", dir, name);
    context_text = read_file(casedir, "context.json", NULL);
    request_text = read_file(casedir, "request.txt", &request_len);
    canonical = read_file(casedir, "header-canonical-request.txt", NULL);
    sts = read_file(casedir, "header-string-to-sign.txt", NULL);
    signature = read_file(casedir, "header-signature.txt", NULL);
    signed_req = read_file(casedir, "header-signed-request.txt", NULL);
    if (!context_text || !request_text || !canonical || !sts || !signature) {
        printf("# %s: incomplete case\n", name);
        CHECK(!"case files readable");
        free(context_text);
        free(request_text);
        free(canonical);
        free(sts);
        free(signature);
        free(signed_req);
        return false;
    }
    strip_trailing_newlines(signature);
    context = json_loads(context_text, 0, &jerr);
    CHECK(context != NULL);
    CHECK(parse_request(request_text, request_len, &req));

    memset(&params, 0, sizeof params);
    params.access_key_id = json_string_value(json_object_get(
        json_object_get(context, "credentials"), "access_key_id"));
    params.secret_access_key = json_string_value(json_object_get(
        json_object_get(context, "credentials"), "secret_access_key"));
    params.session_token = json_string_value(
        json_object_get(json_object_get(context, "credentials"), "token"));
    params.region = json_string_value(json_object_get(context, "region"));
    params.service = json_string_value(json_object_get(context, "service"));
    params.normalize_path = json_is_true(json_object_get(context, "normalize"));
    params.sign_body = json_is_true(json_object_get(context, "sign_body"));
    params.omit_session_token =
        json_is_true(json_object_get(context, "omit_session_token"));
    memset(&tm, 0, sizeof tm);
    strptime(json_string_value(json_object_get(context, "timestamp")),
             "%Y-%m-%dT%H:%M:%SZ", &tm);
    params.when = timegm(&tm);

    sreq = (sigv4_request){.method = req.method,
                           .path = req.path,
                           .query = req.query,
                           .headers = req.headers,
                           .nheaders = req.nheaders,
                           .body = req.body,
                           .body_len = req.body_len};
    ok = sigv4_sign(&sreq, &params, &sig, err, sizeof err);
    printf("# case %s\n", name);
    CHECK(ok);
    if (ok) {
        CHECK_STR(sig.canonical_request, canonical);
        CHECK_STR(sig.string_to_sign, sts);
        CHECK_STR(sig.signature, signature);
        if (signed_req) {
            const char *expected = authorization_line(signed_req);

            CHECK(expected != NULL);
            CHECK_STR(sig.authorization, expected);
        }
        sigv4_signature_free(&sig);
    }
    json_decref(context);
    free_request(&req);
    free(context_text);
    free(canonical);
    free(sts);
    free(signature);
    free(signed_req);
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_suite(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *names[256];
    size_t n = 0, ran = 0;

    if (!d) {
        printf("# cannot open the SigV4 test suite at %s\n", dir);
        CHECK(!"SigV4 test suite directory present");
        return;
    }
    while ((de = readdir(d)) && n < 256) {
        char path[4096];
        struct stat st;

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        if (run_case(dir, names[i]))
            ran++;
        free(names[i]);
    }
    printf("# ran %zu SigV4 suite cases\n", ran);
    /* The published suite has 38 header-signing cases; fewer means the data
     * went missing, which must fail rather than pass quietly. */
    CHECK(ran >= 38);
}

/* "Examples of how to derive a signing key" in the AWS documentation. */
static void test_signing_key_docs_example(void)
{
    unsigned char key[32];
    char hex[65];
    static const char digits[] = "0123456789abcdef";

    CHECK(sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                            "20120215", "us-east-1", "iam", key));
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[key[i] >> 4];
        hex[2 * i + 1] = digits[key[i] & 15];
    }
    hex[64] = '\0';
    CHECK_STR(
        hex,
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

/* A PutRecords request as the sink sends it, with temporary credentials.
 * The expected values were derived independently (Python hashlib/hmac,
 * following the signing steps of the AWS documentation by hand). */
static void test_putrecords_session_token(void)
{
    static const char token[] =
        "AQoDYXdzEPT//////////"
        "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpS"
        "PfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/"
        "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75"
        "Y"
        "U9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
        "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
    static const char body[] =
        "{\"StreamName\":\"orders\",\"Records\":[{\"Data\":"
        "\"eyJvcCI6Imluc2VydCJ9\",\"PartitionKey\":\"public.orders\"}]}";
    sigv4_header headers[] = {
        {"Host", "kinesis.us-east-1.amazonaws.com"},
        {"Content-Type", "application/x-amz-json-1.1"},
        {"X-Amz-Target", "Kinesis_20131202.PutRecords"},
    };
    sigv4_request req = {.method = "POST",
                         .path = "/",
                         .headers = headers,
                         .nheaders = 3,
                         .body = body,
                         .body_len = strlen(body)};
    sigv4_params params = {.access_key_id = "AKIDEXAMPLE",
                           .secret_access_key =
                               "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                           .session_token = token,
                           .region = "us-east-1",
                           .service = "kinesis",
                           .when = 1440938160, /* 2015-08-30T12:36:00Z */
                           .normalize_path = true};
    sigv4_signature sig;
    char err[256];
    char expected_canonical[2048];

    snprintf(expected_canonical, sizeof expected_canonical,
             "POST\n/\n\ncontent-type:application/x-amz-json-1.1\n"
             "host:kinesis.us-east-1.amazonaws.com\n"
             "x-amz-date:20150830T123600Z\nx-amz-security-token:%s\n"
             "x-amz-target:Kinesis_20131202.PutRecords\n\n"
             "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n"
             "04a100bb0d76c0b295fe9d4605455c26f9b3b7e0ddae2a4bb8c700a338a1d2cb",
             token);
    CHECK(sigv4_sign(&req, &params, &sig, err, sizeof err));
    CHECK_STR(sig.amz_date, "20150830T123600Z");
    CHECK_STR(
        sig.payload_sha256,
        "04a100bb0d76c0b295fe9d4605455c26f9b3b7e0ddae2a4bb8c700a338a1d2cb");
    CHECK_STR(sig.canonical_request, expected_canonical);
    CHECK_STR(
        sig.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n"
        "20150830/us-east-1/kinesis/aws4_request\n"
        "2ebcd0628f55fad2bb5df652060018c7396a1b048dabe8a9e6501fecacee9074");
    CHECK_STR(
        sig.signature,
        "31adf61a447e7e501952359d111c630f9d61f441ed89ab8827f0232a8fd903ea");
    CHECK_STR(sig.authorization,
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
              "kinesis/aws4_request, SignedHeaders=content-type;host;"
              "x-amz-date;x-amz-security-token;x-amz-target, "
              "Signature=31adf61a447e7e501952359d111c630f9d61f441ed89ab8827f023"
              "2a8fd903ea");
    /* Nothing that is handed back may carry the secret key. */
    CHECK(strstr(sig.authorization, "wJalrXUtnFEMI") == NULL);
    CHECK(strstr(sig.canonical_request, "wJalrXUtnFEMI") == NULL);
    sigv4_signature_free(&sig);

    /* Without Host the request cannot be signed. */
    req.headers = headers + 1;
    req.nheaders = 2;
    CHECK(!sigv4_sign(&req, &params, &sig, err, sizeof err));
    CHECK(strstr(err, "Host") != NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: %s SIGV4_SUITE_DIR\n", argv[0]);
        CHECK(!"SigV4 test suite directory given");
    } else {
        test_suite(argv[1]);
    }
    test_signing_key_docs_example();
    test_putrecords_session_token();
    return check_summary();
}
