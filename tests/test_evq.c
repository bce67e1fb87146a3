/* The event queue (actor_evq_*): every callback's information copied and
 * kept until taken, in order, after the handles it names are freed; the
 * bound stops the loop instead of dropping; errors on bad arguments.  Call
 * and wait (actor_evq_call/_wait): the reply returned directly, everything
 * else that came meanwhile still queued, in order. */
#define _GNU_SOURCE
#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Run the loop until the queue holds an event; fails after `ms`. */
static void wait_any_event(struct ts *t, actor_evq *q, unsigned ms) {
  uint64_t end = uv_now(&t->loop) + ms;
  while (actor_evq_len(q) == 0) {
    if (uv_now(&t->loop) > end)
      fail_msg("no event within %u ms", ms);
    uv_run(&t->loop, UV_RUN_ONCE);
  }
}

static actor *spawn_evq(struct ts *t, actor_evq *q, const char *helper) {
  actor_opts *o = ts_opts(helper);
  actor *a = NULL;
  assert_int_equal(actor_opts_on_exit(o, actor_evq_exit_cb, q), 0);
  assert_int_equal(actor_opts_on_hello(o, actor_evq_hello_cb, q), 0);
  assert_int_equal(actor_opts_on_output(o, actor_evq_output_cb, q), 0);
  assert_int_equal(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE), 0);
  assert_int_equal(actor_opts_set_stdio(o, 2, ACTOR_STDIO_CAPTURE), 0);
  assert_int_equal(actor_spawn(t->rt, o, &a), 0);
  actor_opts_free(o);
  return a;
}

/* Take events until one of `kind`/`event` (copied to *out), running the
 * loop while the queue is empty. */
static void take_until(struct ts *t, actor_evq *q, int kind, int event,
                       actor_evq_event *out, void (*seen)(const actor_evq_event *,
                                                          void *),
                       void *arg) {
  uint64_t end = uv_now(&t->loop) + 10000;
  actor_evq_event ev;
  for (;;) {
    while (actor_evq_next(q, &ev)) {
      if (seen != NULL)
        seen(&ev, arg);
      if (ev.kind == kind && (event == 0 || ev.event == event)) {
        *out = ev;
        return;
      }
    }
    if (uv_now(&t->loop) > end)
      fail_msg("no event of kind %d/%d within 10 s", kind, event);
    uv_run(&t->loop, UV_RUN_ONCE);
  }
}

struct stream_seen {
  int64_t next;
  int ends;
  int after_done;
  int done;
};

static void count_items(const actor_evq_event *ev, void *arg) {
  struct stream_seen *s = arg;
  if (ev->kind != ACTOR_EVQ_CALL)
    return;
  if (s->done)
    s->after_done++;
  if (ev->event == ACTOR_EV_ITEM) {
    assert_int_equal(ts_unpack_int(ev->bytes, ev->len), s->next);
    s->next++;
  } else if (ev->event == ACTOR_EV_END) {
    s->ends++;
  } else if (ev->event == ACTOR_EV_DONE) {
    s->done = 1;
  }
}

/* Hello, a stream of items, the return value, an error's details, the exit
 * information: all copied, in order, readable after the handles are gone. */
