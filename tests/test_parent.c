/* The parent side against a peer the test controls byte by byte.
 *
 * A private backend ("peer") opens the actor's channel on one end of a
 * socketpair and hands the other end to the test, which then plays the
 * child: it writes frames (well formed or not) and reads what the runtime
 * sends.  Exits are reported by the test too, so every race the runtime
 * must survive (a send between EOF and the exit, an exit while a writer
 * keeps the socket full) can be staged deterministically, without timing.
 *
 * The in-process transport's own bounds are tested here too, with a
 * thread of the test as the child. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/inproc.h"
#include "rt/internal.h"
#include "spawn/backend.h"
#include "peer.h"
#include "support.h"

/* ======================================================================== */
/* Memory safety                                                            */
/* ======================================================================== */

struct two_calls {
  actor_call *c[2];
  struct ts_call r[2];
  int done[2];
  int send_r, end_r;
};

static void two_cb(actor_call *c, int ev, int status, const char *d,
                   size_t n, void *arg) {
  struct two_calls *tc = arg;
  int i = c == tc->c[0] ? 0 : 1;
  ts_call_cb(c, ev, status, d, n, &tc->r[i]);
  if (ev != ACTOR_EV_DONE)
    return;
  tc->done[i] = 1;
  if (!tc->done[1 - i]) {
    /* The other call of the same dead actor is still pending. */
    static const char item = 0x01;
    tc->send_r = actor_call_send(tc->c[1 - i], &item, 1);
    tc->end_r = actor_call_end(tc->c[1 - i]);
  }
}

/* Issue 7 item 1: a send on a call whose actor's channel has closed (from
 * the DONE callback of another call of the same actor) used to work on a
 * freed msgpack zone. */
static void parent_send_on_a_call_of_a_dead_actor_is_eclosed_and_safe(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct two_calls tc;
  static const char item = 0x02;
  actor *a;
  int i;
  (void)state;

  memset(&tc, 0, sizeof(tc));
  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  for (i = 0; i < 2; i++) {
    ts_call_init(&tc.r[i]);
    TH_OK(actor_call_start(a, "f", NULL, 0, two_cb, &tc, &tc.c[i]));
  }
  ts_run_for(&t, 10);
  peer_hang_up();
  ts_run_for(&t, 20);
  /* Between EOF and the exit: refused, nothing touched. */
  TH_ERR(actor_call_send(tc.c[0], &item, 1), ACTOR_ECLOSED);
  TH_ERR(actor_call_end(tc.c[0]), ACTOR_ECLOSED);
  actor__backend_exited(a, 0, 0, 0);
  ts_wait(&t, &ex.exited, 2000);
  assert_true(tc.done[0] && tc.done[1]);
  TH_ERR(tc.send_r, ACTOR_ECLOSED);
  TH_ERR(tc.end_r, ACTOR_ECLOSED);
  TH_ERR(tc.r[0].status, ACTOR_ECLOSED);
  ts_finish(&t);
  for (i = 0; i < 2; i++)
    ts_call_fini(&tc.r[i]);
}

/* Issue 7 item 4: empty strings in an ERROR (msgpack-c hands NULL for them)
 * are copied without passing NULL to memcpy (UBSan lane). */
static void parent_error_with_empty_strings_is_copied_safely(void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct ts_call r;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  actor *a;
  actor_call *c;
  (void)state;

  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  ts_call_init(&r);
  TH_OK(actor_call_start(a, "f", NULL, 0, ts_call_cb, &r, &c));
  pk_begin(&sb, &pk, 5, ACTOR__MSG_ERROR, 1);
  msgpack_pack_str(&pk, 0);
  msgpack_pack_str_body(&pk, "", 0);
  msgpack_pack_nil(&pk);
  msgpack_pack_str(&pk, 0);
  msgpack_pack_str_body(&pk, "", 0);
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
  ts_wait(&t, &r.done, 2000);
  TH_ERR(r.status, ACTOR_EREMOTE);
  assert_string_equal(r.etype, "");
  assert_string_equal(r.emsg, "");
  assert_string_equal(r.etb, "");
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  ts_finish(&t);
  ts_call_fini(&r);
}

