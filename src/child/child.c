/* The child-side runtime: an actor program's half of the protocol.
 *
 * It finds the channel its parent made (LIBACTOR_FD), says HELLO, and
 * serves CALLs by name on a libuv loop — the program's own loop or one this
 * runtime owns — so that an actor can run timers, I/O, and a runtime of its
 * own to spawn children, all on the same thread.
 *
 * Functions answer synchronously or later (they keep the actor_ctx and
 * answer from another callback).  Streams go both ways: actor_ctx_yield()
 * sends items to the parent; items the parent sends arrive through
 * actor_ctx_on_item().  Output is batched like the parent's; a child that
 * sends faster than the parent reads is throttled by blocking writes once a
 * high-water mark is passed (the parent's loop always reads, so the wait
 * ends when it catches up, or when it is gone).
 *
 * Input is queued, then dispatched.  The channel's frame callback never
 * runs user code: it decodes the frame, copies what dispatch needs (the
 * function name and the payload) into a record on `rin`, and returns.  A
 * check handle — the same loop iteration, right after the read — then
 * dispatches the records in order.  Two things follow from that:
 *
 *  - A function that runs for a long time may read the channel itself:
 *    actor_ctx_yield() pumps it now and then (child__read_input).  Nothing
 *    of the transport's or the framer's is on the stack below a function,
 *    so the pump is safe, and what it reads is queued behind the record
 *    being run, never dispatched inside it.  The frame callback notes a
 *    CANCEL or a STOP as it queues it, which is how yield learns of them.
 *  - Between two records the dispatcher can decide to send what is queued,
 *    so that an answer does not wait for another call's work.
 *
 * `rq` holds the records being dispatched and `rin` those read since; the
 * two are swapped when `rq` runs empty.  A record's data is therefore never
 * moved while it is being dispatched: new records only ever grow `rin`.
 *
 * User code (functions, item and cancel callbacks, on_stop) only ever runs
 * from the dispatcher, the stop idle, or the program's own callbacks: at
 * the top of the loop, never below another piece of user code.
 *
 * Ending.  STOP from the parent, or EOF (the parent died), cancels every
 * call in progress, runs the on_stop callback, writes out what is queued,
 * and closes the channel; the loop then runs dry and actor_child_run()
 * returns.  Both are deferred to an idle callback so that they never run
 * inside a function that is still on the stack. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rt/internal.h"

/* Queue depth that makes a send wait for the parent. */
#define CHILD_HWM (512 * 1024)
#define CHILD_LWM (128 * 1024)
/* How often a running function's actor_ctx_yield() sends what is queued
 * and looks for input (a CANCEL, a STOP): once this much time has passed
 * on the coarse clock, read per yield (a vDSO read of a variable, ~7 ns
 * where the precise clock costs ~35: that difference was 20% of a yield).
 * The coarse clock ticks every 1-4 ms (CONFIG_HZ), so in effect once per
 * tick.  The check itself costs one send() (when something is queued) and
 * one read() (usually EAGAIN). */
#define CHILD_CHECK_NS (1000 * 1000)
/* Yields that come faster than the coarse clock ticks need not read it
 * each time: while two reads in a row find the same time, the number of
 * yields between reads doubles, up to this; a read that finds the clock
 * moved sets it back to 1.  A check is then late by at most this many
 * yields less one (a stream of small items read the clock ~10% of its
 * yield's cost). */
#define CHILD_YIELD_STRIDE 16
/* Input read ahead while a function runs, at most: yield stops reading
 * once this much is queued (checked before each read burst, so one burst
 * may pass it).  A CANCEL behind more input than this is seen when the
 * function returns. */
#define CHILD_DEFER_MAX (1024 * 1024)
/* A function whose code last ran for less than this is "quick": answers
 * queued before it may wait for it (batching), for at most CHILD_BATCH_NS
 * in all.  Before any other user code the queue is sent first.  A run is
 * timed only where that choice is made, when answers are waiting (and the
 * first run of each function): a call made alone, the sequential case,
 * reads no clock (child__dispatch). */
#define CHILD_QUICK_NS (50 * 1000)
#define CHILD_BATCH_NS (1000 * 1000)
/* After a burst, record buffers give back memory above this. */
#define CHILD_KEEP (256 * 1024)
/* Contexts of finished calls kept for the next ones, at most: a call's
 * calloc and free were ~4% of a no-op round trip.  Beyond it they are
 * freed.  Builds with AddressSanitizer keep none, so that a context used
 * after its call ended is still reported (child__ctx_release). */
#define CHILD_CTX_CACHE ACTOR__CHILD_CTX_CACHE
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_CTX_CACHE_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_CTX_CACHE_ON 0
#endif
#endif
#ifndef CHILD_CTX_CACHE_ON
#define CHILD_CTX_CACHE_ON 1
#endif

struct child_fn {
  char *name;
  size_t len;
  actor_fn fn;
  void *arg;
  uint64_t last_ns; /* how long its code last ran; UINT64_MAX: unknown */
};

struct actor_ctx {
  struct alist node; /* on c->ctxs, or on c->ctx_free once finished */
  actor_child *c;
  uint32_t id;
  size_t fidx; /* into c->fns (stable: entries are never removed) */
  const char *fn;
  int in_fn;       /* pins: user code of the call is running, or the
                      runtime holds it (a queued record): never freed then */
  int mapped;      /* in c->ctxmap (see child__ctx_get) */
  int answered;    /* RETURN/ERROR sent (by the function or the runtime) */
  int released;    /* the function is done with it too */
  int cancelled;   /* the flag the function sees */
  int cancel_done; /* cancellation handled: callback run, or answered */
  int end_sent;
  int warned; /* "takes no items" logged */
  actor_item_cb item_cb;
  void *item_arg;
  actor_cancel_cb cancel_cb;
  void *cancel_arg;
};

/* A queued input record; its data (CALL: the name then the arguments;
 * ITEM: the value) follows it in the buffer. */
