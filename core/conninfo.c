#include "conninfo.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"

/* The value sets libpq's documentation gives ("Parameter Key Words");
 * `since` is the first libpq (PQlibVersion()) that takes a value. A libpq
 * newer than the last release described here may take values these lists
 * lack, so with one the enumerated checks are left to libpq. */
#define LAST_DESCRIBED_LIBPQ_MAJOR 18

typedef struct allowed_value {
    const char *name;
    int since;
} allowed_value;

typedef enum value_rule {
    RULE_ONE_OF,          /* exactly one of the values */
    RULE_ONE_OF_ANY_CASE, /* one of them in any case; empty means unset */
    RULE_AUTH_METHODS,    /* require_auth: a list of them, below */
    RULE_INTEGER,         /* an int, as libpq reads it */
    RULE_PORTS            /* port numbers, comma-separated, empty: default */
} value_rule;

typedef struct keyword_rule {
    const char *keyword;
    value_rule rule;
    const allowed_value *values; /* ends with a NULL name */
} keyword_rule;

static const allowed_value ssl_modes[] = {
    {"disable", 0},   {"allow", 0},       {"prefer", 0}, {"require", 0},
    {"verify-ca", 0}, {"verify-full", 0}, {NULL, 0}};
static const allowed_value disable_prefer_require[] = {
    {"disable", 0}, {"prefer", 0}, {"require", 0}, {NULL, 0}};
static const allowed_value session_attrs[] = {{"any", 0},
                                              {"read-write", 0},
                                              {"read-only", 140000},
                                              {"primary", 140000},
                                              {"standby", 140000},
                                              {"prefer-standby", 140000},
                                              {NULL, 0}};
static const allowed_value balance_modes[] = {
    {"disable", 0}, {"random", 0}, {NULL, 0}};
static const allowed_value ssl_negotiations[] = {
    {"postgres", 0}, {"direct", 0}, {NULL, 0}};
static const allowed_value ssl_cert_modes[] = {
    {"disable", 0}, {"allow", 0}, {"require", 0}, {NULL, 0}};
static const allowed_value tls_versions[] = {
    {"TLSv1", 0}, {"TLSv1.1", 0}, {"TLSv1.2", 0}, {"TLSv1.3", 0}, {NULL, 0}};
static const allowed_value auth_methods[] = {
    {"password", 0},      {"md5", 0},  {"gss", 0},        {"sspi", 0},
    {"scram-sha-256", 0}, {"none", 0}, {"oauth", 180000}, {NULL, 0}};

/* Only keywords the installed libpq knows are checked: the others are not
 * among its options (and PQconninfoParse refuses them). */
static const keyword_rule keyword_rules[] = {
    {"sslmode", RULE_ONE_OF, ssl_modes},
    {"gssencmode", RULE_ONE_OF, disable_prefer_require},
    {"channel_binding", RULE_ONE_OF, disable_prefer_require},
    {"target_session_attrs", RULE_ONE_OF, session_attrs},
    {"load_balance_hosts", RULE_ONE_OF, balance_modes},
    {"sslnegotiation", RULE_ONE_OF, ssl_negotiations},
    {"sslcertmode", RULE_ONE_OF, ssl_cert_modes},
    {"ssl_min_protocol_version", RULE_ONE_OF_ANY_CASE, tls_versions},
    {"ssl_max_protocol_version", RULE_ONE_OF_ANY_CASE, tls_versions},
    {"require_auth", RULE_AUTH_METHODS, auth_methods},
    {"port", RULE_PORTS, NULL},
    {"connect_timeout", RULE_INTEGER, NULL},
    {"keepalives", RULE_INTEGER, NULL},
    {"keepalives_idle", RULE_INTEGER, NULL},
    {"keepalives_interval", RULE_INTEGER, NULL},
    {"keepalives_count", RULE_INTEGER, NULL},
    {"tcp_user_timeout", RULE_INTEGER, NULL},
};

#define KEYWORD_RULE_COUNT (sizeof keyword_rules / sizeof keyword_rules[0])

bool conninfo_is_connection_string(const char *conninfo)
{
    return strchr(conninfo, '=') || strncmp(conninfo, "postgres://", 11) == 0 ||
           strncmp(conninfo, "postgresql://", 13) == 0;
}