/* Call ids wrap from 2^32 - 1 to 1 and skip the ids still in use (issue
 * 11: until the first wrap none is looked up, as none can be in use): a
 * call held with id 1 across the wrap, and the next call gets id 2; every
 * answer reaches its own call. */
static void parent_call_ids_wrap_and_skip_ids_still_in_use(void **state) {
  static const uint32_t want[3] = {1, UINT32_MAX, 2};
  struct ts t;
  struct ts_exit ex = {0};
  struct ts_call r[3];
  struct abuf in;
  struct actor__msg m;
  uint32_t ids[3];
  int i, n = 0;
  actor *a;
  (void)state;

  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  for (i = 0; i < 3; i++)
    ts_call_init(&r[i]);
  TH_OK(actor_call_start(a, "f", NULL, 0, ts_call_cb, &r[0], NULL));
  a->next_call_id = UINT32_MAX - 1;
  TH_OK(actor_call_start(a, "f", NULL, 0, ts_call_cb, &r[1], NULL));
  TH_OK(actor_call_start(a, "f", NULL, 0, ts_call_cb, &r[2], NULL));
  ts_run_for(&t, 20);
  actor__buf_init(&in);
  for (;;) {
    ssize_t k;
    TH_OK(actor__buf_reserve(&in, 4096));
    k = recv(g_peer_fd, actor__buf_tail(&in), actor__buf_room(&in),
             MSG_DONTWAIT);
    if (k <= 0)
      break;
    in.len += (size_t)k;
  }
  while (in.len >= 4 && n < 3) {
    const unsigned char *h = (const unsigned char *)actor__buf_data(&in);
    uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
                   ((uint32_t)h[2] << 8) | h[3];
    assert_true(in.len >= 4 + (size_t)len);
    TH_OK(actor__msg_decode(&m, (const char *)h + 4, len));
    if (m.kind == ACTOR__MSG_CALL)
      ids[n++] = m.id;
    actor__buf_consume(&in, 4 + (size_t)len);
  }
  actor__buf_fini(&in);
  assert_int_equal(n, 3);
  for (i = 0; i < 3; i++) {
    assert_int_equal(ids[i], want[i]);
    peer_int(ACTOR__MSG_RETURN, ids[i], 10 + i);
  }
  for (i = 0; i < 3; i++) {
    ts_wait(&t, &r[i].done, 2000);
    TH_OK(r[i].status);
    assert_int_equal(r[i].value, 10 + i);
    ts_call_fini(&r[i]);
  }
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  ts_finish(&t);
}

/* ======================================================================== */
/* Limits                                                                   */
/* ======================================================================== */

/* Issue 7 item 6: a reply nested 512 deep is delivered; 513 deep fails
 * that call with ACTOR_EDEPTH and the actor keeps serving. */
static void parent_reply_nested_512_deep_is_delivered_513_fails_only_that_call(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct ts_call r1, r2, r3;
  actor *a;
  (void)state;

  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  ts_call_init(&r1);
  ts_call_init(&r2);
  ts_call_init(&r3);
  TH_OK(actor_call_start(a, "deep", NULL, 0, ts_call_cb, &r1, NULL));
  TH_OK(actor_call_start(a, "deeper", NULL, 0, ts_call_cb, &r2, NULL));
  TH_OK(actor_call_start(a, "after", NULL, 0, ts_call_cb, &r3, NULL));
  peer_nested(ACTOR__MSG_RETURN, 1, 512); /* 512 arrays around an int */
  peer_nested(ACTOR__MSG_RETURN, 2, 513);
  peer_int(ACTOR__MSG_RETURN, 3, 7);
  ts_wait(&t, &r3.done, 2000);
  TH_OK(r1.status);
  TH_ERR(r2.status, ACTOR_EDEPTH);
  assert_non_null(strstr(r2.emsg, "deeper than 512"));
  TH_OK(r3.status);
  assert_int_equal(r3.value, 7);
  assert_int_equal(actor_state(a), ACTOR_STATE_RUNNING);
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  assert_int_equal(ex.error, 0);
  ts_finish(&t);
  ts_call_fini(&r1);
  ts_call_fini(&r2);
  ts_call_fini(&r3);
}