enum {
  CHILD_REC_BROKEN = -1,   /* a frame no child accepts: stop */
  CHILD_REC_TELL = -2,     /* run x's cancel callback (its item was lost) */
  CHILD_REC_OVERSIZE = -3  /* an oversized ITEM for a call not started yet */
};
struct child_rec {
  int kind; /* ACTOR__MSG_* or CHILD_REC_* */
  int err;  /* BROKEN: the decoder's code, or 0 for a kind not for us */
  uint32_t id;
  int msg_kind;  /* BROKEN: the frame's kind */
  actor_ctx *x;  /* TELL: pinned until the record runs */
  uint64_t size; /* OVERSIZE: the frame's announced length */
  size_t fn_len; /* CALL */
  size_t pl_len; /* CALL, ITEM */
};

struct actor_child {
  uv_loop_t *loop;
  int owns_loop;
  struct actor__log log;
  struct actor__chan chan;
  int chan_open; /* on_closed not yet called */
  char *name;
  char *backend;
  size_t max_frame;
  struct child_fn *fns;
  size_t nfns;
  struct idmap ctxmap; /* id -> unanswered actor_ctx, but `running` */
  actor_ctx *running;  /* the call whose function runs now, if any: put in
                          ctxmap only if it returns unanswered */
  struct idmap early;  /* ids whose CANCEL is queued, not yet dispatched */
  struct alist ctxs;
  struct alist ctx_free; /* finished contexts for reuse (CHILD_CTX_CACHE) */
  size_t nctx_free;
  struct abuf rin, rq; /* input records: read / being dispatched */
  uv_check_t disp_check; /* dispatch after the loop's reads: always
                            active, unreferenced (child__check_cb) */
  uv_idle_t disp_idle;   /* ... and soon, for records a yield read */
  uv_idle_t stop_idle;
  int dispatching;
  int disp_closed; /* disp_check is closing: nothing would dispatch */
  int pumping;   /* a yield is reading the channel */
  int in_chan;   /* in a channel callback (only a log callback could reach
                    user code from there): never pump */
  int broken;    /* a bad frame was read: read no further */
  int stop_seen; /* a STOP was read (perhaps not dispatched yet) */
  uint64_t last_check; /* when input was last looked at (coarse clock, or
                          the dispatcher's precise one: compare signed) */
  uint64_t out_since;  /* when queued output was first seen unsent */
  uint64_t yield_clock;   /* the coarse clock at the last read in a yield */
  unsigned yield_stride;  /* yields from one read to the next */
  unsigned yield_skip;    /* yields left before the next read */
  int started;
  int stopping;  /* stop processing scheduled or done */
  int got_stop;  /* the parent asked (vs. went away) */
  int stop_done; /* on_stop ran, channel closing */
  int freeing;   /* actor_child_free() was called */
  int closes;    /* handle closes not yet completed (the channel's too) */
  actor_child_stop_cb stop_cb;
  void *stop_arg;
};

/* The clock of the yield checks (see CHILD_CHECK_NS). */
static uint64_t child__coarse_ns(void) {
  struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
  return uv_hrtime();
}

/* ---- set-up ------------------------------------------------------------ */

static const struct actor__chan_cbs child_chan_cbs;
static void child__check_cb(uv_check_t *h);
static void child__idle_cb(uv_idle_t *h);

int actor_child_new(actor_child **cp, uv_loop_t *loop) {
  struct actor__child_env env;
  int r;

  *cp = NULL;
  r = actor__child_env_take(&env);
  if (r)
    return r;
  return actor__child_new_env(cp, loop, &env);
}

int actor__child_new_env(actor_child **cp, uv_loop_t *loop,
                         struct actor__child_env *e) {
  struct actor__child_env env = *e;
  actor_child *c;
  int r;

  *cp = NULL;
  memset(e, 0, sizeof(*e)); /* ours now, whatever happens */
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    close(env.fd); /* the parent then sees EOF */
    actor__child_env_free(&env);
    return -ENOMEM;
  }
  actor__log_init(&c->log);
  alist_init(&c->ctxs);
  alist_init(&c->ctx_free);
  actor__idmap_init(&c->ctxmap);
  actor__idmap_init(&c->early);
  actor__buf_init(&c->rin);
  actor__buf_init(&c->rq);
  c->name = env.name; /* owned now */
  c->backend = env.backend;
  c->max_frame = env.max_frame;
  if (loop == NULL) {
    loop = malloc(sizeof(*loop));
    r = loop == NULL ? -ENOMEM : uv_loop_init(loop);
    if (r) {
      free(loop);
      close(env.fd);
      goto fail;
    }
    c->owns_loop = 1;
  }
  c->loop = loop;
  r = actor__stream_open(&c->chan, loop, env.fd, c->max_frame,
                         &child_chan_cbs, c);
  if (r) {
    if (c->owns_loop) {
      uv_loop_close(loop);
      free(loop);
    }
    goto fail;
  }
  c->chan_open = 1;
  uv_idle_init(loop, &c->stop_idle);
  c->stop_idle.data = c;
  uv_check_init(loop, &c->disp_check);
  c->disp_check.data = c;
  /* Started once: starting and stopping it per frame cost more than its
   * callback finding nothing to do in an iteration without input.  It
   * does not keep the loop alive, nor make a poll non-blocking. */
  uv_check_start(&c->disp_check, child__check_cb);
  uv_unref((uv_handle_t *)&c->disp_check);
  uv_idle_init(loop, &c->disp_idle);
  c->disp_idle.data = c;
  *cp = c;
  return 0;

fail:
  actor__idmap_fini(&c->ctxmap);
  actor__idmap_fini(&c->early);
  free(c->backend);
  free(c->name);
  free(c);
  return r;
}

uv_loop_t *actor_child_loop(actor_child *c) { return c->loop; }
const char *actor_child_name(actor_child *c) { return c->name; }

void actor_child_set_log(actor_child *c, int level, actor_log_cb cb,
                         void *arg) {
  c->log.level = level;
  c->log.cb = cb;
  c->log.arg = arg;
}

int actor_child_register(actor_child *c, const char *name, actor_fn fn,
                         void *arg) {
  struct child_fn *f;
  size_t i;

  if (name == NULL || *name == '\0' || fn == NULL)
    return -EINVAL;
  for (i = 0; i < c->nfns; i++)
    if (strcmp(c->fns[i].name, name) == 0) {
      c->fns[i].fn = fn;
      c->fns[i].arg = arg;
      return 0;
    }
  f = realloc(c->fns, (c->nfns + 1) * sizeof(*f));
  if (f == NULL)
    return -ENOMEM;
  c->fns = f;
  f[c->nfns].name = strdup(name);
  if (f[c->nfns].name == NULL)
    return -ENOMEM;
  f[c->nfns].len = strlen(name);
  f[c->nfns].fn = fn;
  f[c->nfns].arg = arg;
  f[c->nfns].last_ns = UINT64_MAX;
  c->nfns++;
  return 0;
}

