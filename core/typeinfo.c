#include "typeinfo.h"

#include <stddef.h>
#include <string.h>

/* Built-in types (OIDs from PostgreSQL's pg_type.dat, stable across major
 * versions) with their array types. Looked up once per column when a relation
 * is described, so a linear scan is plenty. */
typedef struct builtin_type {
    uint32_t oid;
    uint32_t array_oid; /* 0: no array type */
    value_kind kind;
    char array_delim;
} builtin_type;

#define JSONB_OID 3802

static const builtin_type builtin_types[] = {
    /* Types whose JSON form is not a string. */
    {16, 1000, VK_BOOL, ','},        /* bool */
    {20, 1016, VK_INT, ','},         /* int8 */
    {21, 1005, VK_INT, ','},         /* int2 */
    {23, 1007, VK_INT, ','},         /* int4 */
    {26, 1028, VK_INT, ','},         /* oid */
    {700, 1021, VK_FLOAT, ','},      /* float4 */
    {701, 1022, VK_FLOAT, ','},      /* float8 */
    {1700, 1231, VK_NUMERIC, ','},   /* numeric */
    {114, 199, VK_JSON, ','},        /* json */
    {JSONB_OID, 3807, VK_JSON, ','}, /* jsonb */

    /* Everything else prints as its text output. int2vector and oidvector
     * are space-separated lists, not array_out syntax, so they stay text. */
    {17, 1001, VK_TEXT, ','},   /* bytea */
    {18, 1002, VK_TEXT, ','},   /* char */
    {19, 1003, VK_TEXT, ','},   /* name */
    {22, 1006, VK_TEXT, ','},   /* int2vector */
    {24, 1008, VK_TEXT, ','},   /* regproc */
    {25, 1009, VK_TEXT, ','},   /* text */
    {27, 1010, VK_TEXT, ','},   /* tid */
    {28, 1011, VK_TEXT, ','},   /* xid */
    {29, 1012, VK_TEXT, ','},   /* cid */
    {30, 1013, VK_TEXT, ','},   /* oidvector */
    {142, 143, VK_TEXT, ','},   /* xml */
    {194, 0, VK_TEXT, ','},     /* pg_node_tree */
    {5069, 271, VK_TEXT, ','},  /* xid8 */
    {600, 1017, VK_TEXT, ','},  /* point */
    {601, 1018, VK_TEXT, ','},  /* lseg */
    {602, 1019, VK_TEXT, ','},  /* path */
    {603, 1020, VK_TEXT, ';'},  /* box: its elements contain commas */
    {604, 1027, VK_TEXT, ','},  /* polygon */
    {628, 629, VK_TEXT, ','},   /* line */
    {718, 719, VK_TEXT, ','},   /* circle */
    {790, 791, VK_TEXT, ','},   /* money */
    {829, 1040, VK_TEXT, ','},  /* macaddr */
    {869, 1041, VK_TEXT, ','},  /* inet */
    {650, 651, VK_TEXT, ','},   /* cidr */
    {774, 775, VK_TEXT, ','},   /* macaddr8 */
    {1033, 1034, VK_TEXT, ','}, /* aclitem */
    {1042, 1014, VK_TEXT, ','}, /* bpchar */
    {1043, 1015, VK_TEXT, ','}, /* varchar */
    {1082, 1182, VK_TEXT, ','}, /* date */
    {1083, 1183, VK_TEXT, ','}, /* time */
    {1114, 1115, VK_TEXT, ','}, /* timestamp */
    {1184, 1185, VK_TEXT, ','}, /* timestamptz */
    {1186, 1187, VK_TEXT, ','}, /* interval */
    {1266, 1270, VK_TEXT, ','}, /* timetz */
    {1560, 1561, VK_TEXT, ','}, /* bit */
    {1562, 1563, VK_TEXT, ','}, /* varbit */
    {1790, 2201, VK_TEXT, ','}, /* refcursor */
    {2202, 2207, VK_TEXT, ','}, /* regprocedure */
    {2203, 2208, VK_TEXT, ','}, /* regoper */
    {2204, 2209, VK_TEXT, ','}, /* regoperator */
    {2205, 2210, VK_TEXT, ','}, /* regclass */
    {2206, 2211, VK_TEXT, ','}, /* regtype */
    {4191, 4192, VK_TEXT, ','}, /* regcollation */
    {4096, 4097, VK_TEXT, ','}, /* regrole */
    {4089, 4090, VK_TEXT, ','}, /* regnamespace */
    {3734, 3735, VK_TEXT, ','}, /* regconfig */
    {3769, 3770, VK_TEXT, ','}, /* regdictionary */
    {2950, 2951, VK_TEXT, ','}, /* uuid */
    {3220, 3221, VK_TEXT, ','}, /* pg_lsn */
    {3614, 3643, VK_TEXT, ','}, /* tsvector */
    {3642, 3644, VK_TEXT, ','}, /* gtsvector */
    {3615, 3645, VK_TEXT, ','}, /* tsquery */
    {4072, 4073, VK_TEXT, ','}, /* jsonpath */
    {2970, 2949, VK_TEXT, ','}, /* txid_snapshot */
    {5038, 5039, VK_TEXT, ','}, /* pg_snapshot */
    {3904, 3905, VK_TEXT, ','}, /* int4range */
    {3906, 3907, VK_TEXT, ','}, /* numrange */
    {3908, 3909, VK_TEXT, ','}, /* tsrange */
    {3910, 3911, VK_TEXT, ','}, /* tstzrange */
    {3912, 3913, VK_TEXT, ','}, /* daterange */
    {3926, 3927, VK_TEXT, ','}, /* int8range */
    {4451, 6150, VK_TEXT, ','}, /* int4multirange */
    {4532, 6151, VK_TEXT, ','}, /* nummultirange */
    {4533, 6152, VK_TEXT, ','}, /* tsmultirange */
    {4534, 6153, VK_TEXT, ','}, /* tstzmultirange */
    {4535, 6155, VK_TEXT, ','}, /* datemultirange */
    {4536, 6157, VK_TEXT, ','}, /* int8multirange */
};

