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
 * actor_ctx_on_item().  Output is batched like the parent's; a function that
 * yields faster than the parent reads is throttled by blocking writes once a
 * high-water mark is passed (the parent's loop always reads, so the wait
 * ends when it catches up, or when it is gone).
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
#include <unistd.h>

#include "rt/internal.h"

/* Queue depth that makes actor_ctx_yield() wait for the parent. */
#define CHILD_HWM (512 * 1024)
#define CHILD_LWM (128 * 1024)

struct child_fn {
  char *name;
  actor_fn fn;
  void *arg;
};

struct actor_ctx {
  struct alist node; /* on c->ctxs */
  actor_child *c;
  uint32_t id;
  const char *fn;
  int in_fn;    /* the function is running: free after it returns */
  int answered; /* RETURN/ERROR sent (by the function or the runtime) */
  int released; /* the function is done with it too */
  int cancelled;
  int end_sent;
  actor_item_cb item_cb;
  void *item_arg;
  actor_cancel_cb cancel_cb;
  void *cancel_arg;
};

struct actor_child {
  uv_loop_t *loop;
  int owns_loop;
  struct actor__log log;
  struct actor__chan chan;
  int chan_open;
  char *name;
  char *backend;
  size_t max_frame;
  struct child_fn *fns;
  size_t nfns;
  struct idmap ctxmap;
  struct alist ctxs;
  uv_idle_t stop_idle;
  int started;
  int stopping;  /* stop processing scheduled or done */
  int got_stop;  /* the parent asked (vs. went away) */
  int stop_done; /* on_stop ran, channel closing */
  int freeing;   /* actor_child_free() was called */
  int closes;    /* handle closes not yet completed (the channel's too) */
  actor_child_stop_cb stop_cb;
  void *stop_arg;
};

/* ---- set-up ------------------------------------------------------------ */

static const struct actor__chan_cbs child_chan_cbs;

int actor_child_new(actor_child **cp, uv_loop_t *loop) {
  struct actor__child_env env;
  actor_child *c;
  int r;

  *cp = NULL;
  r = actor__child_env_take(&env);
  if (r)
    return r;
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    close(env.fd); /* ours now; the parent then sees EOF */
    actor__child_env_free(&env);
    return -ENOMEM;
  }
  actor__log_init(&c->log);
  alist_init(&c->ctxs);
  actor__idmap_init(&c->ctxmap);
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
  *cp = c;
  return 0;

fail:
  actor__idmap_fini(&c->ctxmap);
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
  f[c->nfns].fn = fn;
  f[c->nfns].arg = arg;
  c->nfns++;
  return 0;
}

void actor_child_on_stop(actor_child *c, actor_child_stop_cb cb, void *arg) {
  c->stop_cb = cb;
  c->stop_arg = arg;
}

/* ---- sending ----------------------------------------------------------- */

static int child__send(actor_child *c, int kind, uint32_t id,
                       const void *payload, size_t len) {
  struct actor__msg m;
  if (!c->chan_open || c->chan.closing || c->chan.eof)
    return ACTOR_ECLOSED;
  memset(&m, 0, sizeof(m));
  m.kind = kind;
  m.id = id;
  m.payload = payload;
  m.payload_len = len;
  return actor__chan_send(&c->chan, &m);
}

