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
 * callback would be: the binding's handle then never completes). */
#include <errno.h>
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

/* Queue one event: `ev`'s fixed fields, a payload of `len` bytes (kept
 * NUL-terminated too, for the reason and output lines) and up to three
 * strings (NULL: ""). */
static void evq_push(actor_evq *q, const actor_evq_event *ev, const char *data,
                     size_t len, const char *s1, const char *s2,
                     const char *s3) {
  size_t n1 = s1 ? strlen(s1) : 0, n2 = s2 ? strlen(s2) : 0,
         n3 = s3 ? strlen(s3) : 0;
  size_t extra = len + n1 + n2 + n3 + 4;
  struct evq_node *n;
  char *p;

  n = malloc(sizeof(*n) + extra);
  if (n == NULL) {
    actor__logf(&q->rt->log, ACTOR_LOG_ERROR,
               "evq: out of memory: an event (kind %d) is lost", ev->kind);
    return;
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

  ev_of_actor(&ev, ACTOR_EVQ_CALL, actor_call_actor(c));
  ev.handle = c;
  ev.event = event;
  ev.status = status;
  if (event == ACTOR_EV_DONE && status != 0)
    evq_push(q, &ev, data, data ? len : 0, actor_call_error_type(c),
             actor_call_error_message(c), actor_call_traceback(c));
  else
    evq_push(q, &ev, data, data ? len : 0, NULL, NULL, NULL);
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