static void evq_copies_every_event_in_order(void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  actor_call *c = NULL;
  struct stream_seen s = {0};
  int64_t n = 1000;
  static int token;
  (void)state;

  ts_start(&t);
  assert_int_equal(actor_evq_new(&q, t.rt, 0), 0);
  a = spawn_evq(&t, q, "actor");
  actor_set_data(a, &token);

  take_until(&t, q, ACTOR_EVQ_HELLO, 0, &ev, NULL, NULL);
  assert_int_equal(ev.status, 0);
  assert_ptr_equal(ev.handle, a);
  assert_ptr_equal(ev.data, &token);
  assert_true(ev.actor_id == actor_id(a));

  /* count(1000): 1000 items, END, DONE(1000), in that order. */
  {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, n);
    assert_int_equal(actor_call_start(a, "count", sb.data, sb.size,
                                      actor_evq_call_cb, q, &c),
                     0);
    msgpack_sbuffer_destroy(&sb);
  }
  take_until(&t, q, ACTOR_EVQ_CALL, ACTOR_EV_DONE, &ev, count_items, &s);
  assert_ptr_equal(ev.handle, c);
  assert_ptr_equal(ev.data, &token);
  assert_int_equal(ev.status, 0);
  assert_int_equal(ts_unpack_int(ev.bytes, ev.len), n);
  assert_int_equal(s.next, n);
  assert_int_equal(s.ends, 1);
  assert_int_equal(s.after_done, 0);

  /* An error: type, message and traceback outlive the freed call. */
  assert_int_equal(actor_call_start(a, "fail", NULL, 0, actor_evq_call_cb, q,
                                    &c),
                   0);
  take_until(&t, q, ACTOR_EVQ_CALL, ACTOR_EV_DONE, &ev, NULL, NULL);
  assert_int_equal(ev.status, ACTOR_EREMOTE);
  assert_string_equal(ev.error_type, "ValueError");
  assert_string_equal(ev.error_message, "bad value: 42");
  assert_non_null(strstr(ev.traceback, "in fn_fail"));
  assert_int_equal(ev.len, 0);

  /* Captured output lines. */
  assert_int_equal(actor_call_start(a, "say", NULL, 0, actor_evq_call_cb, q,
                                    NULL),
                   0);
  take_until(&t, q, ACTOR_EVQ_OUTPUT, 0, &ev, NULL, NULL);
  assert_int_equal(ev.event, 1);
  assert_int_equal(ev.len, 6);
  assert_memory_equal(ev.bytes, "line 1", 6);
  assert_int_equal(ev.bytes[6], '\0');

  /* Exit: status and reason copied; the actor is freed by now. */
  assert_int_equal(actor_stop(a), 0);
  take_until(&t, q, ACTOR_EVQ_EXIT, 0, &ev, NULL, NULL);
  assert_ptr_equal(ev.handle, a);
  assert_int_equal(ev.status, 0);
  assert_int_equal(ev.exit_status, 0);
  assert_int_equal(ev.exit_signal, 0);
  assert_true(strlen(ev.bytes) > 0);
  assert_int_equal(ev.len, strlen(ev.bytes));
  assert_int_equal(actor_rt_actor_count(t.rt), 0);

  ts_finish(&t);
  actor_evq_free(q); /* after the runtime, as documented */
}

/* Over its limit the queue keeps every event but stops the loop, so a
 * blocking run returns to the caller to drain. */
static void evq_over_its_limit_stops_the_loop_and_drops_nothing(void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  struct stream_seen s = {0};
  char args[16];
  size_t alen;
  int runs = 0;
  (void)state;

  ts_start(&t);
  assert_int_equal(actor_evq_new(&q, t.rt, 1024), 0);
  a = spawn_evq(&t, q, "actor");
  alen = 0;
  args[alen++] = (char)0x91; /* [20000] */
  alen += ts_pack_int(args + alen, sizeof(args) - alen, 20000);
  assert_int_equal(actor_call_start(a, "count", args, alen, actor_evq_call_cb,
                                    q, NULL),
                   0);
  while (!s.done) {
    /* UV_RUN_DEFAULT would run until the actor exits; the bound makes it
     * come back whenever the queue has passed 1 KiB.  The last few
     * hundred events may stay under the bound: those are taken with
     * single runs. */
    if (s.next < 15000) {
      uv_run(&t.loop, UV_RUN_DEFAULT);
      runs++;
      /* It came back because the queue reached its bound, nothing lost. */
      assert_true(actor_evq_bytes(q) >= 1024);
    } else {
      uv_run(&t.loop, UV_RUN_ONCE);
    }
    while (actor_evq_next(q, &ev))
      count_items(&ev, &s);
    assert_true(runs < 100000);
  }
  assert_int_equal(s.next, 20000);
  assert_int_equal(s.ends, 1);
  assert_true(runs > 1); /* it came back to drain, again and again */
  print_message("count(20000) with a 1 KiB queue: %d runs of the loop\n", runs);
  assert_int_equal(actor_evq_len(q), 0);
  assert_int_equal(actor_evq_bytes(q), 0);
  ts_finish(&t);
  actor_evq_free(q);
}