void actor_child_on_stop(actor_child *c, actor_child_stop_cb cb, void *arg) {
  c->stop_cb = cb;
  c->stop_arg = arg;
}

/* ---- sending ----------------------------------------------------------- */

static int child__chan_ok(const actor_child *c) {
  return c->chan_open && !c->chan.closing && !c->chan.eof;
}

/* Send what is queued, without blocking. */
static void child__flush(actor_child *c) {
  if (child__chan_ok(c) && c->chan.out.len > 0)
    c->chan.ops->flush(&c->chan);
  if (c->chan.out.len == 0)
    c->out_since = 0;
}

/* Backpressure for every kind of send: past the high-water mark, wait for
 * the parent to read (architecture.md §6).  0, or the peer is gone.  Called
 * after a send from the public calls and between dispatched records; not
 * from the frame callbacks, which send at most one error per frame. */
static int child__throttle(actor_child *c) {
  int r;
  if (c->chan.out.len <= CHILD_HWM || !child__chan_ok(c))
    return 0;
  r = c->chan.ops->drain(&c->chan, CHILD_LWM);
  /* The wait may have been long: look at the input at the next yield. */
  c->last_check = 0;
  c->yield_skip = 0;
  if (c->chan.out.len == 0)
    c->out_since = 0;
  return r;
}

static int child__send(actor_child *c, int kind, uint32_t id,
                       const void *payload, size_t len) {
  if (!child__chan_ok(c))
    return ACTOR_ECLOSED;
  return actor__chan_send_call(&c->chan, kind, id, NULL, 0, payload, len);
}

static int child__send_error(actor_child *c, uint32_t id, const char *type,
                             const char *msg, const char *tb) {
  struct actor__msg m;
  int r;
  if (!child__chan_ok(c))
    return ACTOR_ECLOSED;
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_ERROR;
  m.id = id;
  m.type.p = type ? type : "Error";
  m.type.n = strlen(m.type.p);
  m.message.p = msg ? msg : "";
  m.message.n = strlen(m.message.p);
  m.traceback.p = tb ? tb : "";
  m.traceback.n = strlen(m.traceback.p);
  r = actor__chan_send(&c->chan, &m);
  if (r == ACTOR_E2BIG) {
    /* An error must always get through, or the parent's call would wait
     * for the actor's end: cut the traceback, then the message. */
    m.traceback.n = 0;
    if (m.type.n > 256)
      m.type.n = 256;
    if (m.message.n > c->max_frame / 2)
      m.message.n = c->max_frame / 2;
    r = actor__chan_send(&c->chan, &m);
  }
  return r;
}

/* ---- contexts ------------------------------------------------------------ */

/* A zeroed context, the cache's or a new one. */
static actor_ctx *child__ctx_new(actor_child *c) {
  actor_ctx *x;
  if (c->nctx_free > 0) {
    x = ALIST_ENTRY(c->ctx_free.next, actor_ctx, node);
    alist_remove(&x->node);
    c->nctx_free--;
    memset(&x->node, 0, sizeof(x->node)); /* the rest was cleared */
    return x;
  }
  return calloc(1, sizeof(*x));
}

/* The call is over: keep its context for the next call, or free it.  A
 * cached one is cleared, so that a stale pointer into it finds no call
 * (c NULL, every flag as a new context's); under ASan none is cached. */
static void child__ctx_release(actor_child *c, actor_ctx *x) {
  if (!CHILD_CTX_CACHE_ON || c->nctx_free >= CHILD_CTX_CACHE || c->freeing) {
    free(x);
    return;
  }
  memset(x, 0, sizeof(*x));
  alist_insert_tail(&c->ctx_free, &x->node);
  c->nctx_free++;
}

size_t actor__child_ctx_cached(const actor_child *c) { return c->nctx_free; }

static void ctx__maybe_free(actor_ctx *x) {
  if (!x->answered || !x->released || x->in_fn)
    return;
  alist_remove(&x->node);
  child__ctx_release(x->c, x);
}

/* Mark answered and forget the id (the parent may reuse it). */
static void ctx__answered(actor_ctx *x) {
  x->answered = 1;
  if (x->mapped) {
    x->mapped = 0;
    actor__idmap_del(&x->c->ctxmap, x->id);
  }
}

/* The unanswered call with this id.  The one whose function is running is
 * not in the map: most functions answer before they return, and for them
 * the map's insert and delete were ~4% of a round trip.  (While it runs no
 * other call can have its id: the parent reuses an id only once it has the
 * answer, and a CALL read meanwhile is dispatched after it.) */
static actor_ctx *child__ctx_get(const actor_child *c, uint32_t id) {
  actor_ctx *x = c->running;
  if (x != NULL && x->id == id)
    return x->answered ? NULL : x;
  return actor__idmap_get(&c->ctxmap, id);
}

/* Nobody listens for cancellation: answer for the function, so that the
 * parent's call completes.  The function's own answer, if it comes, is
 * then refused with ACTOR_ECANCELED. */
static void ctx__answer_cancelled(actor_ctx *x) {
  x->cancel_done = 1;
  child__send_error(x->c, x->id, ACTOR__ERRTYPE_CANCELLED, "call cancelled",
                    "");
  ctx__answered(x);
}

/* Is the call cancelled, as the function sees it?  From the moment a STOP
 * has been read every call is. */
static int ctx__is_cancelled(const actor_ctx *x) {
  return (x->cancelled | x->c->stop_seen | x->c->stopping) != 0;
}

/* Run the cancel callback.  Only from the top of the loop (a record's
 * dispatch, the stop idle), never inside other user code.  The caller
 * pins x and frees it after. */
static void ctx__run_cancel_cb(actor_ctx *x) {
  x->cancel_done = 1;
  x->in_fn++;
  x->cancel_cb(x, x->cancel_arg);
  x->in_fn--;
}

