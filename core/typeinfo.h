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

/* How many levels of an array's elements may be arrays themselves. An array
 * type cannot have an array element type, but an array of a domain over an
 * array type can (intlist[] with `CREATE DOMAIN intlist AS int[]`: PostgreSQL
 * prints {"{1,2}","{}",NULL}). Deeper nests keep their innermost arrays as
 * strings; nothing real nests this far. */
#define VALUE_TYPE_MAX_NESTED 3

typedef struct value_type {
    value_kind kind;
    /* VK_ARRAY: the kind of the innermost elements (never VK_ARRAY), the
     * element delimiter (',' except box[] ';'), how many levels of elements
     * are arrays themselves (0 for int[], 1 for intlist[]) and their
     * delimiters, outermost first. */
    value_kind elem_kind;
    char delim;
    unsigned char nested;
    char nested_delims[VALUE_TYPE_MAX_NESTED];
    /* VK_JSON printed by jsonb_out: JSON whatever the value, spaced one
     * way, so compacted without checking its grammar. */
    bool jsonb;
} value_type;

/* The value_type of a built-in type OID. Sets *known = false (and returns
 * VK_TEXT) for OIDs it does not know, such as user types; the core then asks
 * the server (pg_type: typelem, typbasetype of domains) and calls
 * value_type_for_builtin again with the element/base type. */
value_type value_type_for_builtin(uint32_t type_oid, bool *known);

/* The type of an array whose elements are of type elem, printed with delim
 * between them; elem may be an array type itself (reached through a domain). */
value_type value_type_array_of(value_type elem, char delim);

/* The type of the elements of an array type. */
value_type value_type_element(value_type array);

#endif
