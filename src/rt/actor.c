/* Parent-side actors: spawn, the message dispatch, calls and their streams,
 * and the bounded stop sequence.
 *
 * Lifecycle.  An actor is freed when three things are true: the backend
 * reported that the child is gone (exited, killed, or abandoned after the
 * last deadline), the channel is closed, and the backend has released its
 * handles.  Then, and only then, every call still pending completes (DONE
 * with an error that says how the actor ended), the exit callback runs, and
 * the memory is released.  Nothing in that chain waits without a deadline:
 * the stop sequence is STOP -> graceful deadline -> SIGTERM -> term
 * deadline -> SIGKILL -> kill deadline -> abandoned.
 *
 * Re-entrancy.  User callbacks run from inside dispatch and may call back
 * into the library (stop, call, cancel, close the runtime).  The actor is
 * never freed synchronously from any of those paths: freeing happens in the
 * close callback of the actor's timer, on a fresh stack. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/backend.h"

#define DEFAULT_HELLO_MS 10000
#define DEFAULT_GRACEFUL_MS 2000
#define DEFAULT_TERM_MS 2000
#define DEFAULT_KILL_MS 2000
#define FREE_CALLS_MAX 256
/* An oversized frame attributed to a call is skipped (that call fails)
 * when it announces at most this many times the maximum frame; a longer
 * one closes the actor (docs/protocol.md §8.1). */
#define ACTOR__SKIP_FACTOR 4

struct actor_call {
  struct alist node; /* on rt->free_calls while recycled */
  actor *a;
  uint32_t id;
  int end_sent;
  int cancel_sent; /* a CANCEL went out (or was queued) */
  int cancelled;   /* actor_call_cancel() was called: DONE only from now */
  actor_call_cb cb;
  void *arg;
  char fn_inline[48];
  char *fn;
  char *err; /* "type\0message\0traceback\0", only after an error */
  size_t err_type_len, err_msg_len;
};

static void actor__maybe_finish(actor *a);
static void actor__stop_begin(actor *a, int graceful);
static int call__send_simple(actor_call *c, int kind, const void *p,
                             size_t n);

static const char *call__strs(const actor_call *c, int which) {
  const char *p;
  if (c->err == NULL)
    return "";
  p = c->err;
  if (which >= 1)
    p += c->err_type_len + 1;
  if (which >= 2)
    p += c->err_msg_len + 1;
  return p;
}

/* ---- calls: allocation ---------------------------------------------------- */

static actor_call *call__alloc(actor_rt *rt) {
  actor_call *c;
  if (!alist_empty(&rt->free_calls)) {
    struct alist *n = rt->free_calls.next;
    alist_remove(n);
    rt->nfree_calls--;
    c = ALIST_ENTRY(n, actor_call, node);
  } else {
    c = malloc(sizeof(*c));
    if (c == NULL)
      return NULL;
  }
  memset(c, 0, sizeof(*c));
  alist_init(&c->node);
  return c;
}

static void call__free(actor_rt *rt, actor_call *c) {
  if (c->fn != c->fn_inline)
    free(c->fn);
  if (c->err != NULL) /* (only a failed call has one) */
    free(c->err);
  if (rt->nfree_calls < FREE_CALLS_MAX) {
    alist_insert_tail(&rt->free_calls, &c->node);
    rt->nfree_calls++;
  } else {
    free(c);
  }
}

static void call__set_error(actor_call *c, const char *type, size_t tn,
                            const char *msg, size_t mn, const char *tb,
                            size_t tbn) {
  char *p = malloc(tn + mn + tbn + 3);
  free(c->err);
  c->err = p;
  if (p == NULL)
    return; /* the accessors then return "" */
  /* An empty string may come as a NULL pointer (msgpack-c does that):
   * memcpy must not see it, even for 0 bytes. */
  if (tn > 0)
    memcpy(p, type, tn);
  p[tn] = '\0';
  if (mn > 0)
    memcpy(p + tn + 1, msg, mn);
  p[tn + 1 + mn] = '\0';
  if (tbn > 0)
    memcpy(p + tn + mn + 2, tb, tbn);
  p[tn + mn + 2 + tbn] = '\0';
  c->err_type_len = tn;
  c->err_msg_len = mn;
}

/* Complete a call: DONE to the user, then recycle it. */
static void call__done(actor_call *c, int status, const char *data,
                       size_t len) {
  actor *a = c->a;
  actor__idmap_del(&a->calls, c->id);
  if (a->rx_call == c)
    a->rx_call = NULL;
  if (c->cb != NULL)
    c->cb(c, ACTOR_EV_DONE, status, data, len, c->arg);
  call__free(a->rt, c);
}

