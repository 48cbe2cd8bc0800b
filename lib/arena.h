/* A bump allocator for objects that die together (the rows of one batch):
 * one malloc per block instead of one per object, and all of them freed at
 * once by arena_reset, which keeps one block for the next round, so a
 * steady stream of batches allocates nothing at all.
 *
 * Memory: what was allocated since the last reset, plus the unused tail of
 * each block (an allocation larger than a quarter of a block gets a block
 * of its own, so the waste stays under a quarter of what is held), plus
 * the one block kept. Not thread-safe: one owner. */
#ifndef PGSPOUT_ARENA_H
#define PGSPOUT_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
    arena_block *head; /* the block allocations come from; older ones after */
    size_t block_size;
    void *last; /* the latest allocation, for arena_undo */
} arena;

/* An empty arena (no block yet) whose blocks hold block_size bytes. */
void arena_init(arena *a, size_t block_size);

/* n bytes aligned for any type, valid until the next reset; never NULL. */
void *arena_alloc(arena *a, size_t n);

/* Gives p back when it is the latest allocation (a row read, then
 * skipped); otherwise it stays until the reset. */
void arena_undo(arena *a, void *p);

/* Frees everything allocated; keeps one block. */
void arena_reset(arena *a);

/* Frees every block. */
void arena_free(arena *a);

#endif