#define BUILTIN_TYPE_COUNT (sizeof builtin_types / sizeof builtin_types[0])

value_type value_type_for_builtin(uint32_t type_oid, bool *known)
{
    value_type vt = {VK_TEXT, VK_TEXT, ',', 0, {0}, false};

    for (size_t i = 0; i < BUILTIN_TYPE_COUNT; i++) {
        const builtin_type *bt = &builtin_types[i];
        if (bt->oid == type_oid) {
            vt.kind = bt->kind;
            vt.jsonb = type_oid == JSONB_OID;
            *known = true;
            return vt;
        }
        if (bt->array_oid == type_oid) {
            vt.kind = VK_ARRAY;
            vt.elem_kind = bt->kind;
            vt.delim = bt->array_delim;
            *known = true;
            return vt;
        }
    }
    *known = false;
    return vt;
}

value_type value_type_array_of(value_type elem, char delim)
{
    value_type vt = {VK_ARRAY, elem.kind, delim ? delim : ',', 0, {0}, false};

    if (elem.kind != VK_ARRAY)
        return vt;
    /* One level more than elem; past the limit the innermost arrays, the
     * ones that do not fit, stay strings. */
    unsigned keep = elem.nested < VALUE_TYPE_MAX_NESTED
                        ? elem.nested
                        : VALUE_TYPE_MAX_NESTED - 1;
    vt.elem_kind = keep < elem.nested ? VK_TEXT : elem.elem_kind;
    vt.nested = (unsigned char)(keep + 1);
    vt.nested_delims[0] = elem.delim;
    memcpy(vt.nested_delims + 1, elem.nested_delims, keep);
    return vt;
}

value_type value_type_element(value_type array)
{
    value_type vt = {array.elem_kind, VK_TEXT, ',', 0, {0}, false};

    if (array.nested == 0) {
        if (vt.kind == VK_ARRAY) /* not a type value_type_array_of makes */
            vt.kind = VK_TEXT;
        return vt;
    }
    unsigned nested = array.nested > VALUE_TYPE_MAX_NESTED
                          ? VALUE_TYPE_MAX_NESTED
                          : array.nested;
    vt.kind = VK_ARRAY;
    vt.elem_kind = array.elem_kind;
    vt.delim = array.nested_delims[0];
    vt.nested = (unsigned char)(nested - 1);
    memcpy(vt.nested_delims, array.nested_delims + 1, nested - 1);
    return vt;
}
