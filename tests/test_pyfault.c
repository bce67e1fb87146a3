/* Fault injection for Python actors (issue 7 §4), on every backend that
 * runs them: isolated and legacy subint, and subproc (actor-pyhost).  The
 * actor is ended abruptly at the worst moments — before HELLO, mid-call,
 * mid-stream, while handling CANCEL — by the strongest means its backend
 * has: SIGKILL for a process, the hard kill (an interrupt, then
 * abandonment) for a sub-interpreter.  The parent never hangs, every
 * pending call ends with exactly one DONE carrying a clear error, nothing
 * comes after it, and a bystander actor on the same runtime still answers.
 * The C-actor and protocol cases are in test_fault.c. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "py/pyhelpers.h"

struct fcall {
  struct ts_call r;
  int dones, after_done, items;
  actor *a;
  int kill_at_item; /* end the actor when this many items arrived */
  const char *backend;
};

static void end_actor(actor *a, const char *backend) {
  if (strcmp(backend, "subproc") == 0)
    assert_int_equal(kill(actor_pid(a), SIGKILL), 0);
  else
    TH_OK(actor_kill(a, 1));
}

static void fcall_cb(actor_call *c, int ev, int status, const char *d,
                     size_t n, void *arg) {
  struct fcall *f = arg;
  if (f->dones > 0)
    f->after_done++;
  if (ev == ACTOR_EV_DONE)
    f->dones++;
  if (ev == ACTOR_EV_ITEM && ++f->items == f->kill_at_item)
    end_actor(f->a, f->backend);
  ts_call_cb(c, ev, status, d, n, &f->r);
}

/* fn(v), or fn() when v < 0. */
static void fcall_start(actor *a, const char *fn, int64_t v, struct fcall *f,
                        actor_call **cp) {
  char args[16];
  size_t n = 0;
  f->a = a;
  ts_call_init(&f->r);
  if (v >= 0) {
    args[0] = (char)0x91;
    n = 1 + ts_pack_int(args + 1, sizeof(args) - 1, v);
  }
  TH_OK(actor_call_start(a, fn, n ? args : NULL, n, fcall_cb, f, cp));
}

static void fcall_check(struct fcall *f, int s1, int s2) {
  assert_int_equal(f->dones, 1);
  assert_int_equal(f->after_done, 0);
  if (f->r.status != s1)
    TH_ERR(f->r.status, s2);
  assert_true(f->r.emsg[0] != '\0');
  ts_call_fini(&f->r);
}

static void bystander_ok(struct ts *t, actor *b) {
  struct ts_call r;
  int64_t v[2] = {2, 40};
  TH_OK(ts_call_ints(b, "add", v, 2, &r, NULL));
  ts_wait(t, &r.done, 10000);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);
  ts_call_fini(&r);
}

enum { BEFORE_HELLO, MID_CALL, MID_STREAM, IN_CANCEL };

static void fault_case(const char *backend, int mode, int when) {
  struct ts t;
  struct ts_exit ex, bx;
  struct fcall f;
  actor_call *c;
  actor *a, *b;

  memset(&f, 0, sizeof(f));
  f.backend = backend;
  ts_start(&t);
  b = pyh_spawn(&t, "pyactors:main", backend, mode, &bx);
  ts_wait(&t, &bx.hello, 10000);
  a = pyh_spawn(&t, "pyactors:main", backend, mode, &ex);
  switch (when) {
  case BEFORE_HELLO:
    fcall_start(a, "add", 1, &f, NULL); /* queued until HELLO */
    end_actor(a, backend);
    break;
  case MID_CALL:
    ts_wait(&t, &ex.hello, 10000);
    fcall_start(a, "spin", -1, &f, NULL);
    ts_run_for(&t, 100);
    end_actor(a, backend);
    break;
  case MID_STREAM:
    ts_wait(&t, &ex.hello, 10000);
    f.kill_at_item = 50;
    fcall_start(a, "count", 1000000000, &f, NULL);
    break;
  case IN_CANCEL:
    ts_wait(&t, &ex.hello, 10000);
    fcall_start(a, "spin_stubborn", -1, &f, &c); /* swallows Cancelled */
    ts_run_for(&t, 100);
    TH_OK(actor_call_cancel(c));
    ts_run_for(&t, 20);
    end_actor(a, backend);
    break;
  }
  ts_wait(&t, &ex.exited, 15000);
  assert_true(ex.error == ACTOR_EKILLED || ex.signal == SIGKILL ||
              ex.error == ACTOR_ENOHELLO || ex.error == ACTOR_EABANDONED);
  if (when == BEFORE_HELLO)
    assert_true(ex.hello < 0);
  if (when == MID_STREAM)
    assert_true(f.items >= 50);
  /* Killed on request; or, for a subint interrupted mid-call, the call may
   * end with the interrupt's own answer first. */
  fcall_check(&f, ACTOR_ECLOSED, when == IN_CANCEL      ? ACTOR_ECANCELED
                                  : when == BEFORE_HELLO ? ACTOR_ENOHELLO
                                                         : ACTOR_ECLOSED);
  bystander_ok(&t, b);
  ts_finish(&t);
  assert_int_equal(actor_subint_thread_count(), 0);
}

#define CASES(name, backend, mode)                                             \
  static void fault_##name##_killed_before_hello(void **s) {                   \
    (void)s;                                                                   \
    fault_case(backend, mode, BEFORE_HELLO);                                   \
  }                                                                            \
  static void fault_##name##_killed_mid_call(void **s) {                       \
    (void)s;                                                                   \
    fault_case(backend, mode, MID_CALL);                                       \
  }                                                                            \
  static void fault_##name##_killed_mid_stream(void **s) {                     \
    (void)s;                                                                   \
    fault_case(backend, mode, MID_STREAM);                                     \
  }                                                                            \
  static void fault_##name##_killed_while_handling_cancel(void **s) {          \
    (void)s;                                                                   \
    fault_case(backend, mode, IN_CANCEL);                                      \
  }

CASES(subint, "subint", ACTOR_SUBINT_ISOLATED)
CASES(legacy_subint, "subint", ACTOR_SUBINT_LEGACY)
CASES(pyhost, "subproc", ACTOR_SUBINT_ISOLATED)

#define T(name)                                                                \
  TH_TEST_T(fault_##name##_killed_before_hello, 60),                           \
      TH_TEST_T(fault_##name##_killed_mid_call, 60),                           \
      TH_TEST_T(fault_##name##_killed_mid_stream, 60),                         \
      TH_TEST_T(fault_##name##_killed_while_handling_cancel, 60)

static int run_all(void) {
  const struct CMUnitTest tests[] = {T(subint), T(legacy_subint), T(pyhost)};
  return cmocka_run_group_tests_name("pyfault", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