/* Bad arguments; an empty queue; freeing one with events not taken. */
static void evq_validation_and_free_with_events_pending(void **state) {
  struct ts t;
  actor_evq *q = (actor_evq *)&t;
  actor_evq_event ev;
  (void)state;

  ts_start(&t);
  assert_int_equal(actor_evq_new(NULL, t.rt, 0), -EINVAL);
  assert_int_equal(actor_evq_new(&q, NULL, 0), -EINVAL);
  assert_null(q);
  actor_evq_free(NULL);
  assert_int_equal(actor_evq_new(&q, t.rt, 0), 0);
  assert_int_equal(actor_evq_next(q, &ev), 0);
  assert_int_equal(actor_evq_len(q), 0);
  spawn_evq(&t, q, "actor");
  wait_any_event(&t, q, 10000);
  assert_true(actor_evq_len(q) > 0);
  ts_finish(&t); /* the exit event joins the hello */
  assert_true(actor_evq_len(q) >= 2);
  actor_evq_free(q); /* the leak check sees both go */
}


/* ---- call and wait ------------------------------------------------------ */

/* args: [v] */
static size_t args1(char *buf, size_t cap, int64_t v) {
  buf[0] = (char)0x91;
  return 1 + ts_pack_int(buf + 1, cap - 1, v);
}

/* A runtime, a queue of `limit` bytes and two actors on it; b streams
 * count(n) to the queue (its call in *sc). */
static void start_two(struct ts *t, actor_evq **q, size_t limit, actor **a,
                      int64_t n, actor_call **sc) {
  actor *b;
  char args[16];
  size_t alen = args1(args, sizeof(args), n);

  ts_start(t);
  assert_int_equal(actor_evq_new(q, t->rt, limit), 0);
  *a = spawn_evq(t, *q, "actor");
  b = spawn_evq(t, *q, "actor");
  assert_int_equal(actor_call_start(b, "count", args, alen, actor_evq_call_cb,
                                    *q, sc),
                   0);
}

/* The reply comes back directly; a stream of another actor, captured
 * output and the waited call's error details are all there, in order,
 * and nothing of the waited calls is left in the queue. */
static void evq_call_returns_the_reply_and_keeps_other_events_in_order(
    void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  actor_call *c = (actor_call *)&t, *sc = NULL;
  struct stream_seen s = {0};
  char args[16];
  size_t alen;
  int i, lines = 0;
  (void)state;

  start_two(&t, &q, 0, &a, 3000, &sc);
  /* Many waited calls while b streams: each returns its own reply. */
  for (i = 0; i < 200; i++) {
    alen = 0;
    args[alen++] = (char)0x92; /* [i, 1000] */
    alen += ts_pack_int(args + alen, sizeof(args) - alen, i);
    alen += ts_pack_int(args + alen, sizeof(args) - alen, 1000);
    assert_int_equal(
        actor_evq_call(q, a, "add", args, alen, i % 2 ? 50 : 0, 10000, &ev, &c),
        1);
    assert_null(c);
    assert_int_equal(ev.kind, ACTOR_EVQ_CALL);
    assert_int_equal(ev.event, ACTOR_EV_DONE);
    assert_int_equal(ev.status, 0);
    assert_ptr_equal(ev.data, NULL);
    assert_int_equal(ts_unpack_int(ev.bytes, ev.len), i + 1000);
    /* what came meanwhile is queued: b's stream, in order */
    while (actor_evq_next(q, &ev)) {
      if (ev.kind == ACTOR_EVQ_CALL) {
        assert_ptr_equal(ev.handle, sc);
        count_items(&ev, &s);
      }
    }
  }
  /* A stream waited for: only its value comes back; no item is queued. */
  alen = args1(args, sizeof(args), 50);
  assert_int_equal(actor_evq_call(q, a, "count", args, alen, 0, 10000, &ev, &c),
                   1);
  assert_int_equal(ts_unpack_int(ev.bytes, ev.len), 50);
  /* An error, with its details. */
  assert_int_equal(actor_evq_call(q, a, "fail", NULL, 0, 0, 10000, &ev, &c), 1);
  assert_int_equal(ev.status, ACTOR_EREMOTE);
  assert_string_equal(ev.error_type, "ValueError");
  assert_string_equal(ev.error_message, "bad value: 42");
  assert_non_null(strstr(ev.traceback, "in fn_fail"));
  /* Output written during a waited call: queued, every line. */
  assert_int_equal(actor_evq_call(q, a, "say", NULL, 0, 50, 10000, &ev, &c), 1);
  assert_int_equal(ev.status, 0);
  while (lines < 4 || !s.done) {
    while (actor_evq_next(q, &ev)) {
      if (ev.kind == ACTOR_EVQ_OUTPUT) {
        assert_ptr_equal(ev.handle, a);
        lines++;
      } else if (ev.kind == ACTOR_EVQ_CALL) {
        assert_ptr_equal(ev.handle, sc); /* never one of the waited calls */
        count_items(&ev, &s);
      }
    }
    if (lines < 4 || !s.done)
      uv_run(&t.loop, UV_RUN_ONCE);
  }
  /* 3 lines and the stderr one (the unterminated tail comes at the end) */
  assert_int_equal(lines, 4);
  assert_int_equal(s.next, 3000);
  assert_int_equal(s.ends, 1);
  assert_int_equal(s.after_done, 0);
  ts_finish(&t);
  actor_evq_free(q);
}