static size_t pack_nested(char *buf, int levels) {
  int i;
  for (i = 0; i < levels; i++)
    buf[i] = (char)0x91;
  buf[levels] = 0x01;
  return (size_t)levels + 1;
}

/* Issue 7 item 6: arguments nested 512 deep are sent; 513 deep are refused
 * with ACTOR_EDEPTH (they used to be -EINVAL from 33 levels on). */
static void parent_args_nested_512_deep_are_sent_513_refused_with_edepth(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  static char args[600];
  actor *a;
  (void)state;

  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  TH_OK(actor_call_start(a, "f", args, pack_nested(args, 511), NULL, NULL,
                         NULL));
  TH_OK(actor_call_start(a, "f", args, pack_nested(args, 512), NULL, NULL,
                         NULL));
  TH_ERR(actor_call_start(a, "f", args, pack_nested(args, 513), NULL, NULL,
                          NULL),
         ACTOR_EDEPTH);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "deeper than 512"));
  args[0] = (char)0xc1; /* not msgpack */
  TH_ERR(actor_call_start(a, "f", args, 1, NULL, NULL, NULL), -EINVAL);
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  ts_finish(&t);
}

struct many {
  size_t done, twice;
  int *seen;
};

static void many_cb(actor_call *c, int ev, int status, const char *d,
                    size_t n, void *arg) {
  struct many *m = arg;
  (void)c;
  (void)d;
  (void)n;
  (void)status;
  if (ev != ACTOR_EV_DONE)
    return;
  m->done++;
}

/* Issue 7 item 8: ending an actor with many pending calls completes each
 * exactly once, in time linear in their number (the table used to be
 * rescanned from slot 0 for each call: 160k calls took 9 s in one
 * callback).  The figure is printed; bench/ owns the speed target. */
static void parent_ending_an_actor_with_100k_pending_calls_is_linear(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct many m = {0, 0, NULL};
  uint64_t t0;
  size_t i, n = 100000;
  actor *a;
  (void)state;

  ts_start(&t);
  TH_OK(actor_rt_set_max_queue(t.rt, 64u << 20));
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  for (i = 0; i < n; i++)
    TH_OK(actor_call_start(a, "f", NULL, 0, many_cb, &m, NULL));
  peer_hang_up();
  ts_run_for(&t, 20);
  t0 = th_now_ms();
  actor__backend_exited(a, 0, 0, 0);
  ts_wait(&t, &ex.exited, 30000);
  print_message("  %zu pending calls completed in %llu ms\n", n,
                (unsigned long long)(th_now_ms() - t0));
  assert_int_equal(m.done, n);
  ts_finish(&t);
}

struct writer {
  int fd;
  atomic_int stop;
  size_t bytes;
};

/* Keeps the socket full of frames the parent ignores (answers to a call
 * that does not exist), like a grandchild that inherited the channel. */
static void *writer_main(void *arg) {
  struct writer *w = arg;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char *burst;
  size_t i, n = 0;
  uint32_t be;

  pk_begin(&sb, &pk, 3, ACTOR__MSG_RETURN, 999999);
  msgpack_pack_int(&pk, 1);
  burst = malloc(64 * (sb.size + 4));
  for (i = 0; i < 64; i++) {
    be = htonl((uint32_t)sb.size);
    memcpy(burst + n, &be, 4);
    memcpy(burst + n + 4, sb.data, sb.size);
    n += sb.size + 4;
  }
  while (!atomic_load(&w->stop)) {
    /* MSG_NOSIGNAL: the host closes its end, and the test shuts this one
     * down, while this thread may be inside the call: an EPIPE ends the
     * loop, where a SIGPIPE would end the test program. */
    ssize_t k = send(w->fd, burst, n, MSG_NOSIGNAL);
    if (k <= 0)
      break;
    w->bytes += (size_t)k;
  }
  free(burst);
  msgpack_sbuffer_destroy(&sb);
  return NULL;
}

