/* Connection option values that libpq would refuse only when connecting are
 * refused up front, from the connection string or the environment, with a
 * message naming the option and the value and never a password; and a
 * connection string made fit for logs. */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conninfo.h"

extern char **environ;

static char err[1024];

/* The caller's PG* variables would decide some cases otherwise. */
static void clear_pg_environment(void)
{
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "PG", 2) != 0)
            e++;
        if (!*e)
            return;
        char name[256];
        size_t len = strcspn(*e, "=");
        if (len >= sizeof name)
            len = sizeof name - 1;
        memcpy(name, *e, len);
        name[len] = '\0';
        unsetenv(name);
    }
}

static bool libpq_knows(const char *keyword)
{
    PQconninfoOption *opts = PQconndefaults();
    bool found = false;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        found = found || strcmp(o->keyword, keyword) == 0;
    PQconninfoFree(opts);
    return found;
}

static bool given_ok(const char *conninfo)
{
    err[0] = '\0';
    return conninfo_check_given(conninfo, err, sizeof err);
}

static bool used_ok(const char *conninfo)
{
    err[0] = '\0';
    return conninfo_check(conninfo, err, sizeof err);
}

static bool err_has(const char *fragment)
{
    if (strstr(err, fragment))
        return true;
    printf("# \"%s\" not in: %s\n", fragment, err);
    return false;
}

static void test_enumerated_values(void)
{
    static const char *const good[] = {
        "sslmode=disable",
        "sslmode=verify-full",
        "gssencmode=prefer",
        "channel_binding=require",
        "target_session_attrs=any",
        "target_session_attrs=read-write",
        "ssl_min_protocol_version=TLSv1.2",
        "ssl_max_protocol_version=tlsv1.3", /* libpq ignores case here */
        "ssl_min_protocol_version=",        /* empty: unset */
        "dbname=x host=h"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!given_ok(good[i]))
            printf("# refused %s: %s\n", good[i], err);
        CHECK(given_ok(good[i]));
    }

    CHECK(!given_ok("sslmode=bogus"));
    CHECK_STR(err, "connection option sslmode: invalid value \"bogus\" "
                   "(expected disable, allow, prefer, require, verify-ca or "
                   "verify-full)");
    CHECK(!given_ok("sslmode=REQUIRE")); /* libpq compares exactly */
    CHECK(!given_ok("sslmode=''"));
    CHECK(err_has("sslmode: invalid value \"\""));
    CHECK(!given_ok("gssencmode=allow") && err_has("gssencmode"));
    CHECK(!given_ok("channel_binding=yes") && err_has("channel_binding"));
    CHECK(!given_ok("target_session_attrs=READ-WRITE") &&
          err_has("target_session_attrs: invalid value \"READ-WRITE\""));
    CHECK(!given_ok("ssl_min_protocol_version=TLSv2") &&
          err_has("TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"));
    if (PQlibVersion() >= 140000)
        CHECK(given_ok("target_session_attrs=prefer-standby"));
    CHECK(!given_ok("postgresql://h/db?sslmode=nope") &&
          err_has("sslmode: invalid value \"nope\""));
}

/* Keywords newer than some libpq versions: checked when this libpq knows
 * them, refused by its parser when it does not. */