static bool value_allowed(const allowed_value *values, const char *s,
                          size_t len, bool any_case)
{
    int version = PQlibVersion();
    for (const allowed_value *v = values; v->name; v++) {
        if (v->since > version || strlen(v->name) != len)
            continue;
        if (any_case ? strncasecmp(v->name, s, len) == 0
                     : strncmp(v->name, s, len) == 0)
            return true;
    }
    return false;
}

/* "a, b or c": the values this libpq takes. */
static void describe_values(strbuf *sb, const allowed_value *values)
{
    int version = PQlibVersion();
    size_t count = 0, total = 0;
    for (const allowed_value *v = values; v->name; v++)
        total += v->since <= version;
    for (const allowed_value *v = values; v->name; v++) {
        if (v->since > version)
            continue;
        count++;
        if (count > 1)
            sbuf_append_str(sb, count == total ? " or " : ", ");
        sbuf_append_str(sb, v->name);
    }
}

/* libpq reads integers with strtol: leading and trailing white space and a
 * sign are fine, anything else and values past an int are not. */
static bool parse_libpq_int(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno != 0 || v < -2147483647L - 1 || v > 2147483647L)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    *out = v;
    return *end == '\0';
}

/* Each comma-separated item is empty (the default port) or 1-65535. */
static bool ports_valid(const char *s)
{
    char item[64];
    for (;;) {
        size_t len = strcspn(s, ",");
        long port;
        if (len >= sizeof item)
            return false;
        memcpy(item, s, len);
        item[len] = '\0';
        if (len > 0 &&
            (!parse_libpq_int(item, &port) || port < 1 || port > 65535))
            return false;
        if (s[len] == '\0')
            return true;
        s += len + 1;
    }
}

/* require_auth: empty, or methods separated by commas, each at most once,
 * either all or none negated with '!'. */
static bool auth_methods_valid(const char *s, strbuf *why)
{
    const char *seen[16];
    size_t nseen = 0;
    int negated = -1;
    if (*s == '\0')
        return true;
    for (;;) {
        size_t len = strcspn(s, ",");
        bool neg = *s == '!';
        const char *name = s + neg;
        size_t name_len = len - neg;
        if (!value_allowed(auth_methods, name, name_len, false)) {
            sbuf_append_str(why, "expected methods among ");
            describe_values(why, auth_methods);
            sbuf_append_str(why, ", separated by commas, each optionally "
                                 "negated with \"!\"");
            return false;
        }
        if (negated >= 0 && negated != neg) {
            sbuf_append_str(why, "negated and plain methods are mixed");
            return false;
        }
        negated = neg;
        for (size_t i = 0; i < nseen; i++) {
            if (strncmp(seen[i], name, name_len) == 0 &&
                (seen[i][name_len] == ',' || seen[i][name_len] == '\0')) {
                sbuf_appendf(why, "method \"%.*s\" is given twice",
                             (int)name_len, name);
                return false;
            }
        }
        if (nseen < sizeof seen / sizeof seen[0])
            seen[nseen++] = name;
        if (s[len] == '\0')
            return true;
        s += len + 1;
    }
}

/* True when value is acceptable; else why says what was expected. */
static bool value_valid(const keyword_rule *r, const char *value, strbuf *why)
{
    bool enumerated_known =
        PQlibVersion() / 10000 <= LAST_DESCRIBED_LIBPQ_MAJOR;
    long number;
    switch (r->rule) {
    case RULE_ONE_OF:
    case RULE_ONE_OF_ANY_CASE: {
        bool any_case = r->rule == RULE_ONE_OF_ANY_CASE;
        if (!enumerated_known || (any_case && *value == '\0') ||
            value_allowed(r->values, value, strlen(value), any_case))
            return true;
        sbuf_append_str(why, "expected ");
        describe_values(why, r->values);
        return false;
    }
    case RULE_AUTH_METHODS:
        return !enumerated_known || auth_methods_valid(value, why);
    case RULE_INTEGER:
        if (parse_libpq_int(value, &number))
            return true;
        sbuf_append_str(why, "expected an integer");
        return false;
    case RULE_PORTS:
        if (ports_valid(value))
            return true;
        sbuf_append_str(why, "expected port numbers from 1 to 65535, "
                             "separated by commas when there are several "
                             "hosts");
        return false;
    }
    return true;
}

/* Where a value came from, for the message: NULL for the connection string
 * itself, else the environment variable. */