/* An actor that exits during the waited call: the call's DONE comes back
 * (ACTOR_ECLOSED), the exit is queued after it. */
static void evq_call_to_an_actor_that_exits_returns_done_then_queues_exit(
    void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  actor_call *c;
  char args[16];
  size_t alen;
  (void)state;

  ts_start(&t);
  assert_int_equal(actor_evq_new(&q, t.rt, 0), 0);
  a = spawn_evq(&t, q, "actor");
  alen = args1(args, sizeof(args), 3);
  assert_int_equal(
      actor_evq_call(q, a, "exit_now", args, alen, 0, 10000, &ev, &c), 1);
  assert_int_equal(ev.status, ACTOR_ECLOSED);
  take_until(&t, q, ACTOR_EVQ_EXIT, 0, &ev, NULL, NULL);
  assert_ptr_equal(ev.handle, a);
  assert_int_equal(ev.exit_status, 3);
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  ts_finish(&t);
  actor_evq_free(q);
}

/* A timeout leaves the call in flight; waiting again gets its reply.  A
 * refused call sends nothing and leaves *cp NULL. */
static void evq_call_timeout_leaves_the_call_in_flight_and_wait_finishes_it(
    void **state) {
  struct ts t, t2;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  actor_call *c = NULL;
  char args[16];
  size_t alen;
  int r, n = 0;
  (void)state;

  ts_start(&t);
  assert_int_equal(actor_evq_new(&q, t.rt, 0), 0);
  a = spawn_evq(&t, q, "actor");
  alen = args1(args, sizeof(args), 300);
  assert_int_equal(actor_evq_call(q, a, "nap", args, alen, 0, 20, &ev, &c),
                   -ETIMEDOUT);
  assert_non_null(c);
  assert_int_equal(actor_evq_wait(q, c, 0, 0, &ev), -ETIMEDOUT);
  while ((r = actor_evq_wait(q, c, 0, 50, &ev)) == -ETIMEDOUT)
    assert_true(++n < 200);
  assert_int_equal(r, 1);
  assert_int_equal(ev.status, 0);
  assert_ptr_equal(ev.handle, c);
  /* Its DONE already queued by a run of the loop: the wait takes it out
   * of the queue. */
  while (actor_evq_next(q, &ev)) /* the hello */
    ;
  /* (A nap long enough that no stall of this thread between the send and
   * the poll of that one non-blocking run lets the answer in: a 1 ms nap
   * did once under ASan on the loaded machine.) */
  alen = args1(args, sizeof(args), 300);
  assert_int_equal(actor_evq_call(q, a, "nap", args, alen, 0, 0, &ev, &c),
                   -ETIMEDOUT);
  wait_any_event(&t, q, 10000);
  assert_int_equal(actor_evq_len(q), 1);
  assert_int_equal(actor_evq_wait(q, c, 0, 0, &ev), 1);
  assert_ptr_equal(ev.handle, c);
  assert_int_equal(actor_evq_len(q), 0);

  /* Refused: nothing sent, *cp NULL, the runtime says why. */
  c = (actor_call *)&t;
  assert_int_equal(actor_evq_call(q, a, NULL, NULL, 0, 0, 10, &ev, &c),
                   -EINVAL);
  assert_null(c);
  assert_int_equal(actor_evq_call(NULL, a, "add", NULL, 0, 0, 10, &ev, &c),
                   -EINVAL);
  assert_int_equal(actor_evq_call(q, a, "add", NULL, 0, 0, 10, NULL, &c),
                   -EINVAL);
  assert_int_equal(actor_evq_call(q, NULL, "add", NULL, 0, 0, 10, &ev, &c),
                   -EINVAL);
  assert_int_equal(actor_evq_wait(q, NULL, 0, 10, &ev), -EINVAL);
  ts_start(&t2);
  {
    actor_evq *q2;
    assert_int_equal(actor_evq_new(&q2, t2.rt, 0), 0);
    assert_int_equal(actor_evq_call(q2, a, "add", NULL, 0, 0, 10, &ev, &c),
                     -EINVAL);
    assert_non_null(strstr(actor_rt_errmsg(t2.rt), "another runtime"));
    ts_finish(&t2);
    actor_evq_free(q2);
  }
  assert_int_equal(actor_stop(a), 0);
  assert_int_equal(actor_evq_call(q, a, "add", NULL, 0, 0, 10, &ev, &c),
                   ACTOR_ESTATE);
  assert_null(c);
  ts_finish(&t);
  actor_evq_free(q);
}