/* Issue 7 item 9: what a dead child left is read with a bound: a process
 * that inherited the channel and keeps writing does not hold the loop. */
static void parent_exit_pump_is_bounded_when_someone_keeps_writing(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct writer w;
  pthread_t th;
  uint64_t t0, took;
  actor *a;
  (void)state;

  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  w.fd = g_peer_fd;
  atomic_init(&w.stop, 0);
  w.bytes = 0;
  assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
  ts_run_for(&t, 50);
  t0 = th_now_ms();
  actor__backend_exited(a, 0, 0, 0); /* pumps, then closes the channel */
  took = th_now_ms() - t0;
  atomic_store(&w.stop, 1);
  shutdown(g_peer_fd, SHUT_RDWR);
  pthread_join(th, NULL);
  peer_hang_up();
  ts_wait(&t, &ex.exited, 2000);
  print_message("  exit pump took %llu ms with a writer at full speed\n",
                (unsigned long long)took);
  /* The bound is 50 ms; the margin is for a loaded machine under ASan. */
  assert_true(took < 1000);
  ts_finish(&t);
}

/* An oversized frame's header and its first `body` bytes. */
static void peer_big_header(int kind, uint32_t id, uint32_t len, size_t body) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  uint32_t be = htonl(len);
  char *f = calloc(1, 4 + body);
  pk_begin(&sb, &pk, 3, kind, id);
  memcpy(f, &be, 4);
  memcpy(f + 4, sb.data, sb.size);
  peer_write(f, 4 + body);
  free(f);
  msgpack_sbuffer_destroy(&sb);
}

/* Issue 7 item 10: an attributed oversized frame within 4x the maximum is
 * skipped (that call fails, the actor lives); one announcing 4 GiB closes
 * the actor at once instead of making later calls wait behind it. */
static void parent_oversized_frame_beyond_4x_the_maximum_closes_the_actor(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct ts_call r1, r2;
  actor *a;
  (void)state;

  ts_start(&t);
  TH_OK(actor_rt_set_max_frame(t.rt, 4096));
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  ts_call_init(&r1);
  ts_call_init(&r2);
  TH_OK(actor_call_start(a, "f", NULL, 0, ts_call_cb, &r1, NULL));
  TH_OK(actor_call_start(a, "g", NULL, 0, ts_call_cb, &r2, NULL));
  peer_big_header(ACTOR__MSG_RETURN, 1, 4 * 4096, 4 * 4096); /* skipped */
  ts_wait(&t, &r1.done, 2000);
  TH_ERR(r1.status, ACTOR_E2BIG);
  assert_int_equal(actor_state(a), ACTOR_STATE_RUNNING);
  peer_big_header(ACTOR__MSG_RETURN, 2, 0xfffffff0u, 32);
  /* The actor is closed: its channel at once, then the stop sequence
   * (the peer "dies" at SIGTERM); the call fails with it. */
  ts_wait(&t, &r2.done, 2000);
  TH_ERR(r2.status, ACTOR_E2BIG);
  ts_wait(&t, &ex.exited, 2000);
  TH_ERR(ex.error, ACTOR_E2BIG);
  assert_true(g_peer_signals >= 1);
  peer_hang_up();
  ts_finish(&t);
  ts_call_fini(&r1);
  ts_call_fini(&r2);
}

/* ======================================================================== */
/* Supervision                                                              */
/* ======================================================================== */

/* Issue 7 item 12: deadlines count from the call.  After blocking work
 * between runs of the loop, the cached loop time is stale; a hello
 * deadline armed from it expired at once, although HELLO was waiting. */
