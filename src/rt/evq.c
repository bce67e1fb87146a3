/* evq: an event queue that a binding polls instead of being called back.
 *
 * The library's callbacks (actor_evq_*_cb) run on the loop thread, inside
 * actor_rt_run(), and copy what they are handed into one allocation per
 * event: the fixed part (struct actor_evq_event) followed by the payload
 * and, for a failed call, its three NUL-terminated strings.  Nothing of the
 * library's memory is referenced after the callback returns, so the event
 * outlives the actor or call it describes (both are freed right after
 * their last callback).
 *
 * FIFO as a singly linked list with a tail pointer.  The event last handed
 * out by actor_evq_next() is kept (`taken`) and released by the next take:
 * the caller reads its pointers in between.
 *
 * Bound: nothing is ever dropped — a binding waits for DONE and EXIT — so
 * the bound is enforced on the producer: at or above the limit, each new
 * event stops the loop (uv_stop), and the caller's run returns at the end
 * of the current iteration to drain.  An allocation failure is the one case
 * where an event cannot be kept: it is logged as an error (as a lost
 * callback would be: the binding's handle then never completes).
 *
 * Call and wait (actor_evq_call, actor_evq_wait): while a wait runs, the
 * waited call is `wait`; its DONE is kept aside in `done` instead of being
 * linked, its ITEM/END are not kept at all, and everything else is queued
 * as usual, in order.  The wait runs the loop itself (poll(2) on the
 * backend fd, so that a signal ends it with -EINTR instead of libuv
 * retrying epoll_wait), which spares a binding one trip through its own
 * language per event for the commonest thing it does. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "rt/internal.h"

#define EVQ_DEFAULT_LIMIT ((size_t)8 << 20)

struct evq_node {
  struct evq_node *next;
  size_t bytes; /* payload and strings, for the bound */
  actor_evq_event ev;
  /* payload, then error_type, error_message, traceback (NUL-terminated) */
};

struct actor_evq {
  actor_rt *rt;
  size_t limit;
  struct evq_node *head, *tail;
  struct evq_node *taken;
  size_t len;
  size_t bytes;
  /* A wait in progress (actor_evq_wait): the call, and its DONE once it
   * has come (kept out of the list).  done_lost: that DONE came but could
   * not be copied (out of memory). */
  actor_call *wait;
  struct evq_node *done;
  int done_lost;
  /* Whether spinning pays (see wait_spin_ok): spins in a row that ran out,
   * and waits left that skip the spin because of them. */
  unsigned spin_fails, spin_skip;
};

int actor_evq_new(actor_evq **qp, actor_rt *rt, size_t limit) {
  actor_evq *q;

  if (qp == NULL)
    return -EINVAL;
  *qp = NULL;
  if (rt == NULL)
    return -EINVAL;
  q = calloc(1, sizeof(*q));
  if (q == NULL)
    return -ENOMEM;
  q->rt = rt;
  q->limit = limit ? limit : EVQ_DEFAULT_LIMIT;
  *qp = q;
  return 0;
}

void actor_evq_free(actor_evq *q) {
  struct evq_node *n, *next;

  if (q == NULL)
    return;
  for (n = q->head; n != NULL; n = next) {
    next = n->next;
    free(n);
  }
  free(q->taken);
  free(q);
}

int actor_evq_next(actor_evq *q, actor_evq_event *ev) {
  struct evq_node *n;

  free(q->taken);
  q->taken = NULL;
  n = q->head;
  if (n == NULL)
    return 0;
  q->head = n->next;
  if (q->head == NULL)
    q->tail = NULL;
  q->len--;
  q->bytes -= n->bytes;
  q->taken = n;
  *ev = n->ev;
  return 1;
}

size_t actor_evq_len(const actor_evq *q) { return q->len; }
size_t actor_evq_bytes(const actor_evq *q) { return q->bytes; }

/* ---- producing ------------------------------------------------------------ */

static char *put_str(char **p, const char *s, size_t n) {
  char *at = *p;
  if (n)
    memcpy(at, s, n);
  at[n] = '\0';
  *p += n + 1;
  return at;
}

/* One event: `ev`'s fixed fields, a payload of `len` bytes (kept
 * NUL-terminated too, for the reason and output lines) and up to three
 * strings (NULL: ""), in one allocation; NULL (logged) when out of memory. */
static struct evq_node *evq_make(actor_evq *q, const actor_evq_event *ev,
                                 const char *data, size_t len, const char *s1,
                                 const char *s2, const char *s3) {
  size_t n1 = s1 ? strlen(s1) : 0, n2 = s2 ? strlen(s2) : 0,
         n3 = s3 ? strlen(s3) : 0;
  size_t extra = len + n1 + n2 + n3 + 4;
  struct evq_node *n;
  char *p;

  n = malloc(sizeof(*n) + extra);
  if (n == NULL) {
    actor__logf(&q->rt->log, ACTOR_LOG_ERROR,
               "evq: out of memory: an event (kind %d) is lost", ev->kind);
    return NULL;
  }
  n->next = NULL;
  n->bytes = extra;
  n->ev = *ev;
  p = (char *)(n + 1);
  n->ev.bytes = put_str(&p, data, len);
  n->ev.len = len;
  n->ev.error_type = put_str(&p, s1, n1);
  n->ev.error_message = put_str(&p, s2, n2);
  n->ev.traceback = put_str(&p, s3, n3);
  return n;
}