/* Past the queue's bound the wait comes back (0) for the caller to drain:
 * a 20000-item stream of another actor during one waited call, every item
 * kept, in order. */
static void evq_call_at_the_queue_bound_returns_to_drain_and_drops_nothing(
    void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  actor_call *c, *sc;
  struct stream_seen s = {0};
  char args[16];
  size_t alen;
  int r, drains = 0;
  (void)state;

  start_two(&t, &q, 1024, &a, 20000, &sc);
  alen = args1(args, sizeof(args), 1500);
  r = actor_evq_call(q, a, "nap", args, alen, 0, -1, &ev, &c);
  while (r == 0) {
    drains++;
    assert_true(actor_evq_bytes(q) >= 1024);
    while (actor_evq_next(q, &ev))
      if (ev.kind == ACTOR_EVQ_CALL) {
        assert_ptr_equal(ev.handle, sc);
        count_items(&ev, &s);
      }
    r = actor_evq_wait(q, c, 0, -1, &ev);
  }
  assert_int_equal(r, 1);
  assert_ptr_equal(ev.handle, c);
  assert_int_equal(ev.status, 0);
  print_message("a 20000-item stream during one waited call: %d drains, "
                "%ld items by its end\n",
                drains, (long)s.next);
  assert_true(drains > 0);
  while (!s.done) {
    while (actor_evq_next(q, &ev))
      count_items(&ev, &s);
    if (!s.done)
      uv_run(&t.loop, UV_RUN_ONCE);
  }
  assert_int_equal(s.next, 20000);
  assert_int_equal(s.ends, 1);
  ts_finish(&t);
  actor_evq_free(q);
}

/* A wait started from a callback of the loop a wait is running: refused
 * (the loop is not re-entrant), and the outer wait goes on. */
struct nested {
  actor_evq *q;
  int r;
  int ran;
};

static void nested_hello(actor *a, int status, void *arg) {
  struct nested *n = arg;
  actor_evq_event ev;
  actor_call *c = (actor_call *)n;
  (void)status;
  n->r = actor_evq_call(n->q, a, "add", NULL, 0, 0, 10, &ev, &c);
  n->ran = c == NULL;
}