static void parent_deadline_counts_from_the_call_after_blocking_work(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  actor *a;
  (void)state;

  ts_start(&t);
  uv_run(&t.loop, UV_RUN_NOWAIT); /* the loop's time is now cached */
  usleep(400 * 1000);             /* the host's own blocking work */
  a = peer_spawn(&t, &ex, 300);
  peer_hello(); /* readable before the loop runs again */
  ts_wait(&t, &ex.hello, 2000);
  assert_int_equal(ex.hello, 1);
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  assert_int_equal(ex.error, 0);
  ts_finish(&t);
}

/* Issue 7 item 21: the hello callback of an actor that never said hello
 * and then could not be stopped hears ACTOR_ENOHELLO (the cause), while
 * the exit reports ACTOR_EABANDONED. */
static void parent_hello_callback_hears_enohello_when_the_actor_is_abandoned(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  (void)state;

  ts_start(&t);
  peer_spawn(&t, &ex, 100);
  g_peer_deaf = 1;
  ts_wait(&t, &ex.exited, 5000);
  TH_ERR(ex.hello, ACTOR_ENOHELLO);
  TH_ERR(ex.error, ACTOR_EABANDONED);
  assert_true(g_peer_signals >= 2);
  peer_hang_up();
  ts_finish(&t);
}

struct cancel_rec {
  actor_call *c;
  int cancelled;
  int items_after, ends_after;
  int done, status;
};

static void cancel_cb(actor_call *c, int ev, int status, const char *d,
                      size_t n, void *arg) {
  struct cancel_rec *r = arg;
  (void)d;
  (void)n;
  if (ev == ACTOR_EV_DONE) {
    r->done = 1;
    r->status = status;
    return;
  }
  if (r->cancelled) {
    if (ev == ACTOR_EV_ITEM)
      r->items_after++;
    else
      r->ends_after++;
    return;
  }
  TH_OK(actor_call_cancel(c));
  r->cancelled = 1;
}

/* Issue 7 item 17: once actor_call_cancel() returns, the caller sees no
 * ITEM or END, only DONE. */
static void parent_no_item_or_end_after_cancel_returns(void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  struct cancel_rec r;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  actor *a;
  int i;
  (void)state;

  memset(&r, 0, sizeof(r));
  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  TH_OK(actor_call_start(a, "stream", NULL, 0, cancel_cb, &r, &r.c));
  for (i = 0; i < 200; i++) {
    peer_int(ACTOR__MSG_ITEM, 1, i);
    if (i % 20 == 0)
      uv_run(&t.loop, UV_RUN_NOWAIT);
  }
  pk_begin(&sb, &pk, 2, ACTOR__MSG_END, 1);
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
  pk_begin(&sb, &pk, 5, ACTOR__MSG_ERROR, 1);
  pk_str(&pk, "libactor.Cancelled");
  pk_str(&pk, "call cancelled");
  pk_str(&pk, "");
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
  ts_wait(&t, &r.done, 2000);
  assert_true(r.cancelled);
  assert_int_equal(r.items_after, 0);
  assert_int_equal(r.ends_after, 0);
  TH_ERR(r.status, ACTOR_ECANCELED);
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  ts_finish(&t);
}

/* Issue 7 item 24: a frame cut short by EOF is reported as such. */
static void parent_truncated_frame_then_eof_is_reported_as_a_partial_frame(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  static const unsigned char part[] = {0, 0, 0, 100, 0x93, 0x02, 0x01};
  actor *a;
  (void)state;

  ts_start(&t);
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  peer_write(part, sizeof(part));
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  TH_ERR(ex.error, ACTOR_EBADFRAME);
  if (strstr(ex.reason, "middle of a frame") == NULL)
    fail_msg("reason: %s", ex.reason);
  ts_finish(&t);
}

/* ======================================================================== */
/* Back-pressure                                                            */
/* ======================================================================== */

static int g_drains;
static void on_drain(actor *a, void *arg) {
  (void)a;
  (void)arg;
  g_drains++;
}

/* Issue 7 item 7: the queue towards a slow actor is bounded: calls are
 * refused with -EAGAIN at the limit, cancel still goes out, and the drain
 * callback says when to retry. */