/* A CANCEL for x was dispatched, or the actor is stopping. */
static void ctx__cancel(actor_ctx *x) {
  if (x->cancel_done || x->answered)
    return;
  x->cancelled = 1;
  if (x->cancel_cb != NULL)
    ctx__run_cancel_cb(x);
  else
    ctx__answer_cancelled(x);
}

int actor_ctx_return(actor_ctx *x, const void *value, size_t len) {
  actor_child *c = x->c;
  int r;

  if (x->released)
    return ACTOR_ESTATE;
  x->released = 1;
  if (x->answered) {
    ctx__maybe_free(x);
    return ACTOR_ECANCELED;
  }
  r = child__send(c, ACTOR__MSG_RETURN, x->id, value, len);
  if (r == ACTOR_E2BIG) {
    char msg[160];
    snprintf(msg, sizeof(msg),
             "return value of %zu bytes exceeds the maximum frame of %zu",
             len, c->max_frame);
    child__send_error(c, x->id, ACTOR__ERRTYPE_TOOBIG, msg, "");
  }
  ctx__answered(x);
  ctx__maybe_free(x);
  child__throttle(c);
  return r;
}

int actor_ctx_error(actor_ctx *x, const char *type, const char *message,
                    const char *traceback) {
  actor_child *c = x->c;
  int r;
  if (x->released)
    return ACTOR_ESTATE;
  x->released = 1;
  if (x->answered) {
    ctx__maybe_free(x);
    return ACTOR_ECANCELED;
  }
  r = child__send_error(c, x->id, type, message, traceback);
  ctx__answered(x);
  ctx__maybe_free(x);
  child__throttle(c);
  return r;
}

static void child__read_input(actor_child *c);

int actor_ctx_yield(actor_ctx *x, const void *item, size_t len) {
  actor_child *c = x->c;
  uint64_t now;
  int r, due;

  if (x->answered || x->released)
    return x->cancelled ? ACTOR_ECANCELED : ACTOR_ESTATE;
  if (x->end_sent && !ctx__is_cancelled(x))
    return ACTOR_ESTATE;
  /* A function that streams without returning keeps the loop from reading
   * and writing: do both ourselves, now and then — read before deciding,
   * send after queueing, so that this item leaves too.  x stays valid:
   * reading runs no user code, and only the runtime's own answers. */
  due = 0;
  if (c->yield_skip > 0) {
    c->yield_skip--; /* see CHILD_YIELD_STRIDE */
  } else {
    now = child__coarse_ns();
    if (now == c->yield_clock && c->yield_stride < CHILD_YIELD_STRIDE)
      c->yield_stride *= 2;
    else if (now != c->yield_clock)
      c->yield_stride = 1;
    c->yield_clock = now;
    c->yield_skip = c->yield_stride - 1;
    /* Signed: last_check may come from the precise clock (the
     * dispatcher's), which runs up to a tick ahead of the coarse one. */
    due = (int64_t)(now - c->last_check) >= (int64_t)CHILD_CHECK_NS;
    if (due) {
      c->last_check = now;
      child__read_input(c);
    }
  }
  if (ctx__is_cancelled(x) || x->answered) {
    x->cancelled = 1;
    if (x->cancel_cb == NULL && !x->answered)
      ctx__answer_cancelled(x);
    /* A callback, if any, runs when the CANCEL's record is dispatched (or
     * at the stop): after this function has returned. */
    return ACTOR_ECANCELED;
  }
  r = child__send(c, ACTOR__MSG_ITEM, x->id, item, len);
  if (r)
    return r;
  if (due)
    child__flush(c);
  return c->chan.out.len > CHILD_HWM ? child__throttle(c) : 0;
}

int actor_ctx_end(actor_ctx *x) {
  int r;
  if (x->answered || x->released || x->end_sent)
    return ACTOR_ESTATE;
  r = child__send(x->c, ACTOR__MSG_END, x->id, NULL, 0);
  if (r)
    return r;
  x->end_sent = 1;
  return child__throttle(x->c);
}

void actor_ctx_on_item(actor_ctx *x, actor_item_cb cb, void *arg) {
  x->item_cb = cb;
  x->item_arg = arg;
}

void actor_ctx_on_cancel(actor_ctx *x, actor_cancel_cb cb, void *arg) {
  x->cancel_cb = cb;
  x->cancel_arg = arg;
}

int actor_ctx_cancelled(const actor_ctx *x) { return ctx__is_cancelled(x); }
const char *actor_ctx_fn(const actor_ctx *x) { return x->fn; }
actor_child *actor_ctx_child(const actor_ctx *x) { return x->c; }

/* ---- reading: frames become records -------------------------------------- */

static int child__queue(actor_child *c, const struct child_rec *rec,
                        const char *a, size_t alen, const char *b,
                        size_t blen) {
  size_t need = sizeof(*rec) + alen + blen;
  char *p;

  if (c->freeing || c->disp_closed)
    return ACTOR_ECLOSED; /* nothing would dispatch it */
  if (actor__buf_reserve(&c->rin, need))
    return -ENOMEM;
  p = actor__buf_tail(&c->rin);
  memcpy(p, rec, sizeof(*rec));
  actor__copy_small(p + sizeof(*rec), a, alen);
  actor__copy_small(p + sizeof(*rec) + alen, b, blen);
  c->rin.len += need;
  /* The check handle dispatches in this loop iteration, right after the
   * reads.  Records a yield read outside the dispatcher (a function
   * answering from a timer) also start the idle handle, so that the loop
   * does not sleep on them if this iteration's check phase has passed. */
  if (c->pumping && !c->dispatching)
    uv_idle_start(&c->disp_idle, child__idle_cb);
  return 0;
}

static void child__schedule_stop(actor_child *c, int asked);

/* A CANCEL was read: the function may look (yield, actor_ctx_cancelled)
 * before the record is dispatched.  For a call not started yet (its CALL
 * is queued too), the id is remembered until then. */
static void child__note_cancel(actor_child *c, uint32_t id) {
  actor_ctx *x = child__ctx_get(c, id);
  if (x != NULL)
    x->cancelled = 1;
  else if (id != 0)
    (void)actor__idmap_put(&c->early, id, c); /* best effort */
}

static void ctx__lost_item_as(actor_ctx *x, const char *type,
                              const char *msg);

