/* The event queue (actor_evq_*): every callback's information copied and
 * kept until taken, in order, after the handles it names are freed; the
 * bound stops the loop instead of dropping; errors on bad arguments. */
#define _GNU_SOURCE
#include <errno.h>
#include <msgpack.h>
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

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(evq_copies_every_event_in_order),
      TH_TEST(evq_over_its_limit_stops_the_loop_and_drops_nothing),
      TH_TEST(evq_validation_and_free_with_events_pending),
  };
  return cmocka_run_group_tests(tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
