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

#include "faults.h"
#include "peer.h"
#include "proto/codec.h"

/* ======================================================================== */
/* A child SIGKILLed at the worst moments (tests/faults.c, shared with the  */
/* forkserver backend's tests)                                              */
/* ======================================================================== */

static void fault_subproc_sigkill_before_hello(void **state) {
  (void)state;
  fault_sigkill_before_hello(ts_spawn);
}

static void fault_subproc_sigkill_mid_call(void **state) {
  (void)state;
  fault_sigkill_mid_call(ts_spawn);
}

static void fault_subproc_sigkill_mid_stream(void **state) {
  (void)state;
  fault_sigkill_mid_stream(ts_spawn);
}

static void fault_subproc_sigkill_while_handling_cancel(void **state) {
  (void)state;
  fault_sigkill_while_handling_cancel(ts_spawn);
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