static int child__on_frame(struct actor__chan *ch, const char *body,
                           size_t len) {
  actor_child *c = ch->data;
  struct actor__msg m;
  struct child_rec rec;
  const char *a = NULL, *b = NULL;
  char msg[160];
  actor_ctx *x;
  int r;

  /* Frames after a bad one are consumed and dropped (returning non-zero
   * would leave them in the input buffer, which a pump keeps growing). */
  if (c->broken)
    return 0;
  memset(&rec, 0, sizeof(rec));
  r = actor__msg_decode(&m, body, len); /* (which zeroes m first) */
  rec.kind = m.kind;
  rec.id = m.id;
  if (r == ACTOR_EDEPTH) {
    /* Well formed, but nested deeper than the protocol allows: that call's
     * error, never the actor's end (protocol.md §3.1).  A libactor parent
     * never sends one; a parent in another language might. */
    snprintf(msg, sizeof(msg), "%s nests deeper than %d levels",
             m.kind == ACTOR__MSG_CALL ? "the call's arguments"
                                       : "a stream item",
             ACTOR__MAX_DEPTH);
    if (m.kind == ACTOR__MSG_CALL)
      child__send_error(c, m.id, ACTOR__ERRTYPE_TOODEEP, msg, "");
    else if ((x = child__ctx_get(c, m.id)) != NULL)
      ctx__lost_item_as(x, ACTOR__ERRTYPE_TOODEEP, msg);
    return 0;
  }
  if (r) {
    rec.kind = CHILD_REC_BROKEN;
    rec.err = r;
  } else {
    switch (m.kind) {
    case ACTOR__MSG_CALL:
      a = m.fn.p;
      rec.fn_len = m.fn.n;
      /* fallthrough */
    case ACTOR__MSG_ITEM:
      b = m.payload;
      rec.pl_len = m.payload_len;
      break;
    case ACTOR__MSG_END:
      break;
    case ACTOR__MSG_CANCEL:
      child__note_cancel(c, m.id);
      break;
    case ACTOR__MSG_STOP:
      c->stop_seen = 1;
      break;
    default:
      rec.kind = CHILD_REC_BROKEN;
      break;
    }
  }
  rec.msg_kind = m.kind;
  if (rec.kind == CHILD_REC_BROKEN)
    c->broken = 1;
  r = child__queue(c, &rec, a, rec.fn_len, b, rec.pl_len);
  if (r) {
    c->broken = 1;
    child__schedule_stop(c, 0);
    c->in_chan++;
    actor__logf(&c->log, ACTOR_LOG_ERROR,
                "cannot queue a frame from the parent (%s); stopping",
                actor_err_name(r));
    c->in_chan--;
  }
  return 0;
}

/* The call's input lost an item: end the call, as the parent does in the
 * mirror case, and mark it cancelled.  Its own answer is then refused with
 * ACTOR_ECANCELED; the caller sees that the cancel callback runs. */
/* The call's input lost an item it could not take: end the call, as the
 * parent does in the mirror case (type: TOOBIG or TOODEEP). */
static void ctx__lost_item_as(actor_ctx *x, const char *type,
                              const char *msg) {
  child__send_error(x->c, x->id, type, msg, "");
  x->cancelled = 1;
  ctx__answered(x);
}

static void ctx__lost_item(actor_ctx *x, uint64_t len) {
  char msg[160];
  snprintf(msg, sizeof(msg),
           "stream item of %llu bytes exceeds the maximum frame of %zu",
           (unsigned long long)len, x->c->max_frame);
  ctx__lost_item_as(x, ACTOR__ERRTYPE_TOOBIG, msg);
}

static int child__on_oversize(struct actor__chan *ch, int kind, uint32_t id,
                              uint64_t len) {
  actor_child *c = ch->data;
  struct child_rec rec;
  char msg[160];
  actor_ctx *x;

  if (kind == ACTOR__MSG_CALL && id != 0) {
    snprintf(msg, sizeof(msg),
             "call of %llu bytes exceeds the maximum frame of %zu",
             (unsigned long long)len, c->max_frame);
    child__send_error(c, id, ACTOR__ERRTYPE_TOOBIG, msg, "");
    return 0;
  }
  if (kind == ACTOR__MSG_ITEM && id != 0 && !c->broken) {
    memset(&rec, 0, sizeof(rec));
    rec.id = id;
    x = child__ctx_get(c, id); /* only unanswered calls */
    if (x != NULL) {
      /* At once, so that a running function's yield sees it; its cancel
       * callback runs from the dispatcher (user code never runs here). */
      ctx__lost_item(x, len);
      rec.kind = CHILD_REC_TELL;
      rec.x = x;
      x->in_fn++; /* until the record runs */
      if (child__queue(c, &rec, NULL, 0, NULL, 0))
        x->in_fn--; /* the flag alone, then */
      return 0;
    }
    /* Its CALL may be queued, not started yet: decide in order. */
    rec.kind = CHILD_REC_OVERSIZE;
    rec.size = len;
    if (child__queue(c, &rec, NULL, 0, NULL, 0) == 0)
      return 0;
  }
  c->in_chan++;
  actor__logf(&c->log, ACTOR_LOG_WARN,
              "oversized frame (%llu bytes, kind %d) from the parent skipped",
              (unsigned long long)len, kind);
  c->in_chan--;
  return 0;
}

static void child__on_eof(struct actor__chan *ch, int err) {
  actor_child *c = ch->data;
  child__schedule_stop(c, 0);
  c->in_chan++;
  actor__logf(&c->log, ACTOR_LOG_INFO, "parent gone (%s); stopping",
              err ? actor_strerror(err) : "end of stream");
  c->in_chan--;
}

static void child__closed_one(actor_child *c);

static void child__on_closed(struct actor__chan *ch) {
  actor_child *c = ch->data;
  c->chan_open = 0;
  child__closed_one(c);
}

static const struct actor__chan_cbs child_chan_cbs = {
    child__on_frame,
    child__on_oversize,
    child__on_eof,
    child__on_closed,
    NULL, /* on_drain: the child blocks instead (drain) */
};

/* Read what has arrived, from inside a function (actor_ctx_yield).  Safe
 * because no code of the channel is below us on the stack: functions run
 * from the dispatcher, never from the frame callback.  What is read
 * becomes records behind the current one. */
