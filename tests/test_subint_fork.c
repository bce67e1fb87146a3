/* subint_fork: the documented dead end (docs/cpython-subint-fork.md).
 *
 * In both builds: the backend is listed, refuses with ACTOR_EBLOCKED and a
 * reason that names the CPython gate and the working alternative, and a
 * spawn on it fails cleanly, leaving the runtime usable.  With the Python
 * layer (ACTOR_TEST_WITH_PYTHON): the probe runs the experiment in a
 * sacrificial process ($LIBACTOR_SUBINT_FORK_PROBE, set by CTest to the
 * build tree's tools/subint-fork-probe) and must find CPython still refusing
 * fork() from a sub-interpreter.  If it ever stops refusing, these tests fail
 * on purpose: the backend can then be implemented. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Private, process-wide cached probe (src/spawn/backend.h). */
int actor__subint_fork_probe_cached(int *blocked, const char **evidence);

#define GATE_FN "_PyInterpreterState_DeleteExceptMain"
#define GATE_MSG "not main interpreter"

static void assert_contains(const char *hay, const char *needle) {
  if (hay == NULL || strstr(hay, needle) == NULL)
    fail_msg("expected \"%s\" in: %s", needle, hay ? hay : "(null)");
}

static void subint_fork_is_listed_and_unavailable_with_reason(void **state) {
  const char *const *names = actor_backend_names();
  const char *why = NULL;
  int i, found = 0;
  (void)state;

  for (i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], "subint_fork") == 0)
      found++;
  assert_int_equal(found, 1);

  TH_ERR(actor_backend_available("subint_fork", &why), ACTOR_EBLOCKED);
  assert_non_null(why);
  assert_contains(why, GATE_FN);
  assert_contains(why, GATE_MSG);
  assert_contains(why, "PyOS_AfterFork_Child");
  assert_contains(why, "forkserver");
  /* Stored once: the same static string every time, from any caller. */
  {
    const char *again = NULL;
    TH_ERR(actor_backend_available("subint_fork", &again), ACTOR_EBLOCKED);
    assert_ptr_equal(again, why);
    TH_ERR(actor_backend_available("subint_fork", NULL), ACTOR_EBLOCKED);
  }
}

static void subint_fork_spawn_fails_with_eblocked_and_leaves_nothing(
    void **state) {
  struct ts t;
  struct ts_exit ex;
  actor_opts *o;
  actor *a = (actor *)&t; /* must be reset to NULL */
  const char *msg;
  (void)state;

  ts_start(&t);
  o = ts_opts("actor");
  TH_OK(actor_opts_set_backend(o, "subint_fork"));
  TH_ERR(actor_spawn(t.rt, o, &a), ACTOR_EBLOCKED);
  assert_null(a);
  msg = actor_rt_errmsg(t.rt);
  assert_contains(msg, "subint_fork");
  assert_contains(msg, GATE_FN);
  assert_contains(msg, GATE_MSG);
  assert_contains(msg, "forkserver");
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  /* Twice: the refusal is stable and leaves nothing behind. */
  TH_ERR(actor_spawn(t.rt, o, &a), ACTOR_EBLOCKED);
  assert_null(a);
  actor_opts_free(o);

  /* The runtime is still fine: a subproc actor spawns and ends normally. */
  a = ts_spawn(&t, "actor", &ex);
  assert_non_null(a);
  assert_string_equal(actor_backend(a), "subproc");
  assert_int_equal(actor_rt_actor_count(t.rt), 1);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.hello, 1);
  TH_OK(ex.error);
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  ts_finish(&t);
}

#if ACTOR_TEST_WITH_PYTHON

