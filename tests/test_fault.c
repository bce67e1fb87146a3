/* Fault injection (issue 7 §4): children that die at the worst moments,
 * and children that break the protocol in every way the parent must
 * survive.  Each case runs beside a healthy bystander actor, which must
 * still answer afterwards: a fault ends only the actor that caused it.
 *
 * Every pending call must end with exactly one DONE carrying a clear
 * error, and nothing may come after it.  Protocol faults are played by a
 * peer the test controls byte by byte (tests/peer.h); deaths by real
 * child processes (the test binary's "actor" helper). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/codec.h"
#include "peer.h"
#include "support.h"

/* A call record that also counts DONEs and events after DONE. */
struct fcall {
  struct ts_call r;
  int dones;
  int after_done;
};

static void fcall_cb(actor_call *c, int ev, int status, const char *d,
                     size_t n, void *arg) {
  struct fcall *f = arg;
  if (f->dones > 0)
    f->after_done++;
  if (ev == ACTOR_EV_DONE)
    f->dones++;
  ts_call_cb(c, ev, status, d, n, &f->r);
}

static void fcall_start(actor *a, const char *fn, int64_t v, struct fcall *f) {
  char args[16];
  size_t n;
  memset(f, 0, sizeof(*f));
  ts_call_init(&f->r);
  args[0] = (char)0x91; /* [v] */
  n = 1 + ts_pack_int(args + 1, sizeof(args) - 1, v);
  TH_OK(actor_call_start(a, fn, args, n, fcall_cb, f, NULL));
}

/* Exactly one DONE, nothing after it, with this status. */
static void fcall_check(struct fcall *f, int status) {
  assert_int_equal(f->dones, 1);
  assert_int_equal(f->after_done, 0);
  TH_ERR(f->r.status, status);
  if (status != 0)
    assert_true(f->r.emsg[0] != '\0'); /* a sentence says what happened */
  ts_call_fini(&f->r);
}

/* The bystander still answers. */
static void bystander_ok(struct ts *t, actor *b) {
  struct ts_call r;
  int64_t v[2] = {2, 40};
  TH_OK(ts_call_ints(b, "add", v, 2, &r, NULL));
  ts_wait(t, &r.done, 5000);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);
  ts_call_fini(&r);
  assert_int_equal(actor_state(b), ACTOR_STATE_RUNNING);
}

/* ======================================================================== */
/* A child SIGKILLed at the worst moments                                   */
/* ======================================================================== */

static void fault_subproc_sigkill_before_hello(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *a, *b;
  (void)state;

  ts_start(&t);
  b = ts_spawn(&t, "actor", &bx);
  a = ts_spawn(&t, "rogue_no_hello", &ex);
  fcall_start(a, "add", 1, &f); /* queued until HELLO, which never comes */
  ts_run_for(&t, 50);
  assert_int_equal(kill(actor_pid(a), SIGKILL), 0);
  ts_wait(&t, &ex.exited, 5000);
  TH_ERR(ex.hello, ACTOR_ENOHELLO);
  assert_int_equal(ex.signal, SIGKILL);
  fcall_check(&f, ACTOR_ENOHELLO);
  bystander_ok(&t, b);
  ts_finish(&t);
}

static void fault_subproc_sigkill_mid_call(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f, g;
  actor *a, *b;
  (void)state;

  ts_start(&t);
  b = ts_spawn(&t, "actor", &bx);
  a = ts_spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  fcall_start(a, "block", 5000, &f);
  fcall_start(a, "add", 1, &g); /* behind it */
  ts_run_for(&t, 100);
  assert_int_equal(kill(actor_pid(a), SIGKILL), 0);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.signal, SIGKILL);
  fcall_check(&f, ACTOR_ECLOSED);
  fcall_check(&g, ACTOR_ECLOSED);
  bystander_ok(&t, b);
  ts_finish(&t);
}

struct stream_kill {
  struct fcall f;
  actor *a;
  int killed;
};

static void stream_kill_cb(actor_call *c, int ev, int status, const char *d,
                           size_t n, void *arg) {
  struct stream_kill *s = arg;
  fcall_cb(c, ev, status, d, n, &s->f);
  if (ev == ACTOR_EV_ITEM && s->f.r.nitems == 100 && !s->killed) {
    s->killed = 1;
    kill(actor_pid(s->a), SIGKILL);
  }
}