static void child__read_input(actor_child *c) {
  if (c->stopping || c->broken || c->in_chan || c->pumping ||
      !child__chan_ok(c))
    return;
  if (c->rin.len >= CHILD_DEFER_MAX)
    return;
  c->pumping = 1;
  c->chan.ops->pump(&c->chan);
  c->pumping = 0;
}

/* ---- dispatch ------------------------------------------------------------ */

/* Names are short: two overlapping 4-byte loads (or a byte loop) beat a
 * call to memcmp. */
static int child__same(const char *a, const char *b, size_t n) {
  uint32_t a0, a1, b0, b1;
  if (n > 8 || n < 4) {
    if (n > 8)
      return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
      if (a[i] != b[i])
        return 0;
    return 1;
  }
  memcpy(&a0, a, 4);
  memcpy(&a1, a + n - 4, 4);
  memcpy(&b0, b, 4);
  memcpy(&b1, b + n - 4, 4);
  return a0 == b0 && a1 == b1;
}

static long child__find_fn(const actor_child *c, const char *name,
                           size_t len) {
  size_t i;
  for (i = 0; i < c->nfns; i++)
    if (c->fns[i].len == len && child__same(c->fns[i].name, name, len))
      return (long)i;
  return -1;
}

static void child__on_call(actor_child *c, const struct child_rec *rec,
                           const char *data, long fidx) {
  const char *args = data + rec->fn_len;
  struct child_fn *f;
  actor_ctx *x;
  char msg[300];
  int r;

  if (fidx < 0) {
    snprintf(msg, sizeof(msg), "actor '%s' has no function '%.*s'", c->name,
             (int)(rec->fn_len > 200 ? 200 : rec->fn_len), data);
    child__send_error(c, rec->id, ACTOR__ERRTYPE_NOFUNC, msg, "");
    return;
  }
  if (c->stopping) {
    child__send_error(c, rec->id, ACTOR__ERRTYPE_CANCELLED,
                      "actor is stopping", "");
    return;
  }
  /* (Id 0 never gets here: the decoder refuses it for a CALL.) */
  if (child__ctx_get(c, rec->id) != NULL) {
    child__send_error(c, rec->id, ACTOR__ERRTYPE_BADFRAME,
                      "call id already in use", "");
    return;
  }
  x = child__ctx_new(c);
  if (x == NULL) {
    child__send_error(c, rec->id, ACTOR__ERRTYPE_FAILED, "out of memory", "");
    return;
  }
  f = &c->fns[fidx];
  x->c = c;
  x->id = rec->id;
  x->fidx = (size_t)fidx;
  x->fn = f->name;
  /* Its CANCEL was read with it, before it could be marked. */
  if (c->early.count > 0 && actor__idmap_get(&c->early, rec->id) != NULL)
    x->cancelled = 1;
  alist_insert_tail(&c->ctxs, &x->node);
  x->in_fn++;
  c->running = x;
  r = f->fn(x, args, rec->pl_len, f->arg);
  c->running = NULL;
  x->in_fn--; /* a record read meanwhile may pin it too */
  if (r < 0 && !x->released) {
    /* The codes the parent knows by type keep their meaning. */
    actor_ctx_error(x,
                    r == ACTOR_ECANCELED ? ACTOR__ERRTYPE_CANCELLED
                    : r == ACTOR_E2BIG   ? ACTOR__ERRTYPE_TOOBIG
                                         : actor_err_name(r),
                    actor_strerror(r), "");
    return;
  }
  if (!x->answered) {
    if (actor__idmap_put(&c->ctxmap, x->id, x) == 0) {
      x->mapped = 1;
    } else {
      /* It could not be found again (its items, its CANCEL): end it now;
       * the function's own answer, later, is refused. */
      child__send_error(c, x->id, ACTOR__ERRTYPE_FAILED, "out of memory",
                        "");
      ctx__answered(x);
    }
  }
  ctx__maybe_free(x);
}

static void child__on_item(actor_child *c, const struct child_rec *rec,
                           const char *data) {
  actor_ctx *x = child__ctx_get(c, rec->id);

  if (x == NULL || x->answered)
    return; /* the call is over; items in flight are dropped */
  if (x->item_cb == NULL) {
    if (!x->warned)
      actor__logf(&c->log, ACTOR_LOG_WARN,
                  "call %u (%s) got a stream item but takes none; dropped",
                  (unsigned)rec->id, x->fn);
    x->warned = 1;
    return;
  }
  x->in_fn++;
  if (rec->kind == ACTOR__MSG_ITEM)
    x->item_cb(x, data, rec->pl_len, x->item_arg);
  else
    x->item_cb(x, NULL, 0, x->item_arg);
  x->in_fn--;
  ctx__maybe_free(x);
}

/* The function whose code a record will run, or -1 when it runs none. */
static long child__rec_fn(const actor_child *c, const struct child_rec *rec,
                          const char *data) {
  actor_ctx *x = NULL;
  switch (rec->kind) {
  case ACTOR__MSG_CALL: /* (refused while stopping: no harm) */
    return child__find_fn(c, data, rec->fn_len);
  case ACTOR__MSG_ITEM:
  case ACTOR__MSG_END:
    x = child__ctx_get(c, rec->id);
    return x && x->item_cb ? (long)x->fidx : -1;
  case ACTOR__MSG_CANCEL:
    x = child__ctx_get(c, rec->id);
    return x && x->cancel_cb && !x->cancel_done ? (long)x->fidx : -1;
  case CHILD_REC_TELL:
    x = rec->x;
    return x->cancel_cb && !x->cancel_done && !x->released ? (long)x->fidx
                                                            : -1;
  case CHILD_REC_OVERSIZE:
    x = child__ctx_get(c, rec->id);
    return x && x->cancel_cb && !x->cancel_done ? (long)x->fidx : -1;
  default:
    return -1;
  }
}

