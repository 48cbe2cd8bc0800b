/* How a column's text value becomes JSON, decided once per column (when its
 * relation is described), not per row. */
#ifndef PGSPOUT_TYPEINFO_H
#define PGSPOUT_TYPEINFO_H

#include <stdbool.h>
#include <stdint.h>

typedef enum value_kind {
    VK_TEXT = 0, /* JSON string of the text output */
    VK_INT,      /* JSON integer, exact (int2, int4, int8, oid) */
    VK_FLOAT,    /* JSON number; NaN, Infinity, -Infinity as strings */
    VK_NUMERIC,  /* JSON string, exact */
    VK_BOOL,     /* true/false */
    VK_JSON,     /* the JSON value itself, compacted */
    VK_ARRAY     /* JSON array of elem_kind values */
} value_kind;

typedef struct value_type {
    value_kind kind;
    value_kind elem_kind; /* for VK_ARRAY */
    char delim;           /* array element delimiter, ',' except box[] ';' */
} value_type;

/* The value_type of a built-in type OID. Sets *known = false (and returns
 * VK_TEXT) for OIDs it does not know, such as user types; the core then asks
 * the server (pg_type: typelem, typbasetype of domains) and calls
 * value_type_for_builtin again with the element/base type. */
value_type value_type_for_builtin(uint32_t type_oid, bool *known);

#endif