/* Queue one event (evq_make's arguments). */
static void evq_push(actor_evq *q, const actor_evq_event *ev, const char *data,
                     size_t len, const char *s1, const char *s2,
                     const char *s3) {
  struct evq_node *n = evq_make(q, ev, data, len, s1, s2, s3);
  size_t extra;

  if (n == NULL)
    return;
  extra = n->bytes;
  if (q->tail != NULL)
    q->tail->next = n;
  else
    q->head = n;
  q->tail = n;
  q->len++;
  q->bytes += extra;
  /* Over the bound: make the current run return so the caller drains. */
  if (q->bytes >= q->limit)
    uv_stop(q->rt->loop);
}

static void ev_of_actor(actor_evq_event *ev, int kind, actor *a) {
  memset(ev, 0, sizeof(*ev));
  ev->kind = kind;
  ev->handle = a;
  ev->data = actor_get_data(a);
  ev->actor_id = actor_id(a);
}

void actor_evq_call_cb(actor_call *c, int event, int status, const char *data,
                       size_t len, void *arg) {
  actor_evq *q = arg;
  actor_evq_event ev;

  const char *s1 = NULL, *s2 = NULL, *s3 = NULL;

  ev_of_actor(&ev, ACTOR_EVQ_CALL, actor_call_actor(c));
  ev.handle = c;
  ev.event = event;
  ev.status = status;
  if (event == ACTOR_EV_DONE && status != 0) {
    s1 = actor_call_error_type(c);
    s2 = actor_call_error_message(c);
    s3 = actor_call_traceback(c);
  }
  if (c == q->wait) {
    /* The waited call: its stream is not kept, its DONE ends the wait. */
    if (event != ACTOR_EV_DONE)
      return;
    q->done = evq_make(q, &ev, data, data ? len : 0, s1, s2, s3);
    q->done_lost = q->done == NULL;
    q->wait = NULL;
    uv_stop(q->rt->loop);
    return;
  }
  evq_push(q, &ev, data, data ? len : 0, s1, s2, s3);
}

void actor_evq_exit_cb(actor *a, void *arg) {
  actor_evq_event ev;
  const char *reason = actor_exit_reason(a);

  ev_of_actor(&ev, ACTOR_EVQ_EXIT, a);
  ev.status = actor_exit_error(a);
  ev.exit_status = actor_exit_status(a);
  ev.exit_signal = actor_exit_signal(a);
  evq_push(arg, &ev, reason, strlen(reason), NULL, NULL, NULL);
}

void actor_evq_hello_cb(actor *a, int status, void *arg) {
  actor_evq_event ev;

  ev_of_actor(&ev, ACTOR_EVQ_HELLO, a);
  ev.status = status;
  evq_push(arg, &ev, NULL, 0, NULL, NULL, NULL);
}

void actor_evq_output_cb(actor *a, int fd, const char *line, size_t len,
                         void *arg) {
  actor_evq_event ev;

  ev_of_actor(&ev, ACTOR_EVQ_OUTPUT, a);
  ev.event = fd;
  evq_push(arg, &ev, line, len, NULL, NULL, NULL);
}

/* ---- call and wait --------------------------------------------------------- */

#define EVQ_SPIN_SKIP_MAX 15

/* A spin pays only while the actor answers within it (on another CPU, not
 * preempted).  k spins in a row that ran out make the next 2^(k-1) - 1
 * waits go to sleep at once (at most EVQ_SPIN_SKIP_MAX); an answered spin
 * resets that.  So a host sharing its CPU with the actor, or calling one
 * that takes long, stops burning its spin on every call. */
static int wait_spin_ok(actor_evq *q) {
  if (q->spin_skip > 0) {
    q->spin_skip--;
    return 0;
  }
  return 1;
}

static void wait_spin_result(actor_evq *q, int answered) {
  if (answered) {
    q->spin_fails = 0;
    return;
  }
  if (q->spin_fails < 5)
    q->spin_fails++;
  q->spin_skip = (1u << (q->spin_fails - 1)) - 1;
  if (q->spin_skip > EVQ_SPIN_SKIP_MAX)
    q->spin_skip = EVQ_SPIN_SKIP_MAX;
}

/* Take `c`'s events out of the queue, up to and including its DONE, which
 * becomes the taken event; 1 if it was there. */
