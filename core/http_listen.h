/* The address the HTTP endpoint listens on, as written in --http /
 * http_listen: "HOST:PORT", an IPv6 address in brackets ("[::1]:9187").
 * Apart from http.c so that checking a setting needs no HTTP server. */
#ifndef PGSPOUT_HTTP_LISTEN_H
#define PGSPOUT_HTTP_LISTEN_H

/* What is wrong with an http_listen value as written, or NULL when it can
 * be tried (whether it can be bound is for http_start to find). */
const char *http_listen_problem(const char *listen);

/* Splits it into host and port (copies, for free(); NULL on failure);
 * returns what is wrong with its shape, or NULL. */
const char *http_listen_split(const char *listen, char **host, char **port);

#endif
