/* Channels: a byte pipe between a parent and one child that carries frames.
 *
 * The protocol layer appends encoded frames to `out` and calls
 * actor__chan_kick(); the transport moves them and feeds what arrives to the
 * framer, which calls back with whole frames.  A transport is an ops table
 * plus a state block of its own (ch->t): the socket one (stream.c) and the
 * in-process one (inproc.c, for sub-interpreters).  A new transport plugs in
 * without touching the protocol, the runtime, or this header.
 *
 * Contract of the callbacks (all on the loop thread):
 *   on_frame     one whole frame; return non-zero to stop delivery (the
 *                owner is closing the channel).
 *   on_oversize  a frame over max_frame was skipped (see codec.h).
 *   on_eof       the peer is gone: end of stream (err 0) or an error
 *                (-errno).  Called at most once; nothing is delivered after.
 *   on_closed    actor__chan_close() finished; the memory may be reused.
 *   on_drain     optional: the queue (see `queued`) fell to drain_lwm or
 *                below after the owner set want_drain; want_drain is
 *                cleared first.  Called at most once per setting.
 */
#ifndef ACTOR_IPC_CHAN_H
#define ACTOR_IPC_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "libactor/actor.h"
#include "proto/codec.h"
#include "util/buf.h"

struct actor__chan;

struct actor__chan_cbs {
  int (*on_frame)(struct actor__chan *ch, const char *body, size_t len);
  int (*on_oversize)(struct actor__chan *ch, int kind, uint32_t id,
                     uint64_t len);
  void (*on_eof)(struct actor__chan *ch, int err);
  void (*on_closed)(struct actor__chan *ch);
  void (*on_drain)(struct actor__chan *ch);
};

struct actor__chan_ops {
  int version;
  const char *name;
  /* Schedule a flush of ch->out (never blocks). */
  void (*kick)(struct actor__chan *ch);
  /* Write out as much as possible now (never blocks). */
  int (*flush)(struct actor__chan *ch);
  /* Block until out holds at most `hwm` bytes or the peer is gone; the
   * child side's backpressure.  0 or an error (peer gone). */
  int (*drain)(struct actor__chan *ch, size_t hwm);
  /* Read and deliver everything the peer has sent so far, without
   * blocking (used when the child is known to have exited). */
  void (*pump)(struct actor__chan *ch);
  /* Stop delivering, release the transport, then call on_closed. */
  void (*close)(struct actor__chan *ch);
  /* version 2: bytes sent by us and not yet taken by the peer's side of
   * the transport (queued in `out`, or in memory the peer has not read).
   * Never blocks; any time on the loop thread. */
  size_t (*queued)(struct actor__chan *ch);
};

struct actor__chan {
  const struct actor__chan_ops *ops;
  const struct actor__chan_cbs *cbs;
  void *data; /* the owner */
  uv_loop_t *loop;
  struct abuf in, out;
  struct actor__framer framer;
  int eof;           /* on_eof delivered */
  int hold;          /* keep `out` queued (parent: until HELLO) */
  int closing;
  int want_drain;    /* tell on_drain when queued() <= drain_lwm */
  int corked;        /* sends only queue: the owner flushes (ops->flush)
                        before it returns to the loop, and clears this */
  size_t drain_lwm;
  /* Optional, set by the owner: a counter the transport increments while
   * a flush of `out` is scheduled for later in the loop iteration and
   * decrements when it ran or was cancelled (the parent's runtime uses it
   * to answer actor_rt_backend_timeout()). */
  unsigned *flush_waiting;
  /* The transport's own state: allocated by its open function, released
   * by its close (before on_closed).  Nothing outside the transport's file
   * looks inside; adding a transport touches no shared struct. */
  void *t;
};

/* Common part, used by the transports. */
int actor__chan_init(struct actor__chan *ch, uv_loop_t *loop, size_t max_frame,
                     const struct actor__chan_cbs *cbs, void *data);
void actor__chan_fini(struct actor__chan *ch);
/* Feed ch->in to the framer.  Returns non-zero when delivery stopped. */
int actor__chan_deliver(struct actor__chan *ch);
void actor__chan_signal_eof(struct actor__chan *ch, int err);

/* Encode one message onto the channel and schedule its flush. */
int actor__chan_send(struct actor__chan *ch, const struct actor__msg *m);
/* The same from a call message's parts (actor__msg_encode_call); inline:
 * the send path of every call and stream item. */
static inline int actor__chan_send_call(struct actor__chan *ch, int kind,
                                        uint32_t id, const char *fn,
                                        size_t fn_n, const void *payload,
                                        size_t len) {
  int r;
  if (ch->closing)
    return ACTOR_ECLOSED;
  r = actor__msg_encode_call(&ch->out, kind, id, fn, fn_n,
                             (const char *)payload, len,
                             ch->framer.max_frame);
  if (r == 0 && !ch->corked)
    ch->ops->kick(ch);
  return r;
}

static inline void actor__chan_kick(struct actor__chan *ch) {
  ch->ops->kick(ch);
}
static inline void actor__chan_release(struct actor__chan *ch) {
  ch->hold = 0;
  ch->ops->kick(ch);
}
static inline void actor__chan_close(struct actor__chan *ch) {
  ch->ops->close(ch);
}
static inline size_t actor__chan_queued(struct actor__chan *ch) {
  return ch->ops != NULL ? ch->ops->queued(ch) : 0;
}
/* Transports call this when the queue may have shrunk. */
void actor__chan_drained(struct actor__chan *ch);

/* Socket transport (stream.c): takes ownership of `fd` (a connected
 * AF_UNIX stream socket), closing it on close, also on failure. */
int actor__stream_open(struct actor__chan *ch, uv_loop_t *loop, int fd,
                       size_t max_frame, const struct actor__chan_cbs *cbs,
                       void *data);

#endif