static void test_newer_keywords(void)
{
    static const struct {
        const char *keyword, *good, *bad;
    } cases[] = {{"load_balance_hosts", "random", "RANDOM"},
                 {"sslcertmode", "allow", "maybe"},
                 {"sslnegotiation", "postgres", "indirect"},
                 {"require_auth", "scram-sha-256,md5", "kerberos"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char good[128], bad[128];
        snprintf(good, sizeof good, "%s=%s", cases[i].keyword, cases[i].good);
        snprintf(bad, sizeof bad, "%s=%s", cases[i].keyword, cases[i].bad);
        CHECK(!given_ok(bad));
        if (libpq_knows(cases[i].keyword)) {
            CHECK(err_has(cases[i].keyword) && err_has(cases[i].bad));
            CHECK(given_ok(good));
        } else {
            CHECK(!given_ok(good) && err_has("invalid connection string"));
        }
    }
    if (!libpq_knows("require_auth"))
        return;
    CHECK(given_ok("require_auth=!md5,!password"));
    CHECK(given_ok("require_auth="));
    CHECK(!given_ok("require_auth=md5,md5") && err_has("given twice"));
    CHECK(!given_ok("require_auth=!md5,password") && err_has("mixed"));
    CHECK(!given_ok("require_auth=md5,,gss"));
}

static void test_numbers(void)
{
    static const char *const good[] = {"connect_timeout=10",
                                       "connect_timeout=-5",
                                       "connect_timeout=' 7 '",
                                       "keepalives=0",
                                       "keepalives_idle=+30",
                                       "keepalives_interval=5",
                                       "keepalives_count=3",
                                       "tcp_user_timeout=2147483647",
                                       "port=5432",
                                       "port=",
                                       "host=a,b port=5432,",
                                       "host=a,b,c port=1,,65535",
                                       "port=' 5432 '",
                                       "postgresql://a:1,b:2/db"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!used_ok(good[i]))
            printf("# refused %s: %s\n", good[i], err);
        CHECK(used_ok(good[i]));
    }
    CHECK(!given_ok("connect_timeout=10s"));
    CHECK_STR(err, "connection option connect_timeout: invalid value \"10s\" "
                   "(expected an integer)");
    CHECK(!given_ok("connect_timeout=") && err_has("connect_timeout"));
    CHECK(!given_ok("keepalives=yes") && err_has("keepalives: "));
    CHECK(!given_ok("keepalives_idle=x") && err_has("keepalives_idle"));
    CHECK(!given_ok("keepalives_interval=1.5"));
    CHECK(!given_ok("keepalives_count=99999999999"));
    CHECK(!given_ok("tcp_user_timeout=2147483648"));
    CHECK(!given_ok("port=abc") && err_has("port: invalid value \"abc\""));
    CHECK(!given_ok("port=0") && !given_ok("port=65536") &&
          !given_ok("port=-1"));
    CHECK(!given_ok("host=a,b port=5432,x") && err_has("\"5432,x\""));
    CHECK(!given_ok("port=' '"));
}

static void test_combinations(void)
{
    CHECK(!used_ok("host=a port=1,2"));
    CHECK_STR(err, "connection option port: 2 port numbers for 1 host (give "
                   "one port for all hosts, or one per host)");
    CHECK(!used_ok("host=a,b,c port=1,2") && err_has("for 3 hosts"));
    CHECK(!used_ok("host=a,b hostaddr=127.0.0.1") &&
          err_has("host and hostaddr"));
    CHECK(used_ok("host=a,b hostaddr=127.0.0.1,127.0.0.2 port=1,2"));
    /* conninfo_check_given sees one option at a time. */
    CHECK(given_ok("host=a port=1,2"));
    if (libpq_knows("sslnegotiation")) {
        CHECK(!used_ok("sslnegotiation=direct") && err_has("not \"prefer\""));
        CHECK(used_ok("sslnegotiation=direct sslmode=verify-full"));
    }
}

static void test_environment(void)
{
    setenv("PGSSLMODE", "bogus", 1);
    CHECK(!used_ok(NULL));
    CHECK_STR(err, "connection option sslmode (from the environment variable "
                   "PGSSLMODE): invalid value \"bogus\" (expected disable, "
                   "allow, prefer, require, verify-ca or verify-full)");
    CHECK(!used_ok("mydb") && err_has("PGSSLMODE"));   /* a database name */
    CHECK(!used_ok("host=h") && err_has("PGSSLMODE")); /* not given */
    CHECK(used_ok("host=h sslmode=require"));          /* given wins */
    CHECK(given_ok("host=h"));                         /* given only */
    /* With a service named, the service file may set sslmode: libpq's
     * business. */
    CHECK(used_ok("service=mine"));
    setenv("PGSERVICE", "mine", 1);
    CHECK(used_ok(NULL));
    unsetenv("PGSERVICE");
    unsetenv("PGSSLMODE");

    setenv("PGPORT", "54x", 1);
    CHECK(!used_ok("host=h") && err_has("PGPORT") && err_has("\"54x\""));
    CHECK(used_ok("host=h port=5432"));
    unsetenv("PGPORT");
    setenv("PGCONNECT_TIMEOUT", "soon", 1);
    CHECK(!used_ok(NULL) && err_has("connect_timeout") &&
          err_has("PGCONNECT_TIMEOUT"));
    unsetenv("PGCONNECT_TIMEOUT");
    setenv("PGTARGETSESSIONATTRS", "master", 1);
    CHECK(!used_ok(NULL) && err_has("PGTARGETSESSIONATTRS"));
    unsetenv("PGTARGETSESSIONATTRS");
    CHECK(used_ok(NULL));
}

