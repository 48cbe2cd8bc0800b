#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"

struct arena_block {
    arena_block *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
};

#define ALIGN_UP(n)                                                            \
    (((n) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

void arena_init(arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size;
    a->last = NULL;
}

static arena_block *new_block(size_t size)
{
    arena_block *b = xmalloc(sizeof *b + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

/* A large object gets a block of its own, behind the head, which goes on
 * serving small ones. */
static void *alloc_alone(arena *a, size_t n)
{
    arena_block *b = new_block(n);
    b->used = n;
    if (a->head) {
        b->next = a->head->next;
        a->head->next = b;
    } else {
        a->head = b;
    }
    return b->data;
}

void *arena_alloc(arena *a, size_t n)
{
    n = ALIGN_UP(n ? n : 1);
    if (n > a->block_size / 4) {
        a->last = NULL;
        return alloc_alone(a, n);
    }
    if (!a->head || a->head->size - a->head->used < n) {
        arena_block *b = new_block(a->block_size);
        b->next = a->head;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->last = p;
    return p;
}

void arena_undo(arena *a, void *p)
{
    if (!p || p != a->last)
        return;
    a->head->used = (size_t)((unsigned char *)p - a->head->data);
    a->last = NULL;
}

void arena_reset(arena *a)
{
    arena_block *keep = NULL;
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        if (!keep && b->size == a->block_size) {
            keep = b;
            continue;
        }
        free(b);
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->last = NULL;
}

void arena_free(arena *a)
{
    arena_reset(a);
    free(a->head);
    a->head = NULL;
}