static void value_error(char *err, size_t errlen, const char *keyword,
                        const char *value, const char *envvar, const char *why)
{
    char from[96] = "";
    if (envvar)
        snprintf(from, sizeof from, " (from the environment variable %s)",
                 envvar);
    snprintf(err, errlen,
             "connection option %s%s: invalid value \"%.64s%s\" "
             "(%s)",
             keyword, from, value, strlen(value) > 64 ? "..." : "", why);
}

static const PQconninfoOption *find_option(const PQconninfoOption *opts,
                                           const char *keyword)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o;
    return NULL;
}

/* The value a connection uses for keyword, and the environment variable it
 * came from (NULL when given in the connection string or a default). */
typedef struct used_value {
    const char *value;
    const char *envvar;
} used_value;

static used_value value_used(const PQconninfoOption *given,
                             const PQconninfoOption *defaults,
                             const char *keyword)
{
    used_value u = {NULL, NULL};
    const PQconninfoOption *o = find_option(given, keyword);
    if (o && o->val)
        u.value = o->val;
    else if ((o = find_option(defaults, keyword)) && o->val) {
        u.value = o->val;
        if (o->envvar && getenv(o->envvar))
            u.envvar = o->envvar;
    }
    return u;
}

static bool check_values(const PQconninfoOption *given,
                         const PQconninfoOption *defaults, char *err,
                         size_t errlen)
{
    bool ok = true;
    strbuf why = STRBUF_INIT;
    for (size_t i = 0; i < KEYWORD_RULE_COUNT && ok; i++) {
        const keyword_rule *r = &keyword_rules[i];
        used_value u = value_used(given, defaults, r->keyword);
        if (!u.value)
            continue;
        sbuf_reset(&why);
        ok = value_valid(r, u.value, &why);
        if (!ok)
            value_error(err, errlen, r->keyword, u.value, u.envvar, why.data);
    }
    sbuf_free(&why);
    return ok;
}