static void subint_fork_probe_reports_blocked_with_evidence(void **state) {
  char evidence[4096], small[24];
  int blocked = -1;
  (void)state;

  memset(evidence, 'x', sizeof(evidence));
  TH_OK(actor_subint_fork_probe(&blocked, evidence, sizeof(evidence)));
  assert_non_null(memchr(evidence, '\0', sizeof(evidence)));
  if (blocked != 1)
    fail_msg("CPython no longer refuses fork() from a sub-interpreter: the "
             "subint_fork backend can be implemented now. Evidence:\n%s",
             evidence);
  assert_contains(evidence, GATE_MSG);
  assert_contains(evidence, GATE_FN);
  assert_contains(evidence, "Fatal Python error");
  /* The grandchild's end (exit status or signal) and the verdict. */
  assert_contains(evidence, "child-status: ");
  assert_contains(evidence, "result: blocked");
  assert_contains(evidence, "python: 3.");

  /* A short buffer is truncated and terminated; no buffer is fine too. */
  memset(small, 'x', sizeof(small));
  blocked = -1;
  TH_OK(actor_subint_fork_probe(&blocked, small, sizeof(small)));
  assert_int_equal(blocked, 1);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  blocked = -1;
  TH_OK(actor_subint_fork_probe(&blocked, NULL, 0));
  assert_int_equal(blocked, 1);
  /* The harness then checks that no child process and no fd is left. */
}

static void subint_fork_probe_is_cached_and_consistent(void **state) {
  const char *ev1 = NULL, *ev2 = NULL, *why = NULL;
  int b1 = -1, b2 = -1;
  (void)state;

  TH_OK(actor__subint_fork_probe_cached(&b1, &ev1));
  TH_OK(actor__subint_fork_probe_cached(&b2, &ev2));
  assert_int_equal(b1, 1);
  assert_int_equal(b2, b1);
  assert_non_null(ev1);
  assert_ptr_equal(ev1, ev2);
  assert_contains(ev1, GATE_MSG);
  /* The backend agrees with the cached verdict. */
  TH_ERR(actor_backend_available("subint_fork", &why), ACTOR_EBLOCKED);
  assert_contains(why, GATE_MSG);
}

static void subint_fork_probe_missing_tool_is_an_error(void **state) {
  char evidence[512];
  char *saved = NULL;
  const char *cur = getenv("LIBACTOR_SUBINT_FORK_PROBE");
  int blocked = -1, r;
  (void)state;

  if (cur != NULL)
    saved = strdup(cur);
  setenv("LIBACTOR_SUBINT_FORK_PROBE", "/nonexistent/subint-fork-probe", 1);
  r = actor_subint_fork_probe(&blocked, evidence, sizeof(evidence));
  if (saved != NULL) {
    setenv("LIBACTOR_SUBINT_FORK_PROBE", saved, 1);
    free(saved);
  } else {
    unsetenv("LIBACTOR_SUBINT_FORK_PROBE");
  }
  TH_ERR(r, -ENOENT);
  assert_contains(evidence, "/nonexistent/subint-fork-probe");
  assert_contains(evidence, "LIBACTOR_SUBINT_FORK_PROBE");
}

#else /* the core build */

static void subint_fork_probe_unavailable_in_core_build(void **state) {
  char evidence[64];
  const char *ev = NULL;
  int blocked = -1;
  (void)state;

  memset(evidence, 'x', sizeof(evidence));
  TH_ERR(actor_subint_fork_probe(&blocked, evidence, sizeof(evidence)),
         ACTOR_EUNAVAIL);
  assert_int_equal(evidence[0], '\0');
  TH_ERR(actor__subint_fork_probe_cached(&blocked, &ev), ACTOR_EUNAVAIL);
  assert_non_null(ev);
  /* Still blocked, for the documented reason. */
  TH_ERR(actor_backend_available("subint_fork", NULL), ACTOR_EBLOCKED);
}

#endif

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      /* The first available() may run the probe (Python build): bound it
       * like the probe tests. */
      TH_TEST_T(subint_fork_is_listed_and_unavailable_with_reason, 60),
      TH_TEST(subint_fork_spawn_fails_with_eblocked_and_leaves_nothing),
#if ACTOR_TEST_WITH_PYTHON
      TH_TEST_T(subint_fork_probe_reports_blocked_with_evidence, 60),
      TH_TEST_T(subint_fork_probe_is_cached_and_consistent, 60),
      TH_TEST_T(subint_fork_probe_missing_tool_is_an_error, 60),
#else
      TH_TEST(subint_fork_probe_unavailable_in_core_build),
#endif
  };
  return cmocka_run_group_tests_name("subint_fork", tests, ts_group_setup,
                                     NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