static void evq_call_from_inside_a_wait_is_refused(void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a, *b = NULL;
  actor_call *c;
  actor_opts *o;
  struct nested n = {0};
  char args[16];
  size_t alen;
  (void)state;

  ts_start(&t);
  assert_int_equal(actor_evq_new(&q, t.rt, 0), 0);
  n.q = q;
  a = spawn_evq(&t, q, "actor");
  take_until(&t, q, ACTOR_EVQ_HELLO, 0, &ev, NULL, NULL);
  o = ts_opts("actor");
  assert_int_equal(actor_opts_on_hello(o, nested_hello, &n), 0);
  assert_int_equal(actor_spawn(t.rt, o, &b), 0);
  actor_opts_free(o);
  /* b says hello while a naps: its callback runs inside one of these
   * waits (the only runs of the loop until it has). */
  alen = args1(args, sizeof(args), 200);
  while (!n.ran) {
    assert_int_equal(
        actor_evq_call(q, a, "nap", args, alen, 0, 20000, &ev, &c), 1);
    assert_int_equal(ev.status, 0);
  }
  assert_int_equal(n.r, ACTOR_ESTATE);
  assert_true(n.ran);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "already in progress"));
  ts_finish(&t);
  actor_evq_free(q);
}

/* A signal ends the wait with -EINTR (the host's handler can run); the
 * call is still in flight and a second wait gets its reply. */
static volatile sig_atomic_t g_usr1;
static void on_usr1(int sig) {
  (void)sig;
  g_usr1++;
}

struct kick {
  pthread_t target;
  atomic_int stop;
};

/* A signal every 20 ms until told to stop: one of them lands in the
 * wait's poll(), however slow the machine is to get there. */
static void *kick_main(void *arg) {
  struct kick *k = arg;
  while (!atomic_load(&k->stop)) {
    usleep(20 * 1000);
    pthread_kill(k->target, SIGUSR1);
  }
  return NULL;
}

static void evq_call_interrupted_by_a_signal_returns_eintr_then_completes(
    void **state) {
  struct ts t;
  actor_evq *q;
  actor_evq_event ev;
  actor *a;
  actor_call *c = NULL;
  struct sigaction sa, old;
  struct kick k;
  pthread_t th;
  char args[16];
  size_t alen;
  int r;
  (void)state;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_usr1; /* no SA_RESTART: poll() is never restarted */
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
  ts_start(&t);
  assert_int_equal(actor_evq_new(&q, t.rt, 0), 0);
  a = spawn_evq(&t, q, "actor");
  take_until(&t, q, ACTOR_EVQ_HELLO, 0, &ev, NULL, NULL);
  g_usr1 = 0;
  k.target = pthread_self();
  atomic_init(&k.stop, 0);
  assert_int_equal(pthread_create(&th, NULL, kick_main, &k), 0);
  alen = args1(args, sizeof(args), 1500);
  r = actor_evq_call(q, a, "nap", args, alen, 0, 20000, &ev, &c);
  atomic_store(&k.stop, 1);
  pthread_join(th, NULL);
  assert_int_equal(r, -EINTR);
  assert_true(g_usr1 >= 1);
  assert_non_null(c);
  assert_int_equal(actor_evq_wait(q, c, 0, 20000, &ev), 1);
  assert_int_equal(ev.status, 0);
  ts_finish(&t);
  actor_evq_free(q);
  sigaction(SIGUSR1, &old, NULL);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(evq_copies_every_event_in_order),
      TH_TEST(evq_over_its_limit_stops_the_loop_and_drops_nothing),
      TH_TEST(evq_validation_and_free_with_events_pending),
      TH_TEST(evq_call_returns_the_reply_and_keeps_other_events_in_order),
      TH_TEST(evq_call_to_an_actor_that_exits_returns_done_then_queues_exit),
      TH_TEST(evq_call_timeout_leaves_the_call_in_flight_and_wait_finishes_it),
      TH_TEST(evq_call_at_the_queue_bound_returns_to_drain_and_drops_nothing),
      TH_TEST(evq_call_from_inside_a_wait_is_refused),
      TH_TEST(evq_call_interrupted_by_a_signal_returns_eintr_then_completes),
  };
  return cmocka_run_group_tests(tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
