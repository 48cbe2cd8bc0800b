/* The events of one transaction, counted for its commit event
 * (transaction_events): in all, per table ("schema.table") and messages,
 * as Debezium's transaction metadata counts them, so a consumer can tell
 * when it holds the whole transaction. Memory grows with the tables one
 * transaction touches, not with its events. */
#ifndef PGSPOUT_TXN_COUNTS_H
#define PGSPOUT_TXN_COUNTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct txn_table_count {
    char *schema, *table;
    uint64_t events;
} txn_table_count;

typedef struct txn_counts {
    txn_table_count *tables;
    size_t ntables, cap;
    size_t last; /* the table counted last: most events follow it */
    uint64_t total, messages;
} txn_counts;

/* One more event: of schema.table, or a message when schema is NULL. */
void txn_counts_add(txn_counts *c, const char *schema, const char *table);

/* The counts as JSON members to append to the commit event's object:
 * ,"event_count":N,"tables":{"schema.table":n,...},"messages":M
 * (malloc'd). */
char *txn_counts_members(const txn_counts *c);

/* Forgets the counts (keeps the allocation for the next transaction). */
void txn_counts_reset(txn_counts *c);
void txn_counts_free(txn_counts *c);

#endif
