/* tracker - what a webhook receiver saw, per task: the tests of durable
 * delivery (test_durable, test_pg, test_share) check every task's webhooks
 * on it. Event ids are TASKID.SEQ.N; seq 1 is the task's creation.
 */
#ifndef A2AD_TEST_TRACKER_H
#define A2AD_TEST_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "receiver.h"

struct tracked {
    char id[40];
    uint64_t seen;          /* bit s: event seq s arrived */
    unsigned max_seq;
    unsigned terminal_seq;  /* 0 = no terminal event yet */
    char terminal[16];
    unsigned terminals;     /* distinct terminal events */
    unsigned out_of_order;  /* new events older than one already seen */
};

struct tracker {
    struct tracked *t;
    size_t n;
    size_t scanned; /* receiver records looked at */
};

/* Follow the webhooks of task id too. */
void track(struct tracker *tr, const char *id);
/* Look at the records that arrived since the last call (a repeat of an
 * event id is allowed and counted once). */
void tracker_scan(struct tracker *tr, struct receiver *r);
/* Tasks whose terminal webhook arrived. */
size_t tracker_ended(const struct tracker *tr);
/* Wait (bounded) until every tracked task had its terminal webhook. */
bool tracker_wait_all(struct tracker *tr, struct receiver *r, unsigned timeout_ms);
/* Every task: one terminal event, nothing out of order, and every event
 * from the first webhook (seq 2) to the terminal one arrived. */
void tracker_assert_complete(const struct tracker *tr);
void tracker_free(struct tracker *tr);

#endif
