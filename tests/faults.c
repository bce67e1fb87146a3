/* The SIGKILL faults of tests/test_fault.c (issue 7 §4), for any backend
 * whose children are processes: a child killed at the worst moments ends
 * alone, each pending call gets exactly one DONE with a clear error and
 * nothing after it, and a bystander of the same backend still answers.
 * test_fault.c runs them on subproc, test_forkserver.c on forkserver. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faults.h"

/* SIGKILL the actor's process; its pid must be known (never kill(0)). */
static void fault_kill(actor *a) {
  assert_true(actor_pid(a) > 0);
  assert_int_equal(kill(actor_pid(a), SIGKILL), 0);
}

void fcall_cb(actor_call *c, int ev, int status, const char *d, size_t n,
              void *arg) {
  struct fcall *f = arg;
  if (f->dones > 0)
    f->after_done++;
  if (ev == ACTOR_EV_DONE)
    f->dones++;
  ts_call_cb(c, ev, status, d, n, &f->r);
}

void fcall_start(actor *a, const char *fn, int64_t v, struct fcall *f) {
  char args[16];
  size_t n;
  memset(f, 0, sizeof(*f));
  ts_call_init(&f->r);
  args[0] = (char)0x91; /* [v] */
  n = 1 + ts_pack_int(args + 1, sizeof(args) - 1, v);
  TH_OK(actor_call_start(a, fn, args, n, fcall_cb, f, NULL));
}

void fcall_check(struct fcall *f, int status) {
  assert_int_equal(f->dones, 1);
  assert_int_equal(f->after_done, 0);
  TH_ERR(f->r.status, status);
  if (status != 0)
    assert_true(f->r.emsg[0] != '\0'); /* a sentence says what happened */
  ts_call_fini(&f->r);
}

void bystander_ok(struct ts *t, actor *b) {
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

void fault_sigkill_before_hello(fault_spawn_fn spawn) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor *a, *b;

  ts_start(&t);
  b = spawn(&t, "actor", &bx);
  a = spawn(&t, "rogue_no_hello", &ex);
  fcall_start(a, "add", 1, &f); /* queued until HELLO, which never comes */
  ts_run_for(&t, 50);
  /* A forkserver child's pid is known once the server has answered the
   * spawn, which a slow server (a sanitizer's) may not have done yet. */
  {
    uint64_t t0 = th_now_ms();
    while (actor_pid(a) == 0 && th_now_ms() - t0 < 10000)
      ts_run_for(&t, 5);
  }
  fault_kill(a);
  ts_wait(&t, &ex.exited, 5000);
  TH_ERR(ex.hello, ACTOR_ENOHELLO);
  assert_int_equal(ex.signal, SIGKILL);
  fcall_check(&f, ACTOR_ENOHELLO);
  bystander_ok(&t, b);
  ts_finish(&t);
}

void fault_sigkill_mid_call(fault_spawn_fn spawn) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f, g;
  actor *a, *b;

  ts_start(&t);
  b = spawn(&t, "actor", &bx);
  a = spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  fcall_start(a, "block", 5000, &f);
  fcall_start(a, "add", 1, &g); /* behind it */
  ts_run_for(&t, 100);
  fault_kill(a);
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
    fault_kill(s->a);
  }
}

void fault_sigkill_mid_stream(fault_spawn_fn spawn) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct stream_kill s;
  char args[16];
  size_t n;
  actor *b;

  memset(&s, 0, sizeof(s));
  ts_start(&t);
  b = spawn(&t, "actor", &bx);
  s.a = spawn(&t, "actor", &ex);
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

void fault_sigkill_while_handling_cancel(fault_spawn_fn spawn) {
  struct ts t;
  struct ts_exit ex = {0}, bx = {0};
  struct fcall f;
  actor_call *c;
  char args[16];
  size_t n;
  actor *a, *b;

  ts_start(&t);
  b = spawn(&t, "actor", &bx);
  a = spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  memset(&f, 0, sizeof(f));
  ts_call_init(&f.r);
  args[0] = (char)0x91;
  n = 1 + ts_pack_int(args + 1, sizeof(args) - 1, 5000);
  TH_OK(actor_call_start(a, "nap", args, n, fcall_cb, &f, &c));
  ts_run_for(&t, 50);
  TH_OK(actor_call_cancel(c));
  uv_run(&t.loop, UV_RUN_NOWAIT); /* the CANCEL goes out */
  fault_kill(a);
  ts_wait(&t, &ex.exited, 5000);
  /* Whichever came first: the actor's answer to CANCEL, or its death. */
  assert_int_equal(f.dones, 1);
  if (f.r.status != ACTOR_ECANCELED)
    TH_ERR(f.r.status, ACTOR_ECLOSED);
  fcall_check(&f, f.r.status);
  bystander_ok(&t, b);
  ts_finish(&t);
}
