/* The inbox of a Python actor, and its watcher (py.h has the contract).
 *
 * Why not a thread that owns every read.  A reader thread that always
 * stands between the transport and serve() adds a thread hop (a wake-up:
 * 25-60 us on this kind of machine) to every call, and a third spinning
 * thread on a 2-core box.  Here whoever needs a message reads the
 * transport itself, holding a token (`reading`) taken and released under
 * the mutex: an idle serve() reads the next CALL directly, exactly as
 * before.  The watcher thread reads only while a call has been running
 * for ACTOR__PY_WATCH_GRACE_MS — the only time nobody else would — and
 * sleeps otherwise, so short calls never wake it: it is signalled only
 * when a call starts while it sleeps with no deadline, and then wakes at
 * most once per grace period while calls keep coming.
 *
 * Lock order: a GIL (an attached thread state) before `mu`, never the
 * reverse; nothing waits for a GIL while holding `mu`.  The token holder
 * reads with no lock and no GIL, parses into a private list, then files
 * the list under `mu`.
 *
 * Races closed here:
 *  - an injection is decided when the CANCEL/STOP is filed (under mu: the
 *    call's generation `inj_gen`) and performed later, attached, under mu
 *    again, only if that same call still runs: a call that ended in
 *    between (generation bumped by _end) is never hit;
 *  - _end runs in C on the serving thread right after the function
 *    returned — no bytecode runs between — and clears an injection that
 *    has not landed, under mu, so none lands in serve()'s bookkeeping;
 *  - a CANCEL that arrives before its call starts marks the call's queue,
 *    and _begin refuses to start it; a STOP (or EOF) refuses every call
 *    that has not started;
 *  - a wake-up is sticky per thread (`wake_tid`): a thread woken just
 *    before it starts to wait still returns to Python, where the injected
 *    exception lands. */
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "proto/codec.h"
#include "py/py.h"
#include "util/buf.h"
#include "util/idmap.h"

/* The watcher reads in slices, to look at the state between them; an end
 * of call or a stop wakes it at once anyway. */
#define WATCH_READ_MS 100
/* While the running call reads its own input (it is not busy then), or
 * the inbox is full, the watcher looks again this often: the delay before
 * it takes over from a call that stops reading and computes. */
#define WATCH_RECHECK_MS 100
#define WATCH_STACK (256 * 1024)

enum { F_CANCEL = 1, F_STOP = 2 };

struct callq {
  struct actor__py_msg *head, *tail;
  int cancelled;
};

struct actor__py_inbox {
  struct actor__py_ep *ep;
  size_t limit; /* the watcher pauses while this many bytes wait */
  pthread_mutex_t mu;
  pthread_cond_t cv;  /* messages filed, token released, wake-ups */
  /* The watcher sleeps on this futex word, not on a condition variable:
   * a condition variable's wait re-takes `mu` marked contended, so the
   * unlock after every timed look was a second syscall (a FUTEX_WAKE for
   * nobody).  Bumped under mu to wake it. */
  atomic_uint wseq;

  /* under mu */
  struct actor__py_msg *head, *tail; /* CALL, STOP, malformed frames */
  struct idmap calls;                /* pending call id -> struct callq */
  size_t queued;                     /* bytes held in every queue */
  atomic_size_t nmain;               /* messages in the main queue */
  int reading;                       /* the read token is taken */
  int watcher_reading;
  int watcher_idle;                  /* waiting with no deadline */
  int eof;                           /* nothing more will be read */
  int quit;                          /* stopped */
  int stop_seen;
  int wake_set;
  unsigned long wake_tid;
  uint32_t run_id; /* the running call, 0 if none */
  unsigned long run_tid;
  uint64_t run_gen;
  uint64_t run_start_ns;
  uint64_t begins;
  int fired;    /* F_* filed for the running call */
  uint64_t inj_gen; /* an injection is due for call generation inj_gen */
  int killed;   /* the runtime's interrupt went in: never replaced */
  int users;    /* threads inside _next or a write (GIL released) */
  uint64_t seen_items; /* the watcher's: ep->nitems at its last look */

  /* the watcher */
  pthread_t watcher;
  int watcher_started;
  PyInterpreterState *interp;
  PyObject *cancelled;
  PyThreadState *wts; /* the watcher's own, made and deleted on its thread */

