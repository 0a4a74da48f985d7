/* tracker - what a webhook receiver saw, per task. See tracker.h. */
#include "tracker.h"

#include <check.h>
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "json.h"

void track(struct tracker *tr, const char *id) {
    struct tracked *grown = realloc(tr->t, (tr->n + 1) * sizeof *tr->t);
    ck_assert_ptr_nonnull(grown);
    tr->t = grown;
    memset(&tr->t[tr->n], 0, sizeof tr->t[0]);
    snprintf(tr->t[tr->n].id, sizeof tr->t[0].id, "%s", id);
    tr->n++;
}

static bool terminal_state(const char *s) {
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "canceled") ||
           !strcmp(s, "rejected");
}

/* Look at the records that arrived since the last call. */
void tracker_scan(struct tracker *tr, struct receiver *r) {
    for (;;) {
        const struct received *rec = receiver_get(r, tr->scanned);
        if (!rec) break;
        tr->scanned++;
        char *eid = received_header(rec, "X-A2A-Event-Id");
        ck_assert_msg(eid != NULL, "a webhook without X-A2A-Event-Id");
        /* TASKID.SEQ.N */
        char *dot = strchr(eid, '.');
        ck_assert_ptr_nonnull(dot);
        *dot = '\0';
        unsigned seq = (unsigned)strtoul(dot + 1, NULL, 10);
        struct tracked *t = NULL;
        for (size_t i = 0; i < tr->n && !t; i++)
            if (!strcmp(tr->t[i].id, eid)) t = &tr->t[i];
        free(eid);
        if (!t || seq >= 64) continue;
        if (t->seen & (UINT64_C(1) << seq)) continue; /* a repeat: allowed */
        if (seq < t->max_seq) t->out_of_order++;
        if (seq > t->max_seq) t->max_seq = seq;
        t->seen |= UINT64_C(1) << seq;
        cJSON *o = cJSON_Parse(rec->body);
        const char *state = json_str(o, "status.state");
        if (terminal_state(state)) {
            t->terminals++;
            t->terminal_seq = seq;
            snprintf(t->terminal, sizeof t->terminal, "%s", state);
        }
        cJSON_Delete(o);
    }
}

size_t tracker_ended(const struct tracker *tr) {
    size_t n = 0;
    for (size_t i = 0; i < tr->n; i++) n += tr->t[i].terminal_seq != 0;
    return n;
}

/* Wait (bounded) until every tracked task had its terminal webhook. */
bool tracker_wait_all(struct tracker *tr, struct receiver *r, unsigned timeout_ms) {
    for (unsigned waited = 0;; waited += 100) {
        tracker_scan(tr, r);
        if (tracker_ended(tr) == tr->n) return true;
        if (waited >= timeout_ms) return false;
        test_nap_ms(100);
    }
}

/* Every task: one terminal event, nothing out of order, and every event
 * from the first webhook (seq 2; seq 1 is the creation) to the terminal
 * one arrived. */
void tracker_assert_complete(const struct tracker *tr) {
    for (size_t i = 0; i < tr->n; i++) {
        const struct tracked *t = &tr->t[i];
        ck_assert_msg(t->terminal_seq, "task %s: no terminal webhook", t->id);
        ck_assert_msg(t->terminals == 1, "task %s: %u different terminal events", t->id,
                      t->terminals);
        ck_assert_msg(t->out_of_order == 0, "task %s: %u events out of order", t->id,
                      t->out_of_order);
        ck_assert_msg(t->max_seq == t->terminal_seq, "task %s: events after the terminal one",
                      t->id);
        uint64_t want = ((UINT64_C(1) << (t->terminal_seq + 1)) - 1) & ~UINT64_C(3);
        ck_assert_msg(t->seen == want, "task %s: events missing (seen %llx, want %llx)", t->id,
                      (unsigned long long)t->seen, (unsigned long long)want);
    }
}

void tracker_free(struct tracker *tr) {
    free(tr->t);
    memset(tr, 0, sizeof *tr);
}