static void parent_queue_limit_refuses_with_eagain_then_drain_fires(
    void **state) {
  struct ts t;
  struct ts_exit ex = {0};
  static char args[4096 + 8];
  actor_call *first = NULL, *c;
  size_t n, limit = 256 * 1024, got = 0;
  int r, calls = 0;
  actor *a;
  (void)state;

  /* A bin of 4 KiB. */
  args[0] = (char)0xc5;
  args[1] = 0x10;
  args[2] = 0x00;
  n = 3 + 4096;
  ts_start(&t);
  TH_OK(actor_rt_set_max_queue(t.rt, limit));
  actor_rt_on_drain(t.rt, on_drain, NULL);
  g_drains = 0;
  a = peer_spawn(&t, &ex, 2000);
  peer_started(&t, a, &ex);
  /* The peer reads nothing: the socket fills, then our queue. */
  for (;;) {
    r = actor_call_start(a, "f", args, n, NULL, NULL, &c);
    if (r == -EAGAIN)
      break;
    TH_OK(r);
    if (first == NULL)
      first = c;
    calls++;
    if (calls % 16 == 0)
      uv_run(&t.loop, UV_RUN_NOWAIT);
    assert_true(calls < 100000);
  }
  assert_true(actor_queued(a) >= limit);
  assert_true(actor_queued(a) < limit + 2 * n);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "queued"));
  TH_OK(actor_call_cancel(first)); /* never refused */
  assert_int_equal(g_drains, 0);
  /* The peer catches up: the queue drains and the host hears it once. */
  while (g_drains == 0 && got < (size_t)calls * n * 2) {
    got += peer_drain();
    uv_run(&t.loop, UV_RUN_NOWAIT);
  }
  assert_int_equal(g_drains, 1);
  TH_OK(actor_call_start(a, "f", args, n, NULL, NULL, NULL));
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 2000);
  ts_finish(&t);
}

/* ---- the in-process transport --------------------------------------------- */

struct ip_parent {
  size_t frames, bytes;
  int eof, closed;
};

static int ipp_frame(struct actor__chan *ch, const char *b, size_t n) {
  struct ip_parent *p = ch->data;
  (void)b;
  p->frames++;
  p->bytes += n;
  return 0;
}
static int ipp_oversize(struct actor__chan *ch, int k, uint32_t id,
                        uint64_t n) {
  (void)ch;
  (void)k;
  (void)id;
  (void)n;
  return 0;
}
static void ipp_eof(struct actor__chan *ch, int err) {
  struct ip_parent *p = ch->data;
  (void)err;
  p->eof = 1;
  actor__chan_close(ch);
}
static void ipp_closed(struct actor__chan *ch) {
  struct ip_parent *p = ch->data;
  p->closed = 1;
}
static const struct actor__chan_cbs ipp_cbs = {ipp_frame, ipp_oversize,
                                               ipp_eof, ipp_closed, NULL};

struct ip_child {
  struct actor__inproc *ip;
  size_t frames, sent;
  atomic_size_t written;
};

static void *ip_child_main(void *arg) {
  struct ip_child *c = arg;
  static char frame[4 + 4096];
  size_t i;
  uint32_t be = htonl(4096);
  memcpy(frame, &be, 4);
  memset(frame + 4, 0xc0, 4096); /* not valid [kind, id]: only counted */
  for (i = 0; i < c->frames; i++) {
    if (actor__inproc_child_write(c->ip, frame, sizeof(frame)))
      break;
    atomic_fetch_add(&c->written, sizeof(frame));
  }
  actor__inproc_child_close(c->ip);
  return NULL;
}

/* Issue 7 item 7: a sub-interpreter actor streaming while its host is busy
 * waits once 1 MiB is queued (it used to grow the host to ~300 MiB). */