static void call__fail(actor_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call__fail(actor_call *c, int status, const char *fmt, ...) {
  char msg[ACTOR__ERRMSG_MAX];
  const char *name = actor_err_name(status);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  call__set_error(c, name, strlen(name), msg, strlen(msg), "", 0);
  call__done(c, status, NULL, 0);
}

/* ---- state changes -------------------------------------------------------- */

static void actor__note(actor *a, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Record why the runtime is ending the actor.  The first reason wins: it is
 * the cause, later ones are consequences. */
static void actor__note(actor *a, int err, const char *fmt, ...) {
  va_list ap;
  if (a->exit_error != 0)
    return;
  a->exit_error = err;
  a->cause = err;
  va_start(ap, fmt);
  vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
  va_end(ap);
  actor__logf(&a->rt->log, ACTOR_LOG_WARN, "actor '%s': %s (%s)", a->name,
              a->reason, actor_err_name(err));
}

static void actor__timer_cb(uv_timer_t *t);

/* Deadlines count from the moment of the call, not from the loop's cached
 * time: the host may call us between runs of the loop after blocking work
 * of its own, when that cached time is long stale. */
static void actor__arm(actor *a, int stage, uint64_t ms) {
  a->stage = stage;
  uv_update_time(a->rt->loop);
  uv_timer_start(&a->timer, actor__timer_cb, ms, 0);
}

static void actor__signal(actor *a, int how) {
  int r = a->backend->signal(a->bstate, how);
  if (r)
    actor__logf(&a->rt->log, ACTOR_LOG_DEBUG, "actor '%s': signal: %s",
                a->name, actor_strerror(r));
}

/* A protocol violation: the channel can no longer be trusted, so close it
 * (the child sees EOF and ends) and let the stop sequence bound the rest. */
static void actor__protocol_fail(actor *a, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void actor__protocol_fail(actor *a, int err, const char *fmt, ...) {
  char msg[ACTOR__ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  actor__note(a, err, "%s", msg);
  if (a->chan_open && !a->chan.closing)
    actor__chan_close(&a->chan);
  actor__stop_begin(a, 1);
}

static void actor__timer_cb(uv_timer_t *t) {
  actor *a = t->data;

  switch (a->stage) {
  case ACTOR__STAGE_HELLO:
    actor__note(a, ACTOR_ENOHELLO, "did not say hello within %llu ms",
                (unsigned long long)a->hello_ms);
    /* A child that never said hello will not obey STOP: signal at once. */
    a->state = ACTOR_STATE_STOPPING;
    if (a->chan_open && !a->chan.closing)
      actor__chan_close(&a->chan);
    actor__signal(a, ACTOR__SIG_TERM);
    actor__arm(a, ACTOR__STAGE_TERM, a->term_ms);
    break;
  case ACTOR__STAGE_GRACEFUL:
    actor__note(a, ACTOR_EKILLED, "did not stop within %llu ms",
                (unsigned long long)a->graceful_ms);
    actor__signal(a, ACTOR__SIG_TERM);
    actor__arm(a, ACTOR__STAGE_TERM, a->term_ms);
    break;
  case ACTOR__STAGE_TERM:
    actor__note(a, ACTOR_EKILLED, "ignored SIGTERM for %llu ms",
                (unsigned long long)a->term_ms);
    actor__signal(a, ACTOR__SIG_KILL);
    actor__arm(a, ACTOR__STAGE_KILL, a->kill_ms);
    break;
  case ACTOR__STAGE_KILL:
    /* SIGKILL did not end it in time (uninterruptible sleep, or a backend
     * whose child cannot be killed).  Stop waiting: it is reported as
     * abandoned, and whatever it leaves is the OS's to reap. */
    a->stage = ACTOR__STAGE_ABANDONED;
    /* Abandonment is what a supervisor must know first (something may be
     * left running), so it becomes the code; the reason keeps the cause. */
    if (a->exit_error == 0 || a->exit_error == ACTOR_EKILLED)
      snprintf(a->reason, sizeof(a->reason),
               "still running %llu ms after SIGKILL",
               (unsigned long long)a->kill_ms);
    a->exit_error = ACTOR_EABANDONED;
    actor__logf(&a->rt->log, ACTOR_LOG_ERROR, "actor '%s': %s", a->name,
                a->reason);
    actor__backend_exited(a, -1, 0, ACTOR_EABANDONED);
    break;
  default:
    break;
  }
}

/* Begin (or continue) ending the actor.  graceful: send STOP and wait;
 * otherwise signal at once.  Idempotent; never blocks. */
static void actor__stop_begin(actor *a, int graceful) {
  struct actor__msg m;

  if (a->exited)
    return;
  if (a->state < ACTOR_STATE_STOPPING)
    a->state = ACTOR_STATE_STOPPING;
  if (a->stage >= ACTOR__STAGE_TERM)
    return; /* already escalating */
  if (a->stage == ACTOR__STAGE_GRACEFUL) {
    if (!graceful) {
      actor__signal(a, ACTOR__SIG_TERM);
      actor__arm(a, ACTOR__STAGE_TERM, a->term_ms);
    }
    return;
  }
  if (!graceful) {
    actor__signal(a, ACTOR__SIG_TERM);
    actor__arm(a, ACTOR__STAGE_TERM, a->term_ms);
    return;
  }
  if (a->chan_open && !a->chan.closing && !a->chan.eof) {
    /* Calls queued before HELLO are dropped (they fail when the actor
     * ends); STOP goes out first. */
    if (a->chan.hold) {
      a->chan.out.len = 0;
      a->chan.out.off = 0;
    }
    memset(&m, 0, sizeof(m));
    m.kind = ACTOR__MSG_STOP;
    actor__chan_send(&a->chan, &m);
    actor__chan_release(&a->chan);
  }
  actor__arm(a, ACTOR__STAGE_GRACEFUL, a->graceful_ms);
}

/* ---- channel callbacks ------------------------------------------------- */

static int actor__map_error_type(const struct actor__str *t) {
#define IS(s) (t->n == sizeof(s) - 1 && memcmp(t->p, s, t->n) == 0)
  if (IS(ACTOR__ERRTYPE_NOFUNC))
    return ACTOR_ENOFUNC;
  if (IS(ACTOR__ERRTYPE_CANCELLED))
    return ACTOR_ECANCELED;
  if (IS(ACTOR__ERRTYPE_TOOBIG))
    return ACTOR_E2BIG;
  if (IS(ACTOR__ERRTYPE_BADFRAME))
    return ACTOR_EBADFRAME;
  if (IS(ACTOR__ERRTYPE_TOODEEP))
    return ACTOR_EDEPTH;
  return ACTOR_EREMOTE;
#undef IS
}

/* The actor sent something for call `c` that we cannot hand over (too
 * big, too deep): the call fails here.  If the call may still be running
 * in the actor, it is asked to stop (CANCEL); its later frames for this id
 * are ignored as those of a finished call. */
static void parent__call_refused(actor_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void parent__call_refused(actor_call *c, int code, const char *fmt,
                                 ...) {
  char msg[ACTOR__ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (!c->cancel_sent) {
    if (call__send_simple(c, ACTOR__MSG_CANCEL, NULL, 0) == 0)
      c->cancel_sent = 1;
  }
  call__fail(c, code, "%s", msg);
}

static void actor__on_hello(actor *a, const struct actor__msg *m) {
  if (a->got_hello) {
    actor__protocol_fail(a, ACTOR_EBADFRAME, "sent HELLO twice");
    return;
  }
  if (m->version != ACTOR_PROTOCOL_VERSION) {
    actor__protocol_fail(a, ACTOR_EVERSION,
                         "speaks protocol version %llu, this runtime %d",
                         (unsigned long long)m->version,
                         ACTOR_PROTOCOL_VERSION);
    return;
  }
  a->got_hello = 1;
  /* A backend whose child is started by someone else (forkserver) may
   * learn the pid later than HELLO; it is for display, never signalled. */
  if (a->pid == 0 && m->pid > 0 && m->pid <= INT32_MAX)
    a->pid = (int)m->pid;
  if (a->state == ACTOR_STATE_STARTING) {
    a->state = ACTOR_STATE_RUNNING;
    uv_timer_stop(&a->timer);
    a->stage = ACTOR__STAGE_NONE;
  }
  actor__logf(&a->rt->log, ACTOR_LOG_DEBUG,
              "actor '%s': hello (pid %lld, backend %.*s)", a->name,
              (long long)m->pid, (int)m->backend.n, m->backend.p);
  actor__chan_release(&a->chan);
  if (a->hello_cb != NULL)
    a->hello_cb(a, 0, a->hello_arg);
}

static int parent__on_frame(struct actor__chan *ch, const char *body,
                            size_t len) {
  actor *a = ch->data;
  struct actor__msg m;
  actor_call *c;
  int r;

  r = actor__msg_decode(&m, body, len);
  if (r == ACTOR_EDEPTH && a->got_hello) {
    /* Well formed but nested deeper than we accept: that call fails, the
     * actor lives on (the frame has been consumed whole). */
    c = actor__idmap_get(&a->calls, m.id);
    if (c != NULL && (m.kind == ACTOR__MSG_RETURN || m.kind == ACTOR__MSG_ITEM))
      parent__call_refused(c, ACTOR_EDEPTH,
                           "%s from actor '%s' nests deeper than %d levels",
                           m.kind == ACTOR__MSG_ITEM ? "stream item" : "reply",
                           a->name, ACTOR__MAX_DEPTH);
    return 0;
  }
  if (r == ACTOR_EBADKIND) {
    actor__protocol_fail(a, ACTOR_EBADKIND,
                         "sent a message of unknown kind %d", m.kind);
    return 1;
  }
  if (r) {
    actor__protocol_fail(a, ACTOR_EBADFRAME,
                         "sent a malformed frame (%zu bytes)", len);
    return 1;
  }
  if (!a->got_hello && m.kind != ACTOR__MSG_HELLO) {
    actor__protocol_fail(a, ACTOR_EBADFRAME,
                         "sent message kind %d before HELLO", m.kind);
    return 1;
  }
  switch (m.kind) {
  case ACTOR__MSG_HELLO:
    actor__on_hello(a, &m);
    return 0;
  case ACTOR__MSG_RETURN:
  case ACTOR__MSG_ERROR:
  case ACTOR__MSG_ITEM:
  case ACTOR__MSG_END:
    break;
  default:
    actor__protocol_fail(a, ACTOR_EBADKIND,
                         "sent kind %d, which only a parent may send",
                         m.kind);
    return 1;
  }
  /* A stream's items all name the same call: the last one found is
   * tried first (call__done forgets it). */
  c = a->rx_call;
  if (c == NULL || c->id != m.id)
    c = a->rx_call = actor__idmap_get(&a->calls, m.id);
  if (c == NULL) {
    /* A late answer to a call that already completed here (it was refused
     * as oversized, say).  Harmless. */
    actor__logf(&a->rt->log, ACTOR_LOG_DEBUG,
                "actor '%s': kind %d for unknown call %u ignored", a->name,
                m.kind, (unsigned)m.id);
    return 0;
  }
  switch (m.kind) {
  case ACTOR__MSG_RETURN:
    call__done(c, 0, m.payload, m.payload_len);
    break;
  case ACTOR__MSG_ERROR:
    call__set_error(c, m.type.p, m.type.n, m.message.p, m.message.n,
                    m.traceback.p, m.traceback.n);
    call__done(c, actor__map_error_type(&m.type), NULL, 0);
    break;
  case ACTOR__MSG_ITEM:
    /* After actor_call_cancel() the caller hears DONE only. */
    if (c->cb != NULL && !c->cancelled)
      c->cb(c, ACTOR_EV_ITEM, 0, m.payload, m.payload_len, c->arg);
    break;
  case ACTOR__MSG_END:
    if (c->cb != NULL && !c->cancelled)
      c->cb(c, ACTOR_EV_END, 0, NULL, 0, c->arg);
    break;
  }
  return 0;
}

static int parent__on_oversize(struct actor__chan *ch, int kind, uint32_t id,
                               uint64_t len) {
  actor *a = ch->data;
  actor_call *c = NULL;

  if (kind == ACTOR__MSG_RETURN || kind == ACTOR__MSG_ERROR ||
      kind == ACTOR__MSG_ITEM)
    c = actor__idmap_get(&a->calls, id);
  if (c == NULL || !a->got_hello) {
    if (a->got_hello && kind >= 0 && id != 0) {
      /* A frame for a call that is already over: skipping it was enough. */
      actor__logf(&a->rt->log, ACTOR_LOG_WARN,
                  "actor '%s': oversized frame (%llu bytes) for finished "
                  "call %u skipped",
                  a->name, (unsigned long long)len, (unsigned)id);
      return 0;
    }
    actor__protocol_fail(a, ACTOR_E2BIG,
                         "sent a frame of %llu bytes (maximum %zu)",
                         (unsigned long long)len, a->chan.framer.max_frame);
    return 1;
  }
  if (len > (uint64_t)a->chan.framer.max_frame * ACTOR__SKIP_FACTOR) {
    /* Skipping it would keep every later call waiting behind up to 4 GiB
     * of a misbehaving actor's output: past this bound the actor is closed
     * (the call fails with the actor, ACTOR_E2BIG). */
    actor__protocol_fail(a, ACTOR_E2BIG,
                         "sent a frame of %llu bytes, more than %d times the "
                         "maximum of %zu",
                         (unsigned long long)len, ACTOR__SKIP_FACTOR,
                         a->chan.framer.max_frame);
    return 1;
  }
  parent__call_refused(c, ACTOR_E2BIG,
                       "%s of %llu bytes from actor '%s' exceeds the maximum "
                       "frame size of %zu bytes",
                       kind == ACTOR__MSG_ITEM ? "stream item" : "reply",
                       (unsigned long long)len, a->name,
                       a->chan.framer.max_frame);
  return 0;
}

static void parent__on_eof(struct actor__chan *ch, int err) {
  actor *a = ch->data;
  actor__logf(&a->rt->log, ACTOR_LOG_DEBUG, "actor '%s': channel %s",
              a->name, err ? actor_strerror(err) : "end of stream");
  /* A frame cut short: judged when we know how the child ended (see
   * actor__finish): a protocol violation if it exited by itself, a
   * consequence if it was killed while writing. */
  if (ch->in.len > 0 || ch->framer.skip > 0)
    a->eof_partial = ch->in.len > 0 ? ch->in.len : 1;
  else if (!a->got_hello)
    actor__note(a, ACTOR_ENOHELLO, "ended its channel before saying hello");
  actor__chan_close(ch);
  /* The child closed its end; it is normally exiting.  If it lingers, the
   * stop sequence ends it. */
  if (!a->exited && a->stage < ACTOR__STAGE_GRACEFUL) {
    a->state = ACTOR_STATE_STOPPING;
    actor__arm(a, ACTOR__STAGE_GRACEFUL, a->graceful_ms);
  }
}

static void parent__on_drain(struct actor__chan *ch) {
  actor *a = ch->data;
  if (a->rt->drain_cb != NULL && !a->stillborn)
    a->rt->drain_cb(a, a->rt->drain_arg);
}

static void parent__on_closed(struct actor__chan *ch) {
  actor *a = ch->data;
  a->chan_open = 0;
  a->chan_closed = 1;
  actor__maybe_finish(a);
}

const struct actor__chan_cbs actor__parent_chan_cbs = {
    parent__on_frame,
    parent__on_oversize,
    parent__on_eof,
    parent__on_closed,
    parent__on_drain,
};

/* ---- the end ----------------------------------------------------------- */

void actor__backend_exited(actor *a, int64_t status, int sig, int err) {
  if (a->exited)
    return;
  a->exited = 1;
  a->exit_status = sig == 0 && err == 0 ? (int)status : -1;
  a->exit_signal = sig;
  if (err && err != ACTOR_EABANDONED)
    actor__note(a, err, "backend failure: %s", actor_strerror(err));
  uv_timer_stop(&a->timer);
  if (a->chan_open && !a->chan.closing) {
    /* Take what the child wrote before it died (a last RETURN, say), then
     * close: a grandchild that inherited the socket must not keep us
     * waiting for an EOF. */
    a->chan.ops->pump(&a->chan);
    if (!a->chan.closing)
      actor__chan_close(&a->chan);
  }
  a->backend->close(a->bstate);
  actor__maybe_finish(a);
}

void actor__backend_set_how(actor *a, const char *how) {
  snprintf(a->how, sizeof(a->how), "%s", how ? how : "");
}

void actor__backend_closed(actor *a) {
  a->backend_closed = 1;
  actor__maybe_finish(a);
}

void actor__output_line(actor *a, int fd, const char *line, size_t len) {
  if (a->output_cb != NULL && !a->stillborn)
    a->output_cb(a, fd, line, len, a->output_arg);
}

static void actor__describe_end(actor *a, char *buf, size_t n) {
  const char *abbrev;
  if (a->stage == ACTOR__STAGE_ABANDONED) {
    snprintf(buf, n, "was abandoned");
  } else if (a->exit_signal) {
    abbrev = sigabbrev_np(a->exit_signal);
    snprintf(buf, n, "was killed by signal %d (SIG%s)", a->exit_signal,
             abbrev ? abbrev : "?");
  } else if (a->how[0] != '\0') {
    snprintf(buf, n, "exited with status %d (%.120s)", a->exit_status, a->how);
  } else {
    snprintf(buf, n, "exited with status %d", a->exit_status);
  }
}

static void actor__free(actor *a) {
  actor_rt *rt = a->rt;
  alist_remove(&a->node);
  actor__idmap_fini(&a->calls);
  free(a->bstate);
  free(a->name);
  free(a);
  actor__rt_actor_gone(rt);
}

static void actor__finish(uv_handle_t *h) {
  actor *a = h->data;
  actor_call *c;
  struct idmap calls;
  char how[200], full[ACTOR__ERRMSG_MAX];
  size_t i;
  int code;

  if (a->eof_partial && a->exit_signal == 0 &&
      a->stage != ACTOR__STAGE_ABANDONED)
    actor__note(a, ACTOR_EBADFRAME,
                "ended its channel in the middle of a frame (%zu bytes of an "
                "unfinished frame)",
                a->eof_partial);
  actor__describe_end(a, how, sizeof(how));
  if (a->eof_partial && a->exit_error != ACTOR_EBADFRAME) {
    /* Killed while writing: the cut is a consequence; say it anyway. */
    size_t l = strlen(how);
    snprintf(how + l, sizeof(how) - l,
             " (its channel ended in the middle of a frame)");
  }
  if (a->exit_error) {
    /* The cause, then how it ended; the bound keeps both within size. */
    snprintf(full, sizeof(full), "%.300s; %s", a->reason, how);
    memcpy(a->reason, full, sizeof(full));
  } else {
    snprintf(a->reason, sizeof(a->reason), "%s", how);
  }
  actor__logf(&a->rt->log, ACTOR_LOG_INFO, "actor '%s' %s", a->name,
              a->reason);

  /* Every caller hears how it ended.  The code is the cause where that says
   * more than "closed" (a protocol error, no hello, a version mismatch). */
  code = a->exit_error;
  if (code == 0 || code == ACTOR_EKILLED || code == ACTOR_EABANDONED ||
      code > -30000)
    code = ACTOR_ECLOSED;
  /* Take the whole table first: each DONE then costs O(1), and nothing a
   * callback does (it may even start calls, refused now) touches the slots
   * being walked. */
  calls = a->calls;
  actor__idmap_init(&a->calls);
  for (i = 0; calls.slots != NULL && i <= calls.mask; i++) {
    if (calls.slots[i].key == 0)
      continue;
    c = calls.slots[i].val;
    calls.slots[i].key = 0;
    call__fail(c, code, "actor '%s' %s before answering", a->name,
               a->reason);
  }
  actor__idmap_fini(&calls);

  a->state = ACTOR_STATE_EXITED;
  if (!a->stillborn) {
    a->rt->nlive--;
    /* The hello callback hears why the actor never said hello: the first
     * cause (ACTOR_ENOHELLO, ACTOR_EKILLED...), even if the end was later
     * reported as abandoned. */
    if (!a->got_hello && a->hello_cb != NULL)
      a->hello_cb(a, a->cause ? a->cause : ACTOR_ENOHELLO, a->hello_arg);
    if (a->exit_cb != NULL)
      a->exit_cb(a, a->exit_arg);
  }
  actor__free(a);
}

static void actor__maybe_finish(actor *a) {
  if (a->finishing || !a->exited || !a->chan_closed || !a->backend_closed)
    return;
  a->finishing = 1;
  /* The close callback of the timer is the last event that can mention the
   * actor; finishing there means no callback of ours is still on the stack
   * holding a pointer to it. */
  uv_close((uv_handle_t *)&a->timer, actor__finish);
}

/* ---- spawn ------------------------------------------------------------- */

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int actor_spawn(actor_rt *rt, const actor_opts *o, actor **ap) {
  const struct actor__backend *b;
  const char *bname;

  *ap = NULL;
  rt->errmsg[0] = '\0';
  if (o == NULL)
    return -EINVAL;
  bname = o->backend ? o->backend : "subproc";
  b = actor__backend_find(bname);
  if (b == NULL) {
    actor__seterr(rt, "no backend named '%s'", bname);
    return ACTOR_ENOBACKEND;
  }
  return actor__spawn_backend(rt, b, o, ap);
}

int actor__spawn_backend(actor_rt *rt, const struct actor__backend *b,
                         const actor_opts *o, actor **ap) {
  const char *bname = b->name, *why = NULL;
  actor *a;
  int r;

  *ap = NULL;
  rt->errmsg[0] = '\0';
  if (rt->closing) {
    actor__seterr(rt, "the runtime is closing");
    return ACTOR_ESTATE;
  }
  if (o == NULL)
    return -EINVAL;
  r = b->available(&why);
  if (r) {
    actor__seterr(rt, "%s: %s", bname, why ? why : actor_strerror(r));
    return r;
  }

  a = calloc(1, sizeof(*a));
  if (a == NULL)
    return -ENOMEM;
  a->bstate = calloc(1, b->state_size ? b->state_size : 1);
  a->name = strdup(o->name      ? o->name
                   : o->program ? base_name(o->program)
                   : o->entry   ? o->entry
                                : bname);
  if (a->bstate == NULL || a->name == NULL) {
    free(a->bstate);
    free(a->name);
    free(a);
    return -ENOMEM;
  }
  a->rt = rt;
  a->id = rt->next_actor_id++;
  a->backend = b;
  a->state = ACTOR_STATE_STARTING;
  a->chan_closed = 1; /* until the backend opens it */
  a->hello_ms = o->hello_ms ? o->hello_ms : DEFAULT_HELLO_MS;
  a->graceful_ms = o->graceful_ms ? o->graceful_ms : DEFAULT_GRACEFUL_MS;
  a->term_ms = o->term_ms ? o->term_ms : DEFAULT_TERM_MS;
  a->kill_ms = o->kill_ms ? o->kill_ms : DEFAULT_KILL_MS;
  a->exit_cb = o->exit_cb;
  a->exit_arg = o->exit_arg;
  a->hello_cb = o->hello_cb;
  a->hello_arg = o->hello_arg;
  a->output_cb = o->output_cb;
  a->output_arg = o->output_arg;
  actor__idmap_init(&a->calls);
  uv_timer_init(rt->loop, &a->timer);
  a->timer.data = a;
  alist_insert_tail(&rt->actors, &a->node);

  r = b->start(a->bstate, a, o);
  if (r) {
    /* Undo through the normal path, silently: the handles the backend made
     * must be closed before the memory goes. */
    if (rt->errmsg[0] == '\0')
      actor__seterr(rt, "%s: %s", bname, actor_strerror(r));
    actor__logf(&rt->log, ACTOR_LOG_DEBUG, "spawn of '%s' failed: %s",
                a->name, rt->errmsg);
    a->stillborn = 1;
    a->exited = 1;
    a->backend->close(a->bstate);
    actor__maybe_finish(a);
    return r;
  }
  a->chan_open = 1;
  a->chan_closed = 0;
  a->chan.hold = 1; /* nothing goes out before HELLO */
  a->chan.flush_waiting = &rt->flush_waiting;
  rt->nlive++;
  actor__arm(a, ACTOR__STAGE_HELLO, a->hello_ms);
  actor__logf(&rt->log, ACTOR_LOG_DEBUG, "actor '%s' spawned (%s, pid %d)",
              a->name, bname, a->pid);
  *ap = a;
  return 0;
}

int actor_stop(actor *a) {
  actor__stop_begin(a, 1);
  return 0;
}

int actor_kill(actor *a, int hard) {
  if (a->exited)
    return 0;
  if (a->state < ACTOR_STATE_STOPPING)
    a->state = ACTOR_STATE_STOPPING;
  actor__note(a, ACTOR_EKILLED, "killed on request (%s)",
              hard ? "SIGKILL" : "SIGTERM");
  if (hard) {
    actor__signal(a, ACTOR__SIG_KILL);
    if (a->stage < ACTOR__STAGE_KILL) /* keep the first kill's deadline */
      actor__arm(a, ACTOR__STAGE_KILL, a->kill_ms);
  } else {
    actor__stop_begin(a, 0);
  }
  return 0;
}

int actor_state(const actor *a) { return a->state; }
size_t actor_queued(const actor *a) {
  return a->chan_open ? actor__chan_queued(&((actor *)a)->chan) : 0;
}
const char *actor_name(const actor *a) { return a->name; }
const char *actor_backend(const actor *a) { return a->backend->name; }
int actor_pid(const actor *a) { return a->pid; }
uint64_t actor_id(const actor *a) { return a->id; }
void actor_set_data(actor *a, void *data) { a->data = data; }
void *actor_get_data(const actor *a) { return a->data; }
int actor_exit_status(const actor *a) { return a->exit_status; }
int actor_exit_signal(const actor *a) { return a->exit_signal; }
int actor_exit_error(const actor *a) { return a->exit_error; }
const char *actor_exit_reason(const actor *a) { return a->reason; }

/* ---- calls ------------------------------------------------------------- */

/* Refuse new work for an actor whose queue is full (the host hears
 * actor_rt_on_drain's callback once it has room again). */
static int call__queue_full(actor *a) {
  size_t q = actor__chan_queued(&a->chan);
  if (q < a->rt->max_queue)
    return 0;
  a->chan.want_drain = 1;
  a->chan.drain_lwm = a->rt->max_queue / 2;
  actor__seterr(a->rt,
                "actor '%s' has %zu bytes queued (limit %zu); wait for the "
                "drain callback",
                a->name, q, a->rt->max_queue);
  return 1;
}

/* Whether the channel can still carry messages from us. */
static int actor__chan_usable(const actor *a) {
  return a->chan_open && !a->chan.closing && !a->chan.eof;
}

/* Validate one msgpack value from the caller: -EINVAL or ACTOR_EDEPTH with
 * a message, or 0. */
static int call__check_value(actor_rt *rt, const char *what, const char *fn,
                             const char *noun, const void *p, size_t len) {
  int r;
  if (p == NULL && len) {
    actor__seterr(rt, "%s('%s'): %s is NULL but its length is %zu", what, fn,
                  noun, len);
    return -EINVAL;
  }
  if (len == 0)
    return 0;
  r = actor__msgpack_check(p, len);
  if (r == ACTOR_EDEPTH) {
    actor__seterr(rt, "%s('%s'): %s nest deeper than %d levels", what, fn,
                  noun, ACTOR__MAX_DEPTH);
    return ACTOR_EDEPTH;
  }
  if (r) {
    actor__seterr(rt, "%s('%s'): %s are not one msgpack value", what, fn,
                  noun);
    return -EINVAL;
  }
  return 0;
}

int actor_call_start(actor *a, const char *fn, const void *args,
                     size_t args_len, actor_call_cb cb, void *arg,
                     actor_call **cp) {
  actor_rt *rt = a->rt;
  actor_call *c;
  size_t fnlen;
  int r;

  if (cp != NULL)
    *cp = NULL;
  if (fn == NULL || (fnlen = strlen(fn)) == 0) {
    actor__seterr(rt, "actor_call_start: a function name is required");
    return -EINVAL;
  }
  if (a->state >= ACTOR_STATE_STOPPING || !actor__chan_usable(a)) {
    actor__seterr(rt, "actor '%s' is stopping; call to '%s' refused", a->name,
                  fn);
    return ACTOR_ESTATE;
  }
  r = call__check_value(rt, "actor_call_start", fn, "args", args,
                        args_len);
  if (r)
    return r;
  if (call__queue_full(a))
    return -EAGAIN;
  c = call__alloc(rt);
  if (c == NULL)
    return -ENOMEM;
  c->a = a;
  c->cb = cb;
  c->arg = arg;
  if (fnlen < sizeof(c->fn_inline)) {
    actor__copy_small(c->fn_inline, fn, fnlen + 1);
    c->fn = c->fn_inline;
  } else if ((c->fn = strdup(fn)) == NULL) {
    c->fn = c->fn_inline;
    call__free(rt, c);
    return -ENOMEM;
  }
  /* Ids are per actor, never 0, and skip any still in use after wrapping
   * (before the counter first wraps, no id it gives can be in use). */
  do {
    c->id = ++a->next_call_id;
    if (c->id == 0)
      a->call_ids_wrapped = 1;
  } while (c->id == 0 ||
           (a->call_ids_wrapped && actor__idmap_get(&a->calls, c->id)));

  r = actor__idmap_put(&a->calls, c->id, c);
  if (r == 0) {
    r = actor__chan_send_call(&a->chan, ACTOR__MSG_CALL, c->id, fn, fnlen,
                              args, args_len);
    if (r) {
      actor__idmap_del(&a->calls, c->id);
      if (a->rx_call == c)
        a->rx_call = NULL;
    }
  }
  if (r) {
    if (r == ACTOR_E2BIG)
      actor__seterr(rt,
                    "actor_call_start('%s'): frame exceeds the maximum of %zu",
                    fn, a->chan.framer.max_frame);
    call__free(rt, c);
    return r;
  }
  if (cp != NULL)
    *cp = c;
  return 0;
}

/* Every call function checks the channel before touching anything of it:
 * between the actor's EOF and its end (and in DONE callbacks of other
 * calls of a dead actor) it is closed, or closing, and its buffers gone. */
static int call__send_simple(actor_call *c, int kind, const void *p,
                             size_t n) {
  actor *a = c->a;
  if (!actor__chan_usable(a))
    return ACTOR_ECLOSED;
  return actor__chan_send_call(&a->chan, kind, c->id, NULL, 0, p, n);
}

int actor_call_send(actor_call *c, const void *item, size_t len) {
  actor *a = c->a;
  int r;
  if (c->end_sent || c->cancelled)
    return ACTOR_ESTATE;
  if (!actor__chan_usable(a))
    return ACTOR_ECLOSED;
  r = call__check_value(a->rt, "actor_call_send", c->fn, "the item's bytes",
                        item, len);
  if (r)
    return r;
  if (call__queue_full(a))
    return -EAGAIN;
  return call__send_simple(c, ACTOR__MSG_ITEM, item, len);
}

int actor_call_end(actor_call *c) {
  int r;
  if (c->end_sent)
    return ACTOR_ESTATE;
  r = call__send_simple(c, ACTOR__MSG_END, NULL, 0);
  if (r == 0)
    c->end_sent = 1;
  return r;
}

int actor_call_cancel(actor_call *c) {
  int r;
  if (c->cancelled)
    return 0;
  c->cancelled = 1;
  if (c->cancel_sent)
    return 0;
  r = call__send_simple(c, ACTOR__MSG_CANCEL, NULL, 0);
  if (r == 0)
    c->cancel_sent = 1;
  /* A closed channel means DONE is on its way anyway. */
  return r == ACTOR_ECLOSED ? 0 : r;
}

actor *actor_call_actor(const actor_call *c) { return c->a; }
const char *actor_call_fn(const actor_call *c) { return c->fn; }
const char *actor_call_error_type(const actor_call *c) {
  return call__strs(c, 0);
}
const char *actor_call_error_message(const actor_call *c) {
  return call__strs(c, 1);
}
const char *actor_call_traceback(const actor_call *c) {
  return call__strs(c, 2);
}
