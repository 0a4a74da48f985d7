/* streams - Server-Sent Events subscribers of tasks (message/stream,
 * tasks/resubscribe, SendStreamingMessage, SubscribeToTask).
 *
 * A stream is one subscriber of one task. It lives in two places: the
 * task's TASK_EXT_STREAMS slot (so the streams observer can append every
 * event to it) and the HTTP connection that reads it. Each event becomes one
 * SSE frame, `id: TASKID.SEQ\ndata: {"jsonrpc":"2.0","id":ID,"result":EVENT}\n\n`
 * (SEQ the task's event number, as in the webhook event ids), appended
 * to the stream's own buffer; the connection drains the buffer. No thread
 * waits for a stream: when the buffer is empty the reader "parks" (the HTTP
 * layer suspends the connection) and the next frame "wakes" it.
 *
 * The buffer is bounded (streams_init max_buffer): a reader too slow to
 * keep up is cut off with a log line instead of growing memory. After the
 * task's last event (or such a cut) no frame is added, and once the buffer
 * is drained the reader sees the end.
 */
#ifndef A2AD_STREAMS_H
#define A2AD_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "front/a2a_v1.h"
#include "core/tasks.h"

struct stream;

/* Register the slot ops and the observer. max_buffer: bytes a stream may
 * hold unread; keepalive_s: an SSE comment after this many idle seconds
 * (0 = none). Thread: main, before any task. */
void streams_init(size_t max_buffer, unsigned keepalive_s);

/* Subscribe to t. The first frame is the task as it is now (history_length
 * as task_render), in dialect d: the 0.3 Task or the 1.0 {"task": ...}.
 * A task that has already ended gets only that frame and the stream ends.
 * id_json is the request's JSON-RPC id, serialised (copied); NULL = the
 * HTTP+JSON binding: each frame is `data: EVENT` without the JSON-RPC
 * envelope. The stream
 * holds a reference to t. Returns NULL when out of memory. Thread: any. */
struct stream *stream_open(struct task *t, enum a2a_dialect d, const char *id_json,
                           int history_length);

/* The same for a client that reconnects with Last-Event-ID: when after is
 * not NULL and every event of t numbered above *after is still kept
 * (replay.h), the stream starts with those events (each with its id)
 * instead of the task as it is now, then goes on live; each event reaches
 * it exactly once. If some are no longer kept, it starts with the task as
 * it is now, like stream_open. A task that has ended: the missed events,
 * then the end. Thread: any. */
struct stream *stream_open_after(struct task *t, enum a2a_dialect d, const char *id_json,
                                 int history_length, const uint64_t *after);

/* The same for a task of another node (a detached task, cluster.c): the
 * stream starts with the given events, [{"seq": N, "event": <A2A 0.3
 * event>}] oldest first (the ones a client back with Last-Event-ID
 * missed), then takes what streams_push_event brings; it ends after them
 * when ended is true or one of them is final. NULL when out of memory or
 * an event cannot be rendered. Thread: any. */
struct stream *stream_open_events(struct task *t, enum a2a_dialect d, const char *id_json,
                                  const cJSON *events, bool ended);

/* Connect the reader side. park(arg) is called, with the stream's lock
 * held, when the reader finds the buffer empty (suspend the connection
 * there: a wake cannot come before it); wake(arg) is called, without the
 * stream's lock, when a frame arrives for a parked reader. Thread: any. */
void stream_attach(struct stream *s, void (*park)(void *arg), void (*wake)(void *arg), void *arg);

/* Copy up to max buffered bytes into buf. Returns the count; 0 when the
 * buffer is empty (the reader was parked); -1 at the regular end; -2 when
 * the stream was cut off (slow reader, shutdown) and the connection should
 * be closed. Thread: the reader's. */
ssize_t stream_read(struct stream *s, char *buf, size_t max);

/* The reader is gone (the connection ended): unsubscribe and free.
 * Thread: any, not inside an observer. */
void stream_close(struct stream *s);

/* Send a keepalive comment to every stream idle for keepalive_s; this also
 * finds clients that went away. Thread: any (the main loop, once a second). */
void streams_tick(void);

/* End every stream at once (shutdown) and wake the parked readers, which
 * then see the end. Thread: main. */
void streams_end_all(void);

/* Streams open now. */
size_t streams_count(void);
/* Of those, the streams of tasks held by another node (detached tasks). */
size_t streams_count_remote(void);

/* A task of another node (a detached task, cluster.c) has no events here:
 * push one, the A2A 0.3 event as replay.c renders it (its "final" ends the
 * streams), to t's streams, rendered in each one's dialect; true when it was the
 * final one. Thread: any, no task lock held. */
bool streams_push_event(struct task *t, uint64_t seq, const char *event03);
/* Whether t still has a stream that takes events. Thread: any. */
bool streams_linked(struct task *t);

#endif
