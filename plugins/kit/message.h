/* What a message event (PGSPOUT_OP_MESSAGE, ABI 1.5) says that no host
 * accessor gives: its prefix, which sinks key message records by so that
 * one prefix's messages keep their order. */
#ifndef KIT_MESSAGE_H
#define KIT_MESSAGE_H

#include <stddef.h>

/* The "prefix" member of a message event's JSON (event_json's whole
 * event), malloc'd; "" for an empty prefix; NULL when the JSON is not an
 * object with a string "prefix" (no message event). */
char *kit_message_prefix(const char *event_json, size_t len);

#endif