static void test_no_secrets(void)
{
    CHECK(!used_ok("host=h password=Sekr1t-XYZ sslmode=bogus"));
    CHECK(strstr(err, "Sekr1t") == NULL && err_has("sslmode"));
    CHECK(!used_ok("postgresql://u:Sekr1t-XYZ@h/db?port=x"));
    CHECK(strstr(err, "Sekr1t") == NULL && err_has("port"));
    /* A malformed string: libpq's message could quote it, so none. */
    CHECK(!used_ok("host=h password='Sekr1t-XYZ"));
    CHECK(strstr(err, "Sekr1t") == NULL &&
          err_has("invalid connection string"));
    /* Long values are cut. */
    char long_value[400];
    memset(long_value, 'x', sizeof long_value);
    memcpy(long_value, "sslmode=", 8);
    long_value[sizeof long_value - 1] = '\0';
    CHECK(!used_ok(long_value) && strlen(err) < 300 && err_has("x...\""));
}

static bool contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

static void test_conninfo_redacted(void)
{
    char *r = conninfo_redacted("host=db port=5433 user=app password=s3cret "
                                "dbname=shop");
    CHECK(!contains(r, "s3cret"));
    CHECK(contains(r, "password=********"));
    CHECK(contains(r, "host=db"));
    CHECK(contains(r, "port=5433"));
    CHECK(contains(r, "dbname=shop"));
    free(r);

    r = conninfo_redacted("postgresql://app:s3cret@db.example:5433/shop"
                          "?sslmode=require&sslpassword=keypass");
    CHECK(!contains(r, "s3cret"));
    CHECK(!contains(r, "keypass"));
    CHECK(contains(r, "password=********"));
    CHECK(contains(r, "sslpassword=********"));
    CHECK(contains(r, "host=db.example"));
    CHECK(contains(r, "user=app"));
    CHECK(contains(r, "sslmode=require"));
    free(r);

    /* Values needing quotes come out in a form libpq parses back. */
    r = conninfo_redacted("application_name='my app' options='-c x=y'");
    CHECK(contains(r, "application_name='my app'"));
    CHECK(contains(r, "options='-c x=y'"));
    free(r);
    r = conninfo_redacted("dbname='o\\'brien'");
    CHECK_STR(r, "dbname='o\\'brien'");
    free(r);

    /* Nothing to hide, nothing echoed from a broken string. */
    r = conninfo_redacted("host=db password='unterminated s3cret");
    CHECK_STR(r, "(unparseable conninfo)");
    free(r);
    r = conninfo_redacted("postgresql://u:s3cret@/db?nosuchparam=1");
    CHECK_STR(r, "(unparseable conninfo)");
    free(r);
    r = conninfo_redacted("");
    CHECK_STR(r, "");
    free(r);
    r = conninfo_redacted(NULL);
    CHECK_STR(r, "");
    free(r);
}

int main(void)
{
    clear_pg_environment();
    CHECK(conninfo_is_connection_string("host=h"));
    CHECK(conninfo_is_connection_string("postgresql://h"));
    CHECK(conninfo_is_connection_string("postgres://h"));
    CHECK(!conninfo_is_connection_string("mydb"));
    test_enumerated_values();
    test_newer_keywords();
    test_numbers();
    test_combinations();
    test_environment();
    test_no_secrets();
    test_conninfo_redacted();
    return check_summary();
}