static int child__send_error(actor_child *c, uint32_t id, const char *type,
                             const char *msg, const char *tb) {
  struct actor__msg m;
  int r;
  if (!c->chan_open || c->chan.closing || c->chan.eof)
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

static void ctx__maybe_free(actor_ctx *x) {
  if (!x->answered || !x->released || x->in_fn)
    return;
  alist_remove(&x->node);
  free(x);
}

/* Mark answered and forget the id (the parent may reuse it). */
static void ctx__answered(actor_ctx *x) {
  x->answered = 1;
  actor__idmap_del(&x->c->ctxmap, x->id);
}

/* The caller pins x (in_fn) and frees it after: the callback may answer,
 * and so free, this context or any other. */
static void ctx__cancel(actor_ctx *x) {
  actor_child *c = x->c;
  if (x->cancelled || x->answered)
    return;
  x->cancelled = 1;
  if (x->cancel_cb != NULL) {
    x->in_fn++;
    x->cancel_cb(x, x->cancel_arg);
    x->in_fn--;
    return;
  }
  /* Nobody listens for cancellation: answer for the function, so that the
   * parent's call completes.  The function's own answer, if it comes, is
   * then refused with ACTOR_ECANCELED. */
  child__send_error(c, x->id, ACTOR__ERRTYPE_CANCELLED, "call cancelled", "");
  ctx__answered(x);
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
  return r;
}

int actor_ctx_error(actor_ctx *x, const char *type, const char *message,
                    const char *traceback) {
  int r;
  if (x->released)
    return ACTOR_ESTATE;
  x->released = 1;
  if (x->answered) {
    ctx__maybe_free(x);
    return ACTOR_ECANCELED;
  }
  r = child__send_error(x->c, x->id, type, message, traceback);
  ctx__answered(x);
  ctx__maybe_free(x);
  return r;
}

int actor_ctx_yield(actor_ctx *x, const void *item, size_t len) {
  actor_child *c = x->c;
  int r;

  if (x->answered || x->released)
    return x->cancelled ? ACTOR_ECANCELED : ACTOR_ESTATE;
  if (x->cancelled)
    return ACTOR_ECANCELED;
  if (x->end_sent)
    return ACTOR_ESTATE;
  r = child__send(c, ACTOR__MSG_ITEM, x->id, item, len);
  if (r)
    return r;
  if (c->chan.out.len > CHILD_HWM) {
    r = c->chan.ops->drain(&c->chan, CHILD_LWM);
    if (r)
      return r;
  }
  return 0;
}

int actor_ctx_end(actor_ctx *x) {
  int r;
  if (x->answered || x->released || x->end_sent)
    return ACTOR_ESTATE;
  r = child__send(x->c, ACTOR__MSG_END, x->id, NULL, 0);
  if (r == 0)
    x->end_sent = 1;
  return r;
}

void actor_ctx_on_item(actor_ctx *x, actor_item_cb cb, void *arg) {
  x->item_cb = cb;
  x->item_arg = arg;
}

void actor_ctx_on_cancel(actor_ctx *x, actor_cancel_cb cb, void *arg) {
  x->cancel_cb = cb;
  x->cancel_arg = arg;
}

int actor_ctx_cancelled(const actor_ctx *x) { return x->cancelled; }
const char *actor_ctx_fn(const actor_ctx *x) { return x->fn; }
actor_child *actor_ctx_child(const actor_ctx *x) { return x->c; }

/* ---- dispatch ------------------------------------------------------------ */

static void child__on_call(actor_child *c, const struct actor__msg *m) {
  struct child_fn *f = NULL;
  actor_ctx *x;
  char msg[300];
  size_t i;
  int r;

  for (i = 0; i < c->nfns; i++)
    if (strlen(c->fns[i].name) == m->fn.n &&
        memcmp(c->fns[i].name, m->fn.p, m->fn.n) == 0) {
      f = &c->fns[i];
      break;
    }
  if (f == NULL) {
    snprintf(msg, sizeof(msg), "actor '%s' has no function '%.*s'", c->name,
             (int)(m->fn.n > 200 ? 200 : m->fn.n), m->fn.p);
    child__send_error(c, m->id, ACTOR__ERRTYPE_NOFUNC, msg, "");
    return;
  }
  if (c->stopping) {
    child__send_error(c, m->id, ACTOR__ERRTYPE_CANCELLED,
                      "actor is stopping", "");
    return;
  }
  if (actor__idmap_get(&c->ctxmap, m->id) != NULL) {
    child__send_error(c, m->id, ACTOR__ERRTYPE_BADFRAME,
                      "call id already in use", "");
    return;
  }
  x = calloc(1, sizeof(*x));
  if (x == NULL || actor__idmap_put(&c->ctxmap, m->id, x)) {
    free(x);
    child__send_error(c, m->id, ACTOR__ERRTYPE_FAILED, "out of memory", "");
    return;
  }
  x->c = c;
  x->id = m->id;
  x->fn = f->name;
  alist_insert_tail(&c->ctxs, &x->node);
  x->in_fn = 1;
  r = f->fn(x, m->payload, m->payload_len, f->arg);
  x->in_fn = 0;
  if (r < 0 && !x->released) {
    /* The codes the parent knows by type keep their meaning. */
    actor_ctx_error(x,
                    r == ACTOR_ECANCELED ? ACTOR__ERRTYPE_CANCELLED
                    : r == ACTOR_E2BIG   ? ACTOR__ERRTYPE_TOOBIG
                                         : actor_err_name(r),
                    actor_strerror(r), "");
    return;
  }
  ctx__maybe_free(x);
}

static void child__schedule_stop(actor_child *c, int asked);

static int child__on_frame(struct actor__chan *ch, const char *body,
                           size_t len) {
  actor_child *c = ch->data;
  struct actor__msg m;
  actor_ctx *x;
  int r;

  r = actor__msg_decode(&m, body, len, &ch->zone);
  if (r) {
    /* The parent is broken or not a libactor parent; nothing good can come
     * of answering.  End as if it had gone away. */
    actor__logf(&c->log, ACTOR_LOG_ERROR,
                "malformed frame from the parent (%s); stopping",
                actor_err_name(r));
    child__schedule_stop(c, 0);
    return 1;
  }
  switch (m.kind) {
  case ACTOR__MSG_CALL:
    child__on_call(c, &m);
    break;
  case ACTOR__MSG_ITEM:
  case ACTOR__MSG_END:
    x = actor__idmap_get(&c->ctxmap, m.id);
    if (x == NULL || x->answered)
      break; /* the call is over; items in flight are dropped */
    if (x->item_cb == NULL) {
      actor__logf(&c->log, ACTOR_LOG_WARN,
                  "call %u (%s) got a stream item but takes none; dropped",
                  (unsigned)m.id, x->fn);
      break;
    }
    x->in_fn++;
    if (m.kind == ACTOR__MSG_ITEM)
      x->item_cb(x, m.payload, m.payload_len, x->item_arg);
    else
      x->item_cb(x, NULL, 0, x->item_arg);
    x->in_fn--;
    ctx__maybe_free(x);
    break;
  case ACTOR__MSG_CANCEL:
    x = actor__idmap_get(&c->ctxmap, m.id);
    if (x != NULL) {
      x->in_fn++;
      ctx__cancel(x);
      x->in_fn--;
      ctx__maybe_free(x);
    }
    break;
  case ACTOR__MSG_STOP:
    child__schedule_stop(c, 1);
    return 1;
  default:
    actor__logf(&c->log, ACTOR_LOG_ERROR,
                "message kind %d is not for a child; stopping", m.kind);
    child__schedule_stop(c, 0);
    return 1;
  }
  return 0;
}

static int child__on_oversize(struct actor__chan *ch, int kind, uint32_t id,
                              uint64_t len) {
  actor_child *c = ch->data;
  char msg[160];
  actor_ctx *x;

  if (kind == ACTOR__MSG_CALL && id != 0) {
    snprintf(msg, sizeof(msg),
             "call of %llu bytes exceeds the maximum frame of %zu",
             (unsigned long long)len, c->max_frame);
    child__send_error(c, id, ACTOR__ERRTYPE_TOOBIG, msg, "");
    return 0;
  }
  if (kind == ACTOR__MSG_ITEM && (x = actor__idmap_get(&c->ctxmap, id)) &&
      !x->answered) {
    /* The call's input lost an item: end the call, as the parent does in
     * the mirror case.  The function's own answer is then refused. */
    snprintf(msg, sizeof(msg),
             "stream item of %llu bytes exceeds the maximum frame of %zu",
             (unsigned long long)len, c->max_frame);
    child__send_error(c, id, ACTOR__ERRTYPE_TOOBIG, msg, "");
    x->cancelled = 1;
    ctx__answered(x);
    return 0;
  }
  actor__logf(&c->log, ACTOR_LOG_WARN,
              "oversized frame (%llu bytes, kind %d) from the parent skipped",
              (unsigned long long)len, kind);
  return 0;
}

static void child__on_eof(struct actor__chan *ch, int err) {
  actor_child *c = ch->data;
  actor__logf(&c->log, ACTOR_LOG_INFO, "parent gone (%s); stopping",
              err ? actor_strerror(err) : "end of stream");
  child__schedule_stop(c, 0);
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
};

/* ---- stopping ------------------------------------------------------------ */

static void child__close_handle(actor_child *c, uv_handle_t *h);
static void child__close_chan(actor_child *c);

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
  child__cancel_all(c);
  if (c->stop_cb != NULL)
    c->stop_cb(c, c->stop_arg);
  /* Answers queued by the cancellations go out before the channel closes;
   * the parent reads until EOF, so this wait is short. */
  if (c->chan_open && !c->chan.closing && !c->chan.eof)
    c->chan.ops->drain(&c->chan, 0);
  child__close_chan(c);
  child__close_handle(c, (uv_handle_t *)&c->stop_idle);
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

static void child__release(actor_child *c) {
  size_t i;

  while (!alist_empty(&c->ctxs)) {
    struct alist *n = c->ctxs.next;
    alist_remove(n);
    free(ALIST_ENTRY(n, actor_ctx, node));
  }
  actor__idmap_fini(&c->ctxmap);
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