  /* the token holder's */
  struct abuf in;
  struct actor__framer framer;
  struct actor__py_msg *parsed, **parsed_tail;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timespec at_ns(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  return ts;
}

static unsigned long self_tid(void) {
  /* What CPython records as a thread state's thread_id. */
  return PyThread_get_thread_ident();
}

/* The watcher, with mu held, before it sleeps or reads until `until_ns`
 * (0: no deadline): send what is held, and let the endpoint hold stream
 * items from now on only if it wakes within ACTOR__PY_HOLD_MS.  While
 * items flow (sent since its last look) or some are still held, it wakes
 * every ACTOR__PY_HOLD_MS to send them: the deadline it returns. */
static uint64_t watcher_publish(struct actor__py_inbox *ib,
                                uint64_t until_ns) {
  uint64_t items = atomic_load(&ib->ep->nitems);
  uint64_t soon;
  size_t left;
  if (!ib->ep->can_hold)
    return until_ns;
  soon = now_ns() + ACTOR__PY_HOLD_MS * 1000000ull;
  if (items != ib->seen_items && !ib->quit &&
      (until_ns == 0 || until_ns > soon))
    until_ns = soon; /* a stream: come back to send what it holds */
  ib->seen_items = items;
  left = actor__py_ep_flush_until(ib->ep, until_ns);
  if (left != 0 && (until_ns == 0 || until_ns > soon)) {
    until_ns = soon;
    if (left != SIZE_MAX)
      (void)actor__py_ep_flush_until(ib->ep, until_ns);
  }
  return until_ns;
}

/* With mu held: wake the watcher if it sleeps (or is about to). */
static void watcher_wake(struct actor__py_inbox *ib) {
  atomic_fetch_add(&ib->wseq, 1);
  syscall(SYS_futex, &ib->wseq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The watcher, with mu held: sleep until watcher_wake or `until_ns`
 * (CLOCK_MONOTONIC; 0: no deadline); mu is held again on return.  One
 * syscall per sleep: the word is read under mu, so a wake-up between the
 * unlock and the wait makes the wait return at once (EAGAIN). */
static void watcher_sleep(struct actor__py_inbox *ib, uint64_t until_ns) {
  unsigned seq = atomic_load(&ib->wseq);
  struct timespec ts;
  until_ns = watcher_publish(ib, until_ns);
  ts = at_ns(until_ns);
  pthread_mutex_unlock(&ib->mu);
  syscall(SYS_futex, &ib->wseq, FUTEX_WAIT_BITSET_PRIVATE, seq,
          until_ns != 0 ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
  pthread_mutex_lock(&ib->mu);
}

/* ---- life ---------------------------------------------------------------- */

struct actor__py_inbox *actor__py_inbox_new(struct actor__py_ep *ep,
                                            size_t max_frame) {
  struct actor__py_inbox *ib = calloc(1, sizeof(*ib));
  pthread_condattr_t ca;

  if (ib == NULL) {
    /* nothing to free but what we were given */
    actor__py_ep_fini(ep);
    free(ep);
    return NULL;
  }
  ib->ep = ep;
  ib->limit = max_frame;
  ib->framer.max_frame = max_frame;
  pthread_mutex_init(&ib->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ib->cv, &ca);
  pthread_condattr_destroy(&ca);
  actor__idmap_init(&ib->calls);
  actor__buf_init(&ib->in);
  atomic_init(&ib->nmain, 0);
  atomic_init(&ib->wseq, 0);
  ib->parsed_tail = &ib->parsed;
  return ib;
}

void actor__py_msg_free(struct actor__py_msg *m) { free(m); }

static void free_list(struct actor__py_msg *m) {
  struct actor__py_msg *next;
  for (; m != NULL; m = next) {
    next = m->next;
    free(m);
  }
}

void actor__py_inbox_enter(struct actor__py_inbox *ib) {
  pthread_mutex_lock(&ib->mu);
  ib->users++;
  pthread_mutex_unlock(&ib->mu);
}

void actor__py_inbox_leave(struct actor__py_inbox *ib) {
  pthread_mutex_lock(&ib->mu);
  if (--ib->users == 0 && ib->quit)
    pthread_cond_broadcast(&ib->cv); /* _free may be waiting */
  pthread_mutex_unlock(&ib->mu);
}

int actor__py_inbox_free(struct actor__py_inbox *ib) {
  struct callq *q;
  struct timespec ts;
  int busy;

  if (ib == NULL)
    return 0;
  /* Every wait inside ends at `quit`; a thread still inside is on its way
   * out (or blocked in a write the parent will end). */
  pthread_mutex_lock(&ib->mu);
  ib->quit = 1;
  pthread_cond_broadcast(&ib->cv);
  ts = at_ns(now_ns() + 1000000000ull);
  while (ib->users > 0 &&
         pthread_cond_timedwait(&ib->cv, &ib->mu, &ts) != ETIMEDOUT)
    ;
  busy = ib->users > 0;
  pthread_mutex_unlock(&ib->mu);
  if (busy)
    return -EBUSY;
  /* The map's slots hold every queue left. */
  if (ib->calls.slots != NULL) {
    size_t i;
    for (i = 0; i <= ib->calls.mask; i++)
      if (ib->calls.slots[i].key != 0) {
        q = ib->calls.slots[i].val;
        free_list(q->head);
        free(q);
      }
  }
  actor__idmap_fini(&ib->calls);
  free_list(ib->head);
  free_list(ib->parsed);
  actor__buf_fini(&ib->in);
  pthread_mutex_destroy(&ib->mu);
  pthread_cond_destroy(&ib->cv);
  actor__py_ep_fini(ib->ep);
  free(ib->ep);
  free(ib);
  return 0;
}

/* ---- parsing (the token holder, no lock) ----------------------------------- */

static struct actor__py_msg *msg_new(int kind, uint32_t id, size_t body) {
  struct actor__py_msg *m = malloc(sizeof(*m) + body);
  if (m == NULL)
    return NULL;
  memset(m, 0, sizeof(*m));
  m->kind = kind;
  m->id = id;
  m->size = sizeof(*m) + body;
  return m;
}

static void parsed_add(struct actor__py_inbox *ib, struct actor__py_msg *m) {
  *ib->parsed_tail = m;
  ib->parsed_tail = &m->next;
}

static int bad_frame(struct actor__py_inbox *ib, int kind, uint32_t id,
                     int err) {
  struct actor__py_msg *m = msg_new(kind, id, 0);
  if (m != NULL) {
    m->flags = ACTOR__PY_MSG_BAD;
    m->err = err;
    parsed_add(ib, m);
  }
  return 1; /* nothing after it is read */
}

static int on_frame(void *arg, const char *body, size_t len) {
  struct actor__py_inbox *ib = arg;
  struct actor__py_msg *m;
  struct actor__msg d;
  char *copy;
  int r;

  r = actor__msg_decode(&d, body, len);
  if (r == ACTOR_EDEPTH &&
      (d.kind == ACTOR__MSG_CALL || d.kind == ACTOR__MSG_ITEM)) {
    /* Well formed, too deep: that call's error (TooDeep), not the actor's
     * end.  Only the function name is kept (protocol.md §3.1). */
    m = msg_new(d.kind, d.id, d.fn.n);
    if (m == NULL)
      return bad_frame(ib, d.kind, d.id, -ENOMEM);
    m->flags = ACTOR__PY_MSG_DEEP;
    if (d.kind == ACTOR__MSG_CALL) {
      copy = (char *)(m + 1);
      memcpy(copy, d.fn.p, d.fn.n);
      m->fn = copy;
      m->fn_len = d.fn.n;
    }
    parsed_add(ib, m);
    return 0;
  }
  if (r)
    return bad_frame(ib, d.kind, d.id, r);
  switch (d.kind) {
  case ACTOR__MSG_CALL:
  case ACTOR__MSG_ITEM:
    /* Kept whole; fn and payload point into the copy. */
    m = msg_new(d.kind, d.id, len);
    if (m == NULL)
      return bad_frame(ib, d.kind, d.id, -ENOMEM);
    copy = (char *)(m + 1);
    memcpy(copy, body, len);
    if (d.kind == ACTOR__MSG_CALL) {
      m->fn = copy + (d.fn.p - body);
      m->fn_len = d.fn.n;
    }
    if (d.payload != NULL) {
      m->payload = copy + (d.payload - body);
      m->payload_len = d.payload_len;
    }
    break;
  case ACTOR__MSG_END:
  case ACTOR__MSG_CANCEL:
  case ACTOR__MSG_STOP:
    m = msg_new(d.kind, d.id, 0);
    if (m == NULL)
      return bad_frame(ib, d.kind, d.id, -ENOMEM);
    break;
  default: /* HELLO, RETURN, ERROR: a child's messages */
    return bad_frame(ib, d.kind, d.id, ACTOR_EBADKIND);
  }
  parsed_add(ib, m);
  return 0;
}

static int on_oversize(void *arg, int kind, uint32_t id, uint64_t len) {
  struct actor__py_inbox *ib = arg;
  struct actor__py_msg *m;
  if ((kind != ACTOR__MSG_CALL && kind != ACTOR__MSG_ITEM) || id == 0)
    return 0; /* skipped: nobody to tell */
  m = msg_new(kind, id, 0);
  if (m == NULL)
    return bad_frame(ib, kind, id, -ENOMEM);
  m->flags = ACTOR__PY_MSG_OVERSIZE;
  m->len = len;
  parsed_add(ib, m);
  return 0;
}

static const struct actor__framer_cbs inbox_framer_cbs = {on_frame,
                                                          on_oversize};

/* ---- filing (under mu) ------------------------------------------------------ */

static void append(struct actor__py_msg **head, struct actor__py_msg **tail,
                   struct actor__py_msg *m) {
  m->next = NULL;
  if (*head == NULL)
    *head = m;
  else
    (*tail)->next = m;
  *tail = m;
}

static void append_main(struct actor__py_inbox *ib, struct actor__py_msg *m) {
  append(&ib->head, &ib->tail, m);
  ib->queued += m->size;
  atomic_fetch_add(&ib->nmain, 1);
}

/* The running call is to be interrupted for `why` (once per cause). */
static int due(struct actor__py_inbox *ib, int why) {
  if (ib->run_id == 0 || (ib->fired & why))
    return 0;
  ib->fired |= why;
  ib->inj_gen = ib->run_gen;
  return 1;
}

/* Returns 1 when an injection became due. */
static int file_one(struct actor__py_inbox *ib, struct actor__py_msg *m) {
  struct callq *q;
  int d = 0;

  if (m->flags & ACTOR__PY_MSG_BAD) {
    append_main(ib, m);
    ib->eof = 1; /* garbage: nothing after it can be trusted */
    ib->stop_seen = 1;
    return due(ib, F_STOP);
  }
  switch (m->kind) {
  case ACTOR__MSG_CALL:
    if (actor__idmap_get(&ib->calls, m->id) == NULL) {
      q = calloc(1, sizeof(*q));
      if (q == NULL || actor__idmap_put(&ib->calls, m->id, q)) {
        /* Out of memory: the call still runs, but without a queue its
         * stream items are dropped and a CANCEL before it starts too. */
        free(q);
      }
    }
    append_main(ib, m);
    break;
  case ACTOR__MSG_ITEM:
  case ACTOR__MSG_END:
    q = actor__idmap_get(&ib->calls, m->id);
    if (q == NULL) {
      free(m); /* the call is over: items in flight are dropped */
      break;
    }
    append(&q->head, &q->tail, m);
    ib->queued += m->size;
    break;
  case ACTOR__MSG_CANCEL:
    if (ib->run_id == m->id)
      d = due(ib, F_CANCEL);
    else if ((q = actor__idmap_get(&ib->calls, m->id)) != NULL)
      q->cancelled = 1;
    free(m);
    break;
  case ACTOR__MSG_STOP:
    ib->stop_seen = 1;
    append_main(ib, m);
    d = due(ib, F_STOP);
    break;
  default:
    free(m);
    break;
  }
  return d;
}

/* The token holder: read once, parse, file.  No lock held on entry or
 * exit.  Returns the read's result; *inject is set when this thread must
 * perform an injection (actor__py_inbox_inject). */
static int fill(struct actor__py_inbox *ib, int timeout_ms, int *inject) {
  struct actor__py_msg *m, *next;
  int r, fr = 0, filed = 0;

  r = ib->ep->read(ib->ep, &ib->in, timeout_ms);
  if (r == 0) {
    fr = actor__framer_feed(&ib->framer, &ib->in, &inbox_framer_cbs, ib);
    if (fr < 0)
      bad_frame(ib, -1, 0, fr);
    if (ib->in.len == 0)
      actor__buf_trim(&ib->in, 64 * 1024);
  }
  pthread_mutex_lock(&ib->mu);
  for (m = ib->parsed; m != NULL; m = next) {
    next = m->next;
    *inject |= file_one(ib, m);
    filed = 1;
  }
  ib->parsed = NULL;
  ib->parsed_tail = &ib->parsed;
  if (r != 0 && r != -ETIMEDOUT && !ib->eof) {
    /* The parent is gone (or the channel broke): like a STOP for what
     * runs, and nothing more to read. */
    ib->eof = 1;
    ib->stop_seen = 1;
    *inject |= due(ib, F_STOP);
    filed = 1;
  }
  if (filed)
    pthread_cond_broadcast(&ib->cv);
  pthread_mutex_unlock(&ib->mu);
  return r;
}

/* ---- receiving ---------------------------------------------------------------- */

int actor__py_inbox_next(struct actor__py_inbox *ib, uint32_t cid,
                         int timeout_ms, struct actor__py_msg **out) {
  unsigned long self = self_tid();
  uint64_t deadline = 0, now;
  struct actor__py_msg **head, **tail;
  struct callq *q;
  int r, tried = 0, inject, left, flushed = 0;

  *out = NULL;
  if (timeout_ms > 0)
    deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
  pthread_mutex_lock(&ib->mu);
  ib->users++;
  for (;;) {
    if (cid != 0) {
      q = actor__idmap_get(&ib->calls, cid);
      if (q == NULL) {
        r = -ENOENT;
        break;
      }
      head = &q->head;
      tail = &q->tail;
    } else {
      head = &ib->head;
      tail = &ib->tail;
    }
    if (*head != NULL) {
      *out = *head;
      *head = (*out)->next;
      if (*head == NULL)
        *tail = NULL;
      (*out)->next = NULL;
      ib->queued -= (*out)->size;
      if (cid == 0)
        atomic_fetch_sub(&ib->nmain, 1);
      r = 0;
      break;
    }
    if (ib->eof || ib->quit) {
      r = ACTOR_ECLOSED;
      break;
    }
    if (ib->wake_set && ib->wake_tid == self) {
      ib->wake_set = 0;
      r = -ETIMEDOUT;
      break;
    }
    now = timeout_ms > 0 ? now_ns() : 0;
    if ((timeout_ms == 0 && tried) || (timeout_ms > 0 && now >= deadline)) {
      r = -ETIMEDOUT;
      break;
    }
    if (timeout_ms != 0 && !flushed && atomic_load(&ib->ep->nheld) != 0) {
      /* About to wait: what this actor holds goes first (the parent may
       * be waiting for it to answer).  Not before: with calls queued,
       * their answers go together.  Once: what other threads hold from
       * now on is the watcher's to send (a thread streaming all along
       * must not keep this one from its wait). */
      flushed = 1;
      pthread_mutex_unlock(&ib->mu);
      (void)actor__py_ep_flush(ib->ep);
      pthread_mutex_lock(&ib->mu);
      continue;
    }
    if (!ib->reading) {
      /* Nobody reads: this thread does (a waiting serve() reads the next
       * CALL itself, with no hop through another thread). */
      ib->reading = 1;
      pthread_mutex_unlock(&ib->mu);
      left = timeout_ms <= 0 ? timeout_ms
                             : (int)((deadline - now + 999999) / 1000000);
      inject = 0;
      fill(ib, left, &inject);
      tried = 1;
      pthread_mutex_lock(&ib->mu);
      ib->reading = 0;
      pthread_cond_broadcast(&ib->cv); /* another waiter may read now */
      if (inject) {
        r = ACTOR__PY_INJECT;
        break;
      }
      continue;
    }
    if (timeout_ms == 0) {
      r = -ETIMEDOUT;
      break;
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&ib->cv, &ib->mu);
    } else {
      struct timespec ts = at_ns(deadline);
      pthread_cond_timedwait(&ib->cv, &ib->mu, &ts);
    }
  }
  if (--ib->users == 0 && ib->quit)
    pthread_cond_broadcast(&ib->cv);
  pthread_mutex_unlock(&ib->mu);
  return r;
}

int actor__py_inbox_pending(struct actor__py_inbox *ib) {
  return atomic_load(&ib->nmain) > 0;
}

void actor__py_inbox_wake(struct actor__py_inbox *ib, unsigned long tid) {
  int reading;
  pthread_mutex_lock(&ib->mu);
  ib->wake_set = 1;
  ib->wake_tid = tid;
  reading = ib->reading;
  pthread_cond_broadcast(&ib->cv);
  pthread_mutex_unlock(&ib->mu);
  if (reading)
    ib->ep->wake(ib->ep); /* the target may be the one reading */
}

static struct callq *take_queue(struct actor__py_inbox *ib, uint32_t cid) {
  struct callq *q = actor__idmap_del(&ib->calls, cid);
  struct actor__py_msg *m;
  if (q != NULL)
    for (m = q->head; m != NULL; m = m->next)
      ib->queued -= m->size;
  return q;
}

static void free_queue(struct callq *q) {
  if (q != NULL) {
    free_list(q->head);
    free(q);
  }
}

/* ---- the running call ----------------------------------------------------------- */

int actor__py_inbox_begin(struct actor__py_inbox *ib, uint32_t cid,
                          int *stopping) {
  struct callq *q;
  int r = 0;

  *stopping = 0;
  pthread_mutex_lock(&ib->mu);
  q = actor__idmap_get(&ib->calls, cid);
  if (ib->run_id != 0) {
    r = ACTOR_ESTATE;
  } else if (ib->stop_seen || (q != NULL && q->cancelled)) {
    /* Refused: the call is over before it began. */
    *stopping = ib->stop_seen;
    r = ACTOR_ECANCELED;
    q = take_queue(ib, cid);
  } else {
    q = NULL;
    ib->run_id = cid;
    ib->run_tid = self_tid();
    ib->run_gen++;
    ib->run_start_ns = now_ns();
    ib->begins++;
    ib->fired = 0;
    if (ib->watcher_idle)
      watcher_wake(ib);
  }
  pthread_mutex_unlock(&ib->mu);
  if (r == ACTOR_ECANCELED)
    free_queue(q);
  return r;
}

void actor__py_inbox_end(struct actor__py_inbox *ib) {
  struct callq *q;
  int wr;
  pthread_mutex_lock(&ib->mu);
  /* Still in C, right after the function returned: nothing ran since, so
   * an injection that has not landed is cleared before any bytecode of
   * serve() could see it.  The runtime's interrupt stays. */
  if (ib->fired && !ib->killed)
    PyThreadState_SetAsyncExc(ib->run_tid, NULL);
  q = take_queue(ib, ib->run_id); /* its input is of no use any more */
  ib->run_id = 0;
  ib->run_gen++;
  ib->fired = 0;
  ib->inj_gen = 0;
  wr = ib->watcher_reading;
  pthread_mutex_unlock(&ib->mu);
  free_queue(q);
  if (wr)
    ib->ep->wake(ib->ep); /* give the token back: serve() reads next */
}

void actor__py_inbox_inject(struct actor__py_inbox *ib) {
  unsigned long tid = 0;
  pthread_mutex_lock(&ib->mu);
  if (ib->inj_gen != 0 && ib->inj_gen == ib->run_gen && ib->run_id != 0 &&
      !ib->killed && ib->cancelled != NULL) {
    PyThreadState_SetAsyncExc(ib->run_tid, ib->cancelled);
    tid = ib->run_tid;
  }
  ib->inj_gen = 0;
  pthread_mutex_unlock(&ib->mu);
  if (tid != 0)
    actor__py_inbox_wake(ib, tid); /* a call waiting for items returns */
}

void actor__py_inbox_interrupt(struct actor__py_inbox *ib, unsigned long tid,
                               PyObject *exc) {
  pthread_mutex_lock(&ib->mu);
  ib->killed = 1;
  PyThreadState_SetAsyncExc(tid, exc);
  pthread_mutex_unlock(&ib->mu);
  actor__py_inbox_wake(ib, tid);
}

void actor__py_inbox_forget(struct actor__py_inbox *ib, uint32_t cid) {
  struct callq *q;
  pthread_mutex_lock(&ib->mu);
  q = take_queue(ib, cid);
  pthread_mutex_unlock(&ib->mu);
  free_queue(q);
}

int actor__py_inbox_stopping(struct actor__py_inbox *ib) {
  int v;
  pthread_mutex_lock(&ib->mu);
  v = ib->stop_seen;
  pthread_mutex_unlock(&ib->mu);
  return v;
}

/* ---- the watcher -------------------------------------------------------------- */

static void watcher_inject(struct actor__py_inbox *ib) {
  if (ib->wts == NULL) {
    /* Made on this thread (PyThreadState_New binds it to the caller), once,
     * without a GIL; it is attached only to inject. */
    ib->wts = PyThreadState_New(ib->interp);
    if (ib->wts == NULL)
      return;
  }
  PyEval_RestoreThread(ib->wts); /* the actor's interpreter's GIL */
  actor__py_inbox_inject(ib);
  (void)PyEval_SaveThread();
}

static void *watcher_main(void *arg) {
  struct actor__py_inbox *ib = arg;
  uint64_t seen = 0, now, due_at;
  int inject;

  pthread_mutex_lock(&ib->mu);
  while (!ib->quit) {
    now = now_ns();
    if (ib->run_id == 0) {
      if (ib->begins == seen) {
        /* No call since the last look: sleep until one starts. */
        ib->watcher_idle = 1;
        watcher_sleep(ib, 0);
        ib->watcher_idle = 0;
      } else {
        /* Calls come and go: look again a grace period later rather than
         * have every start signal us. */
        seen = ib->begins;
        watcher_sleep(ib, now + ACTOR__PY_WATCH_GRACE_MS * 1000000ull);
      }
      continue;
    }
    seen = ib->begins;
    if (ib->eof) {
      /* Nothing more will come (and the call was told): sleep until the
       * stop, even if the call never ends (an actor abandoned in C). */
      watcher_sleep(ib, 0);
      continue;
    }
    due_at = ib->run_start_ns + ACTOR__PY_WATCH_GRACE_MS * 1000000ull;
    if (now < due_at || ib->reading || ib->queued >= ib->limit) {
      /* Not yet; or the call reads for itself; or enough waits already
       * (the parent then feels backpressure, and a STOP waits behind it:
       * the runtime's interrupt is the backstop). */
      watcher_sleep(ib, now < due_at ? due_at
                                     : now + WATCH_RECHECK_MS * 1000000ull);
      continue;
    }
    ib->reading = 1;
    ib->watcher_reading = 1;
    due_at = watcher_publish(ib, now + WATCH_READ_MS * 1000000ull);
    pthread_mutex_unlock(&ib->mu);
    inject = 0;
    fill(ib, (int)((due_at - now + 999999) / 1000000), &inject);
    pthread_mutex_lock(&ib->mu);
    ib->reading = 0;
    ib->watcher_reading = 0;
    pthread_cond_broadcast(&ib->cv);
    if (inject) {
      pthread_mutex_unlock(&ib->mu);
      watcher_inject(ib);
      pthread_mutex_lock(&ib->mu);
    }
  }
  pthread_mutex_unlock(&ib->mu);
  if (ib->wts != NULL) {
    PyEval_RestoreThread(ib->wts);
    PyThreadState_Clear(ib->wts);
    PyThreadState_DeleteCurrent();
    ib->wts = NULL;
  }
  return NULL;
}

int actor__py_inbox_start(struct actor__py_inbox *ib, PyObject *cancelled) {
  pthread_attr_t attr;
  sigset_t all, old;
  int r;

  ib->interp = PyInterpreterState_Get();
  ib->cancelled = Py_NewRef(cancelled);
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, WATCH_STACK);
  /* Signals are the host's (and libuv's) business: the watcher takes
   * none. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  r = pthread_create(&ib->watcher, &attr, watcher_main, ib);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (r) {
    Py_CLEAR(ib->cancelled);
    return -r;
  }
  ib->watcher_started = 1;
  return 0;
}

void actor__py_inbox_stop(struct actor__py_inbox *ib) {
  PyObject *c;
  int wr;
  pthread_mutex_lock(&ib->mu);
  ib->quit = 1;
  wr = ib->reading;
  pthread_cond_broadcast(&ib->cv);
  watcher_wake(ib);
  pthread_mutex_unlock(&ib->mu);
  if (wr)
    ib->ep->wake(ib->ep);
  if (ib->watcher_started) {
    ib->watcher_started = 0;
    /* The watcher may need this interpreter's GIL to finish an injection
     * or delete its thread state. */
    Py_BEGIN_ALLOW_THREADS;
    pthread_join(ib->watcher, NULL);
    /* Nobody flushes from now on: nothing is held after this. */
    (void)actor__py_ep_flush_until(ib->ep, 0);
    (void)actor__py_ep_flush(ib->ep);
    Py_END_ALLOW_THREADS;
  }
  pthread_mutex_lock(&ib->mu); /* _inject reads it under mu */
  c = ib->cancelled;
  ib->cancelled = NULL;
  pthread_mutex_unlock(&ib->mu);
  Py_XDECREF(c);
}