static int wait_take_queued(actor_evq *q, actor_call *c, actor_evq_event *ev) {
  struct evq_node **pp = &q->head, *n, *prev = NULL;

  while ((n = *pp) != NULL) {
    if (n->ev.kind != ACTOR_EVQ_CALL || n->ev.handle != c) {
      prev = n;
      pp = &n->next;
      continue;
    }
    *pp = n->next;
    if (q->tail == n)
      q->tail = prev;
    q->len--;
    q->bytes -= n->bytes;
    if (n->ev.event == ACTOR_EV_DONE) {
      q->taken = n;
      *ev = n->ev;
      return 1;
    }
    free(n);
  }
  return 0;
}

static uint64_t wait_deadline(uint64_t now, int ms) {
  return ms < 0 ? UINT64_MAX : now + (uint64_t)ms * 1000000u;
}

/* Milliseconds for poll(2): the loop's own timeout, bounded by the end. */
static int wait_poll_ms(actor_rt *rt, uint64_t now, uint64_t end) {
  int t = actor_rt_backend_timeout(rt);
  uint64_t left;

  if (end == UINT64_MAX || t == 0)
    return t;
  left = (end - now + 999999u) / 1000000u;
  if (left > INT_MAX)
    left = INT_MAX;
  return t < 0 || (uint64_t)t > left ? (int)left : t;
}

int actor_evq_wait(actor_evq *q, actor_call *c, int spin_us, int timeout_ms,
                   actor_evq_event *ev) {
  actor_rt *rt;
  struct pollfd pfd;
  uint64_t now, spin_end, end;
  int r, more, spin, t;

  if (q == NULL || c == NULL || ev == NULL)
    return -EINVAL;
  rt = q->rt;
  if (q->wait != NULL) {
    actor__seterr(rt, "actor_evq_wait: a wait on this queue is already in "
                      "progress (called from a callback of its loop?)");
    return ACTOR_ESTATE;
  }
  free(q->taken);
  q->taken = NULL;
  /* Its DONE may be queued already, by a run of the loop since the call
   * started. */
  if (wait_take_queued(q, c, ev))
    return 1;
  now = uv_hrtime();
  spin = spin_us > 0 && wait_spin_ok(q);
  spin_end = spin ? now + (uint64_t)spin_us * 1000u : 0;
  end = wait_deadline(now, timeout_ms);
  if (spin_end > end)
    spin_end = end;
  pfd.fd = actor_rt_backend_fd(rt);
  pfd.events = POLLIN;
  q->wait = c;
  q->done = NULL;
  q->done_lost = 0;
  for (;;) {
    more = actor_rt_run(rt, ACTOR_RUN_NOWAIT);
    if (q->done != NULL || q->done_lost)
      break;
    if (q->bytes >= q->limit) {
      r = 0; /* the caller drains, then waits again */
      goto out;
    }
    if (!more) {
      actor__seterr(rt, "actor_evq_wait: the loop has nothing left to run "
                        "and the call has not completed");
      r = ACTOR_ESTATE;
      goto out;
    }
    now = uv_hrtime();
    if (now < spin_end)
      continue;
    if (spin) {
      wait_spin_result(q, 0);
      spin = 0;
    }
    if (now >= end) {
      r = -ETIMEDOUT;
      goto out;
    }
    t = wait_poll_ms(rt, now, end);
    if (t != 0 && poll(&pfd, 1, t) < 0 && errno == EINTR) {
      r = -EINTR;
      goto out;
    }
  }
  if (spin)
    wait_spin_result(q, 1);
  if (q->done_lost) {
    actor__seterr(rt, "actor_evq_wait: out of memory: the call completed "
                      "but its answer could not be kept");
    q->done_lost = 0;
    return -ENOMEM;
  }
  q->taken = q->done;
  q->done = NULL;
  *ev = q->taken->ev;
  return 1;
out:
  q->wait = NULL; /* from here on its events are queued as usual */
  return r;
}

int actor_evq_call(actor_evq *q, actor *a, const char *fn, const void *args,
                   size_t args_len, int spin_us, int timeout_ms,
                   actor_evq_event *ev, actor_call **cp) {
  actor_call *c;
  int r;

  if (cp != NULL)
    *cp = NULL;
  if (q == NULL || ev == NULL || a == NULL)
    return -EINVAL;
  if (a->rt != q->rt) {
    actor__seterr(q->rt, "actor_evq_call: the actor belongs to another "
                         "runtime than the queue");
    return -EINVAL;
  }
  if (q->wait != NULL) {
    actor__seterr(q->rt, "actor_evq_call: a wait on this queue is already in "
                         "progress (called from a callback of its loop?)");
    return ACTOR_ESTATE;
  }
  r = actor_call_start(a, fn, args, args_len, actor_evq_call_cb, q, &c);
  if (r < 0)
    return r;
  r = actor_evq_wait(q, c, spin_us, timeout_ms, ev);
  if (r != 1 && r != -ENOMEM && cp != NULL)
    *cp = c; /* still in flight */
  return r;
}
