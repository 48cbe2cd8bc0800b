#include "event_internal.h"

#include <stdlib.h>
#include <string.h>

#include "value_json.h"

/* Atomic because events, and with them their relation references, may be
 * released by sink threads while the decoder takes new ones. */
relation *relation_ref(relation *rel)
{
    if (rel)
        __atomic_add_fetch(&rel->refcount, 1, __ATOMIC_RELAXED);
    return rel;
}

void relation_unref(relation *rel)
{
    if (!rel || __atomic_sub_fetch(&rel->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (int i = 0; i < rel->ncols; i++) {
        free(rel->cols[i].name);
        free(rel->cols[i].type_name);
        free(rel->cols[i].json_member);
    }
    free(rel->cols);
    free(rel->json_names);
    free(rel->schema);
    free(rel->table);
    free(rel);
}

static void prepare_names(relation *rel)
{
    strbuf sb = STRBUF_INIT;
    json_out out = json_out_buffer(&sb);
    json_out_put(&out, ",\"schema\":", 10);
    json_write_string(&out, rel->schema, strlen(rel->schema));
    json_out_put(&out, ",\"table\":", 9);
    json_write_string(&out, rel->table, strlen(rel->table));
    free(rel->json_names);
    rel->json_names_len = sb.len;
    rel->json_names = sbuf_detach(&sb);
}

void relation_prepare_json(relation *rel)
{
    for (int i = 0; i < rel->ncols; i++) {
        relation_column *col = &rel->cols[i];
        strbuf sb = STRBUF_INIT;
        json_out out = json_out_buffer(&sb);
        json_write_string(&out, col->name, strlen(col->name));
        json_out_putc(&out, ':');
        free(col->json_member);
        col->json_member_len = sb.len;
        col->json_member = sbuf_detach(&sb);
    }
    if (rel->schema && rel->table)
        prepare_names(rel);
}

bool event_is_row_op(pgspout_op op)
{
    return op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_UPDATE ||
           op == PGSPOUT_OP_DELETE || op == PGSPOUT_OP_READ;
}

const tuple *event_before_tuple(const event *ev, bool *key_only)
{
    *key_only = ev->old_kind == 'K';
    return ev->old_kind ? &ev->old_tuple : NULL;
}

const tuple *event_after_tuple(const event *ev)
{
    return ev->op == PGSPOUT_OP_DELETE ? NULL : &ev->new_tuple;
}

const colval *tuple_column(const tuple *t, int i)
{
    return t && i >= 0 && i < t->ncols ? &t->cols[i] : NULL;
}

const colval *event_key_column(const event *ev, int i)
{
    /* An update that changes no key sends no old tuple, and one whose key
     * is an unchanged TOAST value sends it in the old tuple only. */
    const tuple *primary = &ev->new_tuple;
    const tuple *fallback = ev->old_kind ? &ev->old_tuple : NULL;

    if (ev->op == PGSPOUT_OP_DELETE) {
        primary = &ev->old_tuple;
        fallback = NULL;
    }
    const colval *v = tuple_column(primary, i);
    const colval *old = tuple_column(fallback, i);
    if ((!v || v->kind == COLVAL_UNCHANGED_TOAST) && old &&
        old->kind != COLVAL_UNCHANGED_TOAST)
        return old;
    return v;
}

void event_view_as_insert(const event *read, event *view)
{
    *view = *read;
    view->op = PGSPOUT_OP_INSERT;
    memset(&view->snapshot, 0, sizeof view->snapshot);
    for (int part = 0; part < EVENT_PART_COUNT; part++) {
        view->json[part] = NULL;
        view->json_len[part] = 0;
    }
}

void event_view_clear(event *view)
{
    for (int part = 0; part < EVENT_PART_COUNT; part++)
        free(view->json[part]);
    memset(view, 0, sizeof *view);
}

void event_clear(event *ev)
{
    /* Most events (all that are streamed) have no part cached. */
    for (int part = 0; part < EVENT_PART_COUNT; part++)
        if (ev->json[part])
            free(ev->json[part]);
    if (!ev->old_tuple.in_arena)
        free(ev->old_tuple.cols);
    if (!ev->new_tuple.in_arena)
        free(ev->new_tuple.cols);
    free(ev->prefix);
    free(ev->content);
    free(ev->txn_counts);
    relation_unref(ev->rel);
    memset(ev, 0, sizeof *ev);
}