static void child__run(actor_child *c, const struct child_rec *rec,
                       const char *data, long fidx) {
  actor_ctx *x;

  switch (rec->kind) {
  case ACTOR__MSG_CALL:
    child__on_call(c, rec, data, fidx);
    break;
  case ACTOR__MSG_ITEM:
  case ACTOR__MSG_END:
    child__on_item(c, rec, data);
    break;
  case ACTOR__MSG_CANCEL:
    actor__idmap_del(&c->early, rec->id);
    x = child__ctx_get(c, rec->id);
    if (x != NULL) {
      x->in_fn++;
      ctx__cancel(x);
      x->in_fn--;
      ctx__maybe_free(x);
    }
    break;
  case ACTOR__MSG_STOP:
    child__schedule_stop(c, 1);
    break;
  case CHILD_REC_TELL:
    x = rec->x; /* pinned by the record */
    if (fidx >= 0)
      ctx__run_cancel_cb(x);
    x->in_fn--;
    ctx__maybe_free(x);
    break;
  case CHILD_REC_OVERSIZE:
    x = child__ctx_get(c, rec->id);
    if (x == NULL || x->answered) {
      actor__logf(&c->log, ACTOR_LOG_WARN,
                  "oversized item (%llu bytes) for call %u, which is not in "
                  "progress; skipped",
                  (unsigned long long)rec->size, (unsigned)rec->id);
      break;
    }
    x->in_fn++;
    ctx__lost_item(x, rec->size);
    if (fidx >= 0) /* a callback that has not run yet */
      ctx__run_cancel_cb(x);
    x->in_fn--;
    ctx__maybe_free(x);
    break;
  default: /* CHILD_REC_BROKEN */
    /* The parent is broken or not a libactor parent; nothing good can
     * come of answering.  End as if it had gone away. */
    if (rec->err)
      actor__logf(&c->log, ACTOR_LOG_ERROR,
                  "malformed frame from the parent (%s); stopping",
                  actor_err_name(rec->err));
    else
      actor__logf(&c->log, ACTOR_LOG_ERROR,
                  "message kind %d is not for a child; stopping",
                  rec->msg_kind);
    child__schedule_stop(c, 0);
    break;
  }
}

/* Drop queued records without running them (after a bad frame, and at
 * free).  Records that pin a context release it. */
static void child__drop_records(actor_child *c, struct abuf *b) {
  struct child_rec rec;
  while (b->len >= sizeof(rec)) {
    memcpy(&rec, actor__buf_data(b), sizeof(rec));
    if (rec.kind == CHILD_REC_TELL) {
      rec.x->in_fn--;
      ctx__maybe_free(rec.x);
    }
    actor__buf_consume(b, sizeof(rec) + rec.fn_len + rec.pl_len);
  }
  b->len = 0;
  b->off = 0;
}

/* Run the queued records, in order.  Never re-entered: records read while
 * one runs (by a yield) go to `rin` and run after it. */
static void child__dispatch(actor_child *c) {
  struct child_rec rec;
  const char *data;
  uint64_t t0 = 0, now = 0;
  long fidx;
  int broken, timed, fresh = 0; /* fresh: `now` is the time */

  if (c->dispatching)
    return;
  c->dispatching = 1;
  /* Sends made from here on only queue: the answers leave between records
   * when one must not wait (below), and all together at the end, without
   * scheduling the channel's flush per send. */
  c->chan.corked = 1;
  /* At most one clock read per record, and none for a record run while
   * nothing waits to be sent: the time a timed record's code ended is when
   * the next one starts (nothing between them runs user code or waits,
   * but the throttle, after which the clock is read again). */
  if (c->chan.out.len == 0) {
    c->out_since = 0;
  } else if (c->out_since == 0) {
    now = uv_hrtime();
    fresh = 1;
    c->out_since = now;
  }
  for (;;) {
    if (c->rq.len == 0) {
      struct abuf t;
      if (c->rin.len == 0)
        break;
      t = c->rq;
      c->rq = c->rin;
      c->rin = t;
    }
    memcpy(&rec, actor__buf_data(&c->rq), sizeof(rec));
    data = actor__buf_data(&c->rq) + sizeof(rec);
    fidx = child__rec_fn(c, &rec, data);
    timed = fidx >= 0 && (c->chan.out.len > 0 ||
                          c->fns[fidx].last_ns == UINT64_MAX);
    if (timed) {
      if (!fresh)
        now = uv_hrtime();
      t0 = now;
      if (c->chan.out.len > 0 && c->out_since == 0)
        c->out_since = now; /* queued by an untimed record */
      /* An answer must not wait for other calls' work: unless the code
       * about to run is known to be quick (and the batch is young), send
       * what is queued first. */
      if (c->chan.out.len > 0 &&
          (c->fns[fidx].last_ns >= CHILD_QUICK_NS ||
           t0 - c->out_since >= CHILD_BATCH_NS)) {
        child__flush(c);
        t0 = uv_hrtime();
      }
      /* The loop has just read: the function's first yield need not. */
      c->last_check = t0;
    } else {
      /* The same from the loop's own clock (milliseconds, read when its
       * poll returned: at most that much earlier, so never later). */
      c->last_check = uv_now(c->loop) * 1000000u;
    }
    c->yield_skip = 0; /* a new function's first yield reads the clock */
    c->yield_stride = 1;
    child__run(c, &rec, data, fidx);
    fresh = timed;
    if (timed) {
      now = uv_hrtime();
      c->fns[fidx].last_ns = now - t0;
      if (c->chan.out.len > 0 && c->out_since == 0)
        c->out_since = now;
    }
    broken = rec.kind == CHILD_REC_BROKEN;
    actor__buf_consume(&c->rq, sizeof(rec) + rec.fn_len + rec.pl_len);
    if (c->chan.out.len > CHILD_HWM) {
      child__throttle(c);
      fresh = 0; /* the wait is nobody's run time */
    }
    if (broken) {
      child__drop_records(c, &c->rq);
      child__drop_records(c, &c->rin);
    }
  }
  if (c->rq.cap > CHILD_KEEP)
    actor__buf_trim(&c->rq, CHILD_KEEP);
  if (c->rin.cap > CHILD_KEEP)
    actor__buf_trim(&c->rin, CHILD_KEEP);
  uv_idle_stop(&c->disp_idle);
  c->dispatching = 0;
  c->chan.corked = 0;
  /* The answers leave now, in one send. */
  child__flush(c);
}

static void child__check_cb(uv_check_t *h) {
  actor_child *c = h->data;
  if (c->rq.len > 0 || c->rin.len > 0)
    child__dispatch(c);
}
static void child__idle_cb(uv_idle_t *h) { child__dispatch(h->data); }