static void fault_subproc_sigkill_mid_stream(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct stream_kill s;
  char args[16];
  size_t n;
  actor *b;
  (void)state;

  memset(&s, 0, sizeof(s));
  ts_start(&t);
  b = ts_spawn(&t, "actor", &bx);
  s.a = ts_spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  ts_call_init(&s.f.r);
  args[0] = (char)0x91;
  n = 1 + ts_pack_int(args + 1, sizeof(args) - 1, 1000000000);
  TH_OK(actor_call_start(s.a, "count", args, n, stream_kill_cb, &s, NULL));
  ts_wait(&t, &ex.exited, 10000);
  assert_true(s.killed);
  assert_int_equal(ex.signal, SIGKILL);
  assert_true(s.f.r.order_ok);
  fcall_check(&s.f, ACTOR_ECLOSED);
  bystander_ok(&t, b);
  ts_finish(&t);
}

static void fault_subproc_sigkill_while_handling_cancel(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor_call *c;
  char args[16];
  size_t n;
  actor *a, *b;
  (void)state;

  ts_start(&t);
  b = ts_spawn(&t, "actor", &bx);
  a = ts_spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  memset(&f, 0, sizeof(f));
  ts_call_init(&f.r);
  args[0] = (char)0x91;
  n = 1 + ts_pack_int(args + 1, sizeof(args) - 1, 5000);
  TH_OK(actor_call_start(a, "nap", args, n, fcall_cb, &f, &c));
  ts_run_for(&t, 50);
  TH_OK(actor_call_cancel(c));
  uv_run(&t.loop, UV_RUN_NOWAIT); /* the CANCEL goes out */
  assert_int_equal(kill(actor_pid(a), SIGKILL), 0);
  ts_wait(&t, &ex.exited, 5000);
  /* Whichever came first: the actor's answer to CANCEL, or its death. */
  assert_int_equal(f.dones, 1);
  if (f.r.status != ACTOR_ECANCELED)
    TH_ERR(f.r.status, ACTOR_ECLOSED);
  fcall_check(&f, f.r.status);
  bystander_ok(&t, b);
  ts_finish(&t);
}

/* ======================================================================== */
/* Children that break the protocol                                         */
/* ======================================================================== */

/* Spawn a bystander and a peer that said HELLO, with one call pending. */
static actor *rogue_setup(struct ts *t, struct ts_exit *ex, struct ts_exit *bx,
                          actor **b, struct fcall *f) {
  actor *a;
  ts_start(t);
  *b = ts_spawn(t, "actor", bx);
  ts_wait(t, &bx->hello, 5000);
  a = peer_spawn(t, ex, 2000);
  peer_started(t, a, ex);
  fcall_start(a, "f", 1, f);
  uv_run(&t->loop, UV_RUN_NOWAIT);
  return a;
}

/* The peer was closed by the runtime for `code`: its call failed with it,
 * and the "child" was signalled to end. */
static void rogue_closed(struct ts *t, struct ts_exit *ex, struct fcall *f,
                         int code) {
  ts_wait(t, &ex->exited, 5000);
  TH_ERR(ex->error, code);
  fcall_check(f, code);
  if (g_peer_fd >= 0)
    peer_hang_up();
}

static void rogue_finish(struct ts *t, actor *b) {
  bystander_ok(t, b);
  ts_finish(t);
}

static void fault_garbage_closes_only_that_actor(void **state) {
  static const unsigned char junk[] = {0, 0, 0, 5, 0xc1, 0xff, 0x00, 0x13,
                                       0x37};
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *b;
  (void)state;
  rogue_setup(&t, &ex, &bx, &b, &f);
  peer_write(junk, sizeof(junk));
  rogue_closed(&t, &ex, &f, ACTOR_EBADFRAME);
  assert_non_null(strstr(ex.reason, "malformed"));
  rogue_finish(&t, b);
}

static void fault_truncated_frame_then_eof(void **state) {
  static const unsigned char part[] = {0, 0, 1, 0, 0x93, 0x02, 0x01, 0xa5};
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *a, *b;
  (void)state;
  a = rogue_setup(&t, &ex, &bx, &b, &f);
  peer_write(part, sizeof(part));
  peer_dies(&t, a);
  rogue_closed(&t, &ex, &f, ACTOR_EBADFRAME);
  assert_non_null(strstr(ex.reason, "middle of a frame"));
  rogue_finish(&t, b);
}

static void fault_4gib_length_prefix(void **state) {
  /* 0xffffffff announced, then bytes that are no [kind, id]. */
  static const unsigned char big[36] = {0xff, 0xff, 0xff, 0xff, 0xc1};
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *b;
  (void)state;
  rogue_setup(&t, &ex, &bx, &b, &f);
  peer_write(big, sizeof(big));
  rogue_closed(&t, &ex, &f, ACTOR_E2BIG);
  rogue_finish(&t, b);
}

/* A reply nested 10,000 deep is well formed but deeper than 512 levels:
 * that call fails (protocol.md §3.1), the actor lives.  The same nesting
 * where a string belongs is a malformed frame: the actor is closed. */