static size_t count_items(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* Combinations libpq refuses before it connects. */
static bool check_combinations(const PQconninfoOption *given,
                               const PQconninfoOption *defaults, char *err,
                               size_t errlen)
{
    const char *host = value_used(given, defaults, "host").value;
    const char *hostaddr = value_used(given, defaults, "hostaddr").value;
    const char *port = value_used(given, defaults, "port").value;
    size_t nhosts = 1;
    if (hostaddr && *hostaddr)
        nhosts = count_items(hostaddr);
    else if (host && *host)
        nhosts = count_items(host);
    if (host && *host && hostaddr && *hostaddr &&
        count_items(host) != count_items(hostaddr)) {
        snprintf(err, errlen,
                 "connection options host and hostaddr: %zu host names for "
                 "%zu addresses",
                 count_items(host), count_items(hostaddr));
        return false;
    }
    if (port && *port && count_items(port) != 1 &&
        count_items(port) != nhosts) {
        size_t nports = count_items(port);
        snprintf(err, errlen,
                 "connection option port: %zu port numbers for %zu host%s "
                 "(give one port for all hosts, or one per host)",
                 nports, nhosts, nhosts == 1 ? "" : "s");
        return false;
    }
    const char *negotiation =
        value_used(given, defaults, "sslnegotiation").value;
    const char *sslmode = value_used(given, defaults, "sslmode").value;
    if (negotiation && strcmp(negotiation, "direct") == 0 && sslmode &&
        strcmp(sslmode, "require") != 0 && strcmp(sslmode, "verify-ca") != 0 &&
        strcmp(sslmode, "verify-full") != 0) {
        snprintf(err, errlen,
                 "connection option sslnegotiation=direct needs sslmode "
                 "require, verify-ca or verify-full, not \"%s\"",
                 sslmode);
        return false;
    }
    return true;
}

/* NULL for a database name (or no conninfo): nothing is written in it. */
static bool parse_given(const char *conninfo, PQconninfoOption **given,
                        char *err, size_t errlen)
{
    *given = NULL;
    if (!conninfo || !conninfo_is_connection_string(conninfo))
        return true;
    char *why = NULL;
    *given = PQconninfoParse(conninfo, &why);
    PQfreemem(why);
    if (*given)
        return true;
    snprintf(err, errlen,
             "invalid connection string (libpq's message is "
             "withheld: it could quote a password)");
    return false;
}

bool conninfo_check_given(const char *conninfo, char *err, size_t errlen)
{
    PQconninfoOption *given;
    if (!parse_given(conninfo, &given, err, errlen))
        return false;
    bool ok = check_values(given, NULL, err, errlen);
    PQconninfoFree(given);
    return ok;
}

bool conninfo_check(const char *conninfo, char *err, size_t errlen)
{
    PQconninfoOption *given;
    if (!parse_given(conninfo, &given, err, errlen))
        return false;
    const PQconninfoOption *service = find_option(given, "service");
    const char *env_service = getenv("PGSERVICE");
    bool service_named = (service && service->val && *service->val) ||
                         (env_service && *env_service);
    /* With a service, what is not in the connection string may come from
     * the service file, which only libpq reads. */
    PQconninfoOption *defaults = service_named ? NULL : PQconndefaults();
    bool ok =
        check_values(given, defaults, err, errlen) &&
        (service_named || check_combinations(given, defaults, err, errlen));
    PQconninfoFree(defaults);
    PQconninfoFree(given);
    return ok;
}

char *conninfo_value(const char *conninfo, const char *keyword)
{
    char ignored[256];
    PQconninfoOption *given;
    if (!parse_given(conninfo, &given, ignored, sizeof ignored))
        return NULL;
    PQconninfoOption *defaults = PQconndefaults();
    used_value u = value_used(given, defaults, keyword);
    char *value = u.value && *u.value ? xstrdup(u.value) : NULL;
    PQconninfoFree(defaults);
    PQconninfoFree(given);
    return value;
}

/* ---- redaction ---- */

/* libpq marks its secret keywords with dispchar "*"; the names are checked
 * as well in case an older libpq leaves sslpassword unmarked. */
static bool is_secret_keyword(const PQconninfoOption *o)
{
    return (o->dispchar && o->dispchar[0] == '*') ||
           strcmp(o->keyword, "password") == 0 ||
           strcmp(o->keyword, "sslpassword") == 0;
}

/* Quotes as libpq's key=value syntax requires, so the output can be pasted
 * back (with the password filled in). */
static void append_conninfo_value(strbuf *sb, const char *value)
{
    bool plain = *value != '\0';
    for (const char *p = value; *p && plain; p++) {
        if (isspace((unsigned char)*p) || *p == '\'' || *p == '\\' || *p == '=')
            plain = false;
    }
    if (plain) {
        sbuf_append_str(sb, value);
        return;
    }
    sbuf_append_char(sb, '\'');
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sbuf_append_char(sb, '\\');
        sbuf_append_char(sb, *p);
    }
    sbuf_append_char(sb, '\'');
}

char *conninfo_redacted(const char *conninfo)
{
    if (!conninfo)
        return xstrdup("");
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts) {
        /* The error text may quote the input, password and all. */
        if (errmsg)
            PQfreemem(errmsg);
        return xstrdup("(unparseable conninfo)");
    }
    strbuf sb = STRBUF_INIT;
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (sb.len > 0)
            sbuf_append_char(&sb, ' ');
        sbuf_appendf(&sb, "%s=", o->keyword);
        if (is_secret_keyword(o))
            sbuf_append_str(&sb, "********");
        else
            append_conninfo_value(&sb, o->val);
    }
    PQconninfoFree(opts);
    return sbuf_detach(&sb);
}

/* ---- the database ---- */

char *conninfo_dbname(const char *conninfo)
{
    char *dbname = NULL, *user = NULL;
    if (conninfo && !conninfo_is_connection_string(conninfo))
        return xstrdup(conninfo); /* a bare database name */
    PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
    PQconninfoOption *defaults = PQconndefaults();
    for (PQconninfoOption *set = opts ? opts : defaults; set;
         set = set == opts ? defaults : NULL) {
        for (PQconninfoOption *o = set; o && o->keyword; o++) {
            if (!o->val || !*o->val)
                continue;
            if (!dbname && strcmp(o->keyword, "dbname") == 0)
                dbname = xstrdup(o->val);
            if (!user && strcmp(o->keyword, "user") == 0)
                user = xstrdup(o->val);
        }
    }
    PQconninfoFree(opts);
    PQconninfoFree(defaults);
    if (!dbname)
        dbname = user ? user : xstrdup("");
    else
        free(user);
    return dbname;
}
