/* Socket transport: a connected AF_UNIX stream socket watched by a uv_poll_t.
 *
 * Why uv_poll and not uv_pipe_t: the protocol encodes frames straight into
 * one reusable output buffer and wants to hand the kernel everything that
 * accumulated in one write(); uv_write() would need a request and a stable
 * buffer per write, and uv_read_start() an allocation callback per read.
 * With uv_poll the loop tells us when the socket is readable or writable
 * and we do the (non-blocking) I/O ourselves: one read() per wake-up, one
 * send() per batch of frames, no allocation in steady state.
 *
 * Writes are batched: sending a message only appends to `out` and starts a
 * prepare handle, which flushes everything that accumulated just before the
 * loop's next poll.  A burst of calls made from one callback therefore
 * costs a single send().  After a read the channel flushes at once, so
 * replies produced while handling input go out without an extra loop
 * iteration.
 *
 * Why a prepare handle and not an idle one: libuv decides whether
 * uv_run(UV_RUN_ONCE) may block before it runs the idle handles, so an idle
 * handle started by a send made between two runs makes the next run poll
 * with timeout 0, find nothing (the reply cannot be there yet) and return —
 * one wasted epoll_wait and one more uv_run per sequential call.  Prepare
 * handles run after that decision and do not make the poll non-blocking: the
 * run sends, then sleeps until the reply.  A foreign loop still learns that
 * output is waiting: the owner's counter (ch->flush_waiting) makes
 * actor_rt_backend_timeout() answer 0 while a flush is scheduled. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libactor/actor.h"
#include "ipc/chan.h"

/* Read granularity; the buffer grows past it only for large frames. */
#define STREAM_READ_CHUNK (64 * 1024)
/* After a burst, give back memory above this. */
#define STREAM_KEEP (256 * 1024)

/* The transport's state (ch->t); the handles' data is the channel. */
struct stream {
  int fd;
  uv_poll_t poll;
  uv_prepare_t flush; /* a flush scheduled before the next poll */
  int flush_on;       /* `flush` is started (cheaper than uv_is_active) */
  int events;    /* UV_READABLE/UV_WRITABLE currently watched */
  int write_err; /* the peer stopped reading (-EPIPE...) */
  int pending_close;
};

#define ST(ch) ((struct stream *)(ch)->t)

static void stream__poll_cb(uv_poll_t *h, int status, int events);

static void stream__update(struct actor__chan *ch, int events) {
  if (ch->closing || ST(ch)->events == events)
    return;
  ST(ch)->events = events;
  if (events == 0)
    uv_poll_stop(&ST(ch)->poll);
  else
    uv_poll_start(&ST(ch)->poll, events, stream__poll_cb);
}

static int stream__flush(struct actor__chan *ch) {
  ssize_t n;

  if (ch->closing || ST(ch)->fd < 0)
    return ACTOR_ECLOSED;
  if (ch->hold)
    return 0;
  if (ST(ch)->write_err) {
    ch->out.len = 0; /* nobody will read it */
    ch->out.off = 0;
    return ST(ch)->write_err;
  }
  while (ch->out.len > 0) {
    n = send(ST(ch)->fd, actor__buf_data(&ch->out), ch->out.len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        stream__update(ch, UV_READABLE | UV_WRITABLE);
        return 0;
      }
      /* EPIPE, ECONNRESET: the peer is gone.  What it sent before it went
       * (often the very frame that explains why) is still readable, so EOF
       * is left to the read side, which reaches it after those frames. */
      n = -errno;
      ch->out.len = 0;
      ch->out.off = 0;
      ST(ch)->write_err = (int)n;
      stream__update(ch, ch->eof ? 0 : UV_READABLE);
      return (int)n;
    }
    actor__buf_consume(&ch->out, (size_t)n);
  }
  actor__buf_trim(&ch->out, STREAM_KEEP);
  if (!ch->eof)
    stream__update(ch, UV_READABLE);
  return 0;
}

static void stream__flush_cb(uv_prepare_t *h);

static void stream__unschedule(struct actor__chan *ch) {
  if (!ST(ch)->flush_on)
    return;
  ST(ch)->flush_on = 0;
  uv_prepare_stop(&ST(ch)->flush);
  if (ch->flush_waiting != NULL)
    --*ch->flush_waiting;
}

static void stream__flush_cb(uv_prepare_t *h) {
  struct actor__chan *ch = h->data;
  stream__unschedule(ch);
  stream__flush(ch);
  actor__chan_drained(ch);
}

static void stream__kick(struct actor__chan *ch) {
  if (ch->closing || ch->hold || ch->out.len == 0)
    return;
  if (ST(ch)->flush_on)
    return;
  ST(ch)->flush_on = 1;
  uv_prepare_start(&ST(ch)->flush, stream__flush_cb);
  if (ch->flush_waiting != NULL)
    ++*ch->flush_waiting;
}

/* One read() and the frames it completes.  Returns the bytes read, 0 at
 * EOF or error (on_eof delivered), -1 when nothing was there. */
static ssize_t stream__read(struct actor__chan *ch) {
  ssize_t n;

  if (actor__buf_reserve(&ch->in, STREAM_READ_CHUNK)) {
    actor__chan_signal_eof(ch, -ENOMEM);
    return 0;
  }
  do
    n = read(ST(ch)->fd, actor__buf_tail(&ch->in), actor__buf_room(&ch->in));
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -1;
    n = -errno;
    stream__update(ch, 0);
    actor__chan_signal_eof(ch, (int)n);
    return 0;
  }
  if (n == 0) {
    stream__update(ch, 0);
    actor__chan_signal_eof(ch, 0);
    return 0;
  }
  ch->in.len += (size_t)n;
  actor__chan_deliver(ch);
  if (!ch->closing && ch->in.len == 0)
    actor__buf_trim(&ch->in, STREAM_KEEP);
  return n;
}