static void fault_msgpack_nested_10000_deep(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f, g;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  actor *a, *b;
  int i;
  (void)state;

  a = rogue_setup(&t, &ex, &bx, &b, &f);
  peer_nested(ACTOR__MSG_RETURN, 1, 10000);
  ts_wait(&t, &f.r.done, 5000);
  fcall_check(&f, ACTOR_EDEPTH);
  assert_int_equal(actor_state(a), ACTOR_STATE_RUNNING);
  fcall_start(a, "g", 1, &g);
  uv_run(&t.loop, UV_RUN_NOWAIT);
  pk_begin(&sb, &pk, 5, ACTOR__MSG_ERROR, 2);
  for (i = 0; i < 10000; i++)
    msgpack_pack_array(&pk, 1);
  msgpack_pack_nil(&pk);
  pk_str(&pk, "m");
  pk_str(&pk, "t");
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
  rogue_closed(&t, &ex, &g, ACTOR_EBADFRAME);
  rogue_finish(&t, b);
}

static void fault_unknown_protocol_version(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  actor *a, *b;
  (void)state;

  ts_start(&t);
  b = ts_spawn(&t, "actor", &bx);
  ts_wait(&t, &bx.hello, 5000);
  a = peer_spawn(&t, &ex, 2000);
  fcall_start(a, "f", 1, &f);
  pk_begin(&sb, &pk, 6, ACTOR__MSG_HELLO, 0);
  msgpack_pack_uint64(&pk, 99);
  msgpack_pack_int(&pk, 1);
  pk_str(&pk, "peer");
  pk_str(&pk, "peer");
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
  rogue_closed(&t, &ex, &f, ACTOR_EVERSION);
  TH_ERR(ex.hello, ACTOR_EVERSION);
  assert_non_null(strstr(ex.reason, "version 99"));
  rogue_finish(&t, b);
}

static void fault_hello_twice(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *b;
  (void)state;
  rogue_setup(&t, &ex, &bx, &b, &f);
  peer_hello();
  rogue_closed(&t, &ex, &f, ACTOR_EBADFRAME);
  assert_non_null(strstr(ex.reason, "HELLO twice"));
  rogue_finish(&t, b);
}

/* protocol.md §3.4: answers for ids with no pending call are ignored. */
static void fault_return_for_an_id_never_called_is_ignored(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *a, *b;
  (void)state;
  a = rogue_setup(&t, &ex, &bx, &b, &f);
  peer_int(ACTOR__MSG_RETURN, 77, 5);
  peer_int(ACTOR__MSG_ITEM, 78, 5);
  peer_int(ACTOR__MSG_RETURN, 1, 9);
  ts_wait(&t, &f.r.done, 5000);
  assert_int_equal(f.r.value, 9);
  fcall_check(&f, 0);
  assert_int_equal(actor_state(a), ACTOR_STATE_RUNNING);
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.error, 0);
  rogue_finish(&t, b);
}

static void fault_two_returns_for_one_id_second_is_ignored(void **state) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f, g;
  actor *a, *b;
  (void)state;
  a = rogue_setup(&t, &ex, &bx, &b, &f);
  peer_int(ACTOR__MSG_RETURN, 1, 1);
  peer_int(ACTOR__MSG_RETURN, 1, 2);
  ts_wait(&t, &f.r.done, 5000);
  ts_run_for(&t, 20);
  assert_int_equal(f.r.value, 1);
  fcall_check(&f, 0);
  /* The actor still serves. */
  fcall_start(a, "g", 1, &g);
  uv_run(&t.loop, UV_RUN_NOWAIT);
  peer_int(ACTOR__MSG_RETURN, 2, 3);
  ts_wait(&t, &g.r.done, 5000);
  assert_int_equal(g.r.value, 3);
  fcall_check(&g, 0);
  peer_dies(&t, a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.error, 0);
  rogue_finish(&t, b);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(fault_subproc_sigkill_before_hello),
      TH_TEST(fault_subproc_sigkill_mid_call),
      TH_TEST(fault_subproc_sigkill_mid_stream),
      TH_TEST(fault_subproc_sigkill_while_handling_cancel),
      TH_TEST(fault_garbage_closes_only_that_actor),
      TH_TEST(fault_truncated_frame_then_eof),
      TH_TEST(fault_4gib_length_prefix),
      TH_TEST(fault_msgpack_nested_10000_deep),
      TH_TEST(fault_unknown_protocol_version),
      TH_TEST(fault_hello_twice),
      TH_TEST(fault_return_for_an_id_never_called_is_ignored),
      TH_TEST(fault_two_returns_for_one_id_second_is_ignored),
  };
  return cmocka_run_group_tests_name("fault", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