static void inproc_child_writes_wait_while_1mib_is_queued(void **state) {
  uv_loop_t loop;
  struct actor__chan ch;
  struct ip_parent p = {0, 0, 0, 0};
  struct ip_child c;
  pthread_t th;
  size_t w;
  (void)state;

  TH_OK(uv_loop_init(&loop));
  c.ip = actor__inproc_new();
  c.frames = 2000; /* 8 MiB in all */
  atomic_init(&c.written, 0);
  TH_OK(actor__inproc_open_parent(&ch, &loop, c.ip, 8192, &ipp_cbs, &p));
  assert_int_equal(pthread_create(&th, NULL, ip_child_main, &c), 0);
  usleep(300 * 1000); /* the host is busy: its loop does not run */
  w = atomic_load(&c.written);
  print_message("  %zu bytes written while the host was busy\n", w);
  assert_true(w <= (1u << 20) + 4100);
  while (!p.closed)
    uv_run(&loop, UV_RUN_ONCE);
  pthread_join(th, NULL);
  assert_int_equal(p.frames, c.frames);
  actor__inproc_unref(c.ip);
  uv_run(&loop, UV_RUN_NOWAIT);
  TH_OK(uv_loop_close(&loop));
}

/* Issue 7 item 23: the loop spins at most once per iteration for all its
 * in-process channels (it used to spin ~30 us per channel: 100 actors cost
 * 3 ms per iteration). */
static void inproc_parent_spins_once_per_iteration_for_100_channels(
    void **state) {
  enum { N = 100 };
  uv_loop_t loop;
  static struct actor__chan ch[N];
  static struct ip_parent p[N];
  struct actor__inproc *ip[N];
  struct actor__msg m;
  unsigned long before;
  int i;
  (void)state;

  TH_OK(uv_loop_init(&loop));
  for (i = 0; i < N; i++) {
    memset(&p[i], 0, sizeof(p[i]));
    ip[i] = actor__inproc_new();
    TH_OK(actor__inproc_open_parent(&ch[i], &loop, ip[i], 8192, &ipp_cbs,
                                    &p[i]));
  }
  uv_run(&loop, UV_RUN_NOWAIT);
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_STOP;
  for (i = 0; i < N; i++)
    TH_OK(actor__chan_send(&ch[i], &m)); /* every channel now expects */
  actor__inproc_spin_reset(); /* earlier unanswered spins would skip it */
  before = actor__inproc_spin_count();
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(actor__inproc_spin_count() - before, 1);
  for (i = 0; i < N; i++) {
    actor__inproc_child_close(ip[i]);
    actor__inproc_unref(ip[i]);
  }
  for (i = 0; i < N; i++)
    while (!p[i].closed)
      uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_NOWAIT);
  TH_OK(uv_loop_close(&loop));
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(parent_send_on_a_call_of_a_dead_actor_is_eclosed_and_safe),
      TH_TEST(parent_error_with_empty_strings_is_copied_safely),
      TH_TEST(parent_call_ids_wrap_and_skip_ids_still_in_use),
      TH_TEST(parent_reply_nested_512_deep_is_delivered_513_fails_only_that_call),
      TH_TEST(parent_args_nested_512_deep_are_sent_513_refused_with_edepth),
      TH_TEST_T(parent_ending_an_actor_with_100k_pending_calls_is_linear, 60),
      TH_TEST(parent_exit_pump_is_bounded_when_someone_keeps_writing),
      TH_TEST(parent_oversized_frame_beyond_4x_the_maximum_closes_the_actor),
      TH_TEST(parent_deadline_counts_from_the_call_after_blocking_work),
      TH_TEST(parent_hello_callback_hears_enohello_when_the_actor_is_abandoned),
      TH_TEST(parent_no_item_or_end_after_cancel_returns),
      TH_TEST(parent_truncated_frame_then_eof_is_reported_as_a_partial_frame),
      TH_TEST(parent_queue_limit_refuses_with_eagain_then_drain_fires),
      TH_TEST(inproc_child_writes_wait_while_1mib_is_queued),
      TH_TEST(inproc_parent_spins_once_per_iteration_for_100_channels),
  };
  return cmocka_run_group_tests_name("parent", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
