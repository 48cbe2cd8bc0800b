/* Connection strings checked before anything connects: libpq itself only
 * checks most option values (sslmode=bogus, port=abc) when it connects, which
 * would make a usage error look like a connection failure (exit 1, retried
 * forever under --retry-initial). And a connection string made fit for logs
 * (conninfo_redacted). */
#ifndef PGSPOUT_CONNINFO_H
#define PGSPOUT_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

/* libpq reads a value as a connection string or URI when it has an '=' or a
 * postgres:// or postgresql:// prefix, else as a database name. */
bool conninfo_is_connection_string(const char *conninfo);

/* Checks the options written in conninfo (a connection string, a URI or a
 * database name): it must parse, and each value of an option libpq checks
 * by value (sslmode, port, connect_timeout, ...) must be one libpq accepts.
 * On failure err names the option and its bad value; libpq's own parse
 * message is never passed on (it can quote a password). */
bool conninfo_check_given(const char *conninfo, char *err, size_t errlen);

/* The same for the values a connection would use: those in conninfo (NULL:
 * none), else the PG* environment variables, else libpq's defaults; and the
 * combinations libpq refuses before connecting (as many ports as hosts,
 * sslnegotiation=direct with a weak sslmode). When a service is named
 * (service=, PGSERVICE), options left to the service file are not checked:
 * which file wins over the environment is known only to libpq. */
bool conninfo_check(const char *conninfo, char *err, size_t errlen);

/* The value a connection to conninfo uses for keyword: the one written in
 * conninfo, else its PG* environment variable or libpq's default; NULL when
 * there is none (or conninfo does not parse). Free with free(). */
char *conninfo_value(const char *conninfo, const char *keyword);

/* The name of the database a connection to conninfo reaches, found
 * without connecting (for three-part table patterns, db.schema.table):
 * the dbname written or from the environment, else the user name, as
 * libpq chooses. */
char *conninfo_dbname(const char *conninfo);

/* A loggable copy of a conninfo string or URI: key=value pairs with password
 * and sslpassword replaced by ********. Returns "(unparseable conninfo)"
 * rather than echoing text libpq cannot parse, and "" for NULL. Free with
 * free(). */
char *conninfo_redacted(const char *conninfo);

#endif