/* ---- stopping and closing ------------------------------------------------ */

static void child__close_handle(actor_child *c, uv_handle_t *h);
static void child__close_chan(actor_child *c);
static void child__close_disp(actor_child *c);

/* Cancel every call in progress.  The callbacks may answer, and so free,
 * any other context (or start nothing new: CALLs are refused now), so the
 * walk holds no pointer across a callback but the pinned context's: the
 * list is moved aside and taken from the front each time. */
static void child__cancel_all(actor_child *c) {
  struct alist work, *n;
  actor_ctx *x;

  alist_init(&work);
  while (!alist_empty(&c->ctxs)) {
    n = c->ctxs.next;
    alist_remove(n);
    alist_insert_tail(&work, n);
  }
  while (!alist_empty(&work)) {
    n = work.next;
    alist_remove(n);
    alist_insert_tail(&c->ctxs, n);
    x = ALIST_ENTRY(n, actor_ctx, node);
    x->in_fn++;
    ctx__cancel(x);
    x->in_fn--;
    ctx__maybe_free(x);
  }
}

static void child__stop_idle(uv_idle_t *h) {
  actor_child *c = h->data;

  uv_idle_stop(h);
  if (c->stop_done)
    return;
  c->stop_done = 1;
  /* What was read before the stop is handled first (CALLs are refused). */
  child__dispatch(c);
  child__cancel_all(c);
  if (c->stop_cb != NULL)
    c->stop_cb(c, c->stop_arg);
  /* Answers queued by the cancellations go out before the channel closes;
   * the parent reads until EOF, so this wait is short. */
  if (child__chan_ok(c))
    c->chan.ops->drain(&c->chan, 0);
  child__close_chan(c);
  child__close_handle(c, (uv_handle_t *)&c->stop_idle);
  child__close_disp(c);
  child__close_handle(c, (uv_handle_t *)&c->disp_idle);
}

static void child__schedule_stop(actor_child *c, int asked) {
  if (asked)
    c->got_stop = 1;
  if (c->stopping || c->freeing)
    return;
  c->stopping = 1;
  uv_idle_start(&c->stop_idle, child__stop_idle);
}

void actor_child_stop(actor_child *c) { child__schedule_stop(c, 1); }

int actor_child_start(actor_child *c) {
  struct actor__msg m;
  if (c->started)
    return ACTOR_ESTATE;
  c->started = 1;
  actor__msg_hello(&m, c->backend, c->name);
  return actor__chan_send(&c->chan, &m);
}

int actor_child_run(actor_child *c) {
  int r = actor_child_start(c);
  if (r)
    return 1;
  uv_run(c->loop, UV_RUN_DEFAULT);
  return c->got_stop ? 0 : 3;
}

static void child__free_ctxs(struct alist *l) {
  while (!alist_empty(l)) {
    struct alist *n = l->next;
    alist_remove(n);
    free(ALIST_ENTRY(n, actor_ctx, node));
  }
}

static void child__release(actor_child *c) {
  size_t i;

  child__drop_records(c, &c->rq);
  child__drop_records(c, &c->rin);
  child__free_ctxs(&c->ctxs);
  child__free_ctxs(&c->ctx_free);
  c->nctx_free = 0;
  actor__buf_fini(&c->rq);
  actor__buf_fini(&c->rin);
  actor__idmap_fini(&c->ctxmap);
  actor__idmap_fini(&c->early);
  for (i = 0; i < c->nfns; i++)
    free(c->fns[i].name);
  free(c->fns);
  free(c->name);
  free(c->backend);
  free(c);
}

static void child__closed_one(actor_child *c) {
  /* With an adopted loop the memory goes with the last close callback,
   * when the loop's owner next runs it (actor_child_free). */
  if (--c->closes == 0 && c->freeing && !c->owns_loop)
    child__release(c);
}

static void child__handle_closed(uv_handle_t *h) { child__closed_one(h->data); }

static void child__close_handle(actor_child *c, uv_handle_t *h) {
  if (uv_is_closing(h))
    return;
  c->closes++;
  uv_close(h, child__handle_closed);
}

/* The dispatcher's check handle; nothing is queued after this. */
static void child__close_disp(actor_child *c) {
  c->disp_closed = 1;
  child__close_handle(c, (uv_handle_t *)&c->disp_check);
}

static void child__close_chan(actor_child *c) {
  if (!c->chan_open || c->chan.closing)
    return;
  c->closes++;
  actor__chan_close(&c->chan);
}

static void child__close_stray(uv_handle_t *h, void *arg) {
  int *n = arg;
  if (!uv_is_closing(h)) {
    uv_close(h, NULL);
    (*n)++;
  }
}

void actor_child_free(actor_child *c) {
  uv_loop_t *loop;
  int r, stray = 0;

  if (c == NULL)
    return;
  c->freeing = 1;
  child__close_chan(c);
  child__close_handle(c, (uv_handle_t *)&c->stop_idle);
  child__close_disp(c);
  child__close_handle(c, (uv_handle_t *)&c->disp_idle);
  if (!c->owns_loop) {
    /* Not our loop: we must not run it.  Free now if nothing is closing,
     * else from the last close callback. */
    if (c->closes == 0)
      child__release(c);
    return;
  }
  /* Our loop: run it so that the close callbacks run; then it must close
   * before its memory goes.  Handles the program left on it are closed
   * too (their close callbacks run here); if it still cannot close
   * (requests in flight), it is left allocated rather than freed under
   * them. */
  loop = c->loop;
  uv_run(loop, UV_RUN_NOWAIT);
  r = uv_loop_close(loop);
  if (r == UV_EBUSY) {
    uv_walk(loop, child__close_stray, &stray);
    uv_run(loop, UV_RUN_NOWAIT);
    r = uv_loop_close(loop);
    actor__logf(&c->log, ACTOR_LOG_WARN,
                "actor_child_free: closed %d handle(s) left open on the "
                "actor's loop",
                stray);
  }
  if (r)
    actor__logf(&c->log, ACTOR_LOG_WARN,
                "actor_child_free: the actor's loop cannot close (%s); "
                "leaving it allocated",
                uv_strerror(r));
  else
    free(loop);
  if (c->closes == 0)
    child__release(c);
  /* else: a close callback that never ran; leaking beats freeing memory a
   * handle still points at. */
}