/* The child is known to be gone: take what it left, but with a bound.  The
 * socket can hold only what the child wrote before it died (a few hundred
 * KiB at most); more than that comes from a process that inherited the
 * child's end and is still writing, and must not hold the loop. */
#define STREAM_PUMP_MAX_BYTES (4u << 20)
#define STREAM_PUMP_MAX_NS (50u * 1000 * 1000)

static void stream__pump(struct actor__chan *ch) {
  uint64_t start = uv_hrtime();
  size_t total = 0;
  ssize_t n;

  while (!ch->closing && !ch->eof && total < STREAM_PUMP_MAX_BYTES &&
         uv_hrtime() - start < STREAM_PUMP_MAX_NS) {
    n = stream__read(ch);
    if (n <= 0)
      break;
    total += (size_t)n;
  }
}

static size_t stream__queued(struct actor__chan *ch) { return ch->out.len; }

static void stream__poll_cb(uv_poll_t *h, int status, int events) {
  struct actor__chan *ch = h->data;

  if (ch->closing)
    return;
  if (status < 0) {
    /* The fd is in an error state; let read() report what it is. */
    events = UV_READABLE;
  }
  if (events & (UV_READABLE | UV_DISCONNECT)) {
    stream__read(ch);
    if (ch->closing)
      return;
  }
  /* Flush what we have (replies produced while handling input, or what
   * waited for the socket to become writable). */
  if (ch->out.len > 0) {
    stream__flush(ch);
    if (!ch->closing && ch->out.len == 0)
      stream__unschedule(ch);
    actor__chan_drained(ch);
  }
}

static int stream__drain(struct actor__chan *ch, size_t hwm) {
  struct pollfd pfd;
  int r;

  while (ch->out.len > hwm) {
    r = stream__flush(ch);
    if (r)
      return r;
    if (ch->out.len <= hwm)
      break;
    /* Blocking here is the backpressure the child wants: the parent always
     * reads (its loop never blocks on a child), so this ends when the
     * parent catches up, or with POLLHUP/POLLERR when it is gone. */
    pfd.fd = ST(ch)->fd;
    pfd.events = POLLOUT;
    pfd.revents = 0;
    r = poll(&pfd, 1, -1);
    if (r < 0 && errno != EINTR)
      return -errno;
    if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
      r = stream__flush(ch); /* collects the errno */
      return r ? r : ACTOR_ECLOSED;
    }
  }
  return 0;
}

static void stream__handle_closed(uv_handle_t *h) {
  struct actor__chan *ch = h->data;
  if (--ST(ch)->pending_close > 0)
    return;
  free(ch->t);
  ch->t = NULL;
  actor__chan_fini(ch);
  if (ch->cbs->on_closed)
    ch->cbs->on_closed(ch);
}

static void stream__close(struct actor__chan *ch) {
  if (ch->closing)
    return;
  /* From here on nothing is delivered, so a failure below cannot call back
   * into the owner (which may be closing us from its own EOF handler). */
  ch->closing = 1;
  /* Last chance for queued frames (a final ERROR, a STOP): one
   * non-blocking attempt, never a wait; errors are of no interest now. */
  if (ch->out.len > 0 && !ch->eof && ST(ch)->fd >= 0 && !ch->hold)
    (void)send(ST(ch)->fd, actor__buf_data(&ch->out), ch->out.len,
               MSG_NOSIGNAL | MSG_DONTWAIT);
  stream__unschedule(ch);
  ST(ch)->pending_close = 2;
  uv_close((uv_handle_t *)&ST(ch)->poll, stream__handle_closed);
  uv_close((uv_handle_t *)&ST(ch)->flush, stream__handle_closed);
  /* libuv has stopped watching the fd once uv_close() returns, so it can
   * be closed now; the handle memory stays ours until the callbacks. */
  close(ST(ch)->fd);
  ST(ch)->fd = -1;
}

static const struct actor__chan_ops stream_ops = {
    2,           "stream",     stream__kick,  stream__flush,
    stream__drain, stream__pump, stream__close, stream__queued,
};

int actor__stream_open(struct actor__chan *ch, uv_loop_t *loop, int fd,
                       size_t max_frame, const struct actor__chan_cbs *cbs,
                       void *data) {
  struct stream *st;
  int r, fl;

  r = actor__chan_init(ch, loop, max_frame, cbs, data);
  if (r)
    goto fail;
  ch->ops = &stream_ops;
  st = ch->t = calloc(1, sizeof(*st));
  if (st == NULL) {
    r = -ENOMEM;
    goto fail_fini;
  }
  st->fd = fd;
  fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    r = -errno;
    goto fail_fini;
  }
  r = uv_poll_init_socket(loop, &st->poll, fd);
  if (r)
    goto fail_fini;
  st->poll.data = ch;
  uv_prepare_init(loop, &st->flush);
  st->flush.data = ch;
  st->events = UV_READABLE;
  /* uv_poll_start() only validates its arguments and queues the watcher
   * (epoll_ctl happens in the next poll, and uv_poll_init_socket() already
   * checked the fd is pollable): it cannot fail here. */
  if (uv_poll_start(&st->poll, UV_READABLE, stream__poll_cb))
    abort();
  return 0;

fail_fini:
  free(ch->t);
  ch->t = NULL;
  actor__chan_fini(ch);
fail:
  close(fd);
  return r;
}
