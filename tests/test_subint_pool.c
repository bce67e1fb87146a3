/* The subint backend's warm pool (actor_subint_pool_set): interpreters made
 * ahead of time, parked on threads of their own, one per actor, refilled in
 * the background, drained on request and before the process exits.  Actor
 * code: tests/py/pyactors.py, and two modules written per test into
 * directories of their own (different entries on different paths). */
#define _GNU_SOURCE
#include <Python.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"
#include "py/pyhelpers.h"

/* Internal: spawns served from the pool so far. */
unsigned long actor__subint_pool_taken(void);
/* Internal: has making an interpreter of `mode` failed (refill stopped)? */
int actor__subint_pool_failed(int mode);

/* Poll `cond` every millisecond (the pool works on threads of its own, not
 * on the loop); the watchdog bounds it. */
#define WAIT_UNTIL(cond)                                                       \
  do {                                                                         \
    while (!(cond))                                                            \
      usleep(1000);                                                            \
  } while (0)

/* Both modes drained, every pool thread gone.  Tests drain before they
 * close their loop: a refill making an interpreter meanwhile opens
 * directories in CPython (uninstrumented), which may get the number of a
 * descriptor the loop has just closed, and ThreadSanitizer, which did not
 * see that open, takes the reuse for a race on the descriptor. */
static void drain_all(void) {
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 0));
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_LEGACY, 0));
  WAIT_UNTIL(actor_subint_pool_threads() == 0);
  assert_int_equal(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED), 0);
  assert_int_equal(actor_subint_pool_count(ACTOR_SUBINT_LEGACY), 0);
}

/* Two actor modules, in two directories of their own.  ident() says which
 * interpreter runs it, what libactor_child says of the actor, and whether
 * an earlier actor left a mark in this interpreter's sys. */
static const char modsrc[] =
    "import sys\n"
    "import _interpreters\n"
    "import libactor_child as actor\n"
    "WHO = %s\n"
    "def ident():\n"
    "    cur = _interpreters.get_current()\n"
    "    iid = cur[0] if isinstance(cur, tuple) else int(cur)\n"
    "    seen = hasattr(sys, '_pool_test_mark')\n"
    "    sys._pool_test_mark = 1\n"
    "    return '%%s %%d %%s %%d %%d' %% (WHO, iid, actor.name, actor.max_frame, seen)\n"
    "def can_import(name):\n"
    "    try:\n"
    "        __import__(name)\n"
    "        return 'yes'\n"
    "    except ImportError:\n"
    "        return 'no'\n"
    "def main():\n"
    "    actor.serve({'ident': ident, 'can_import': can_import})\n";

struct mods {
  char dir[2][64];
};

static void mods_make(struct mods *m) {
  char path[128];
  FILE *f;
  int i;
  for (i = 0; i < 2; i++) {
    snprintf(m->dir[i], sizeof(m->dir[i]), "/tmp/libactor-pool-XXXXXX");
    assert_non_null(mkdtemp(m->dir[i]));
    snprintf(path, sizeof(path), "%s/pool%c.py", m->dir[i], 'a' + i);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, modsrc, i == 0 ? "'a'" : "'b'");
    fclose(f);
  }
}

static void mods_remove(struct mods *m) {
  char cmd[200];
  int i;
  for (i = 0; i < 2; i++) {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir[i]);
    assert_int_equal(system(cmd), 0);
  }
}

/* Actor `which` (0: poola, 1: poolb), on its own directory only. */
static actor *mods_spawn(struct ts *t, struct mods *m, int which, int mode,
                         const char *name, struct ts_exit *ex) {
  actor_opts *o;
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_backend(o, "subint"));
  TH_OK(actor_opts_set_entry(o, which == 0 ? "poola:main" : "poolb:main"));
  TH_OK(actor_opts_add_path(o, m->dir[which]));
  TH_OK(actor_opts_set_subint_mode(o, mode));
  TH_OK(actor_opts_set_deadlines(o, 10000, 1000, 1000, 1000));
  if (name != NULL)
    TH_OK(actor_opts_set_name(o, name));
  return pyh_spawn_opts(t, o, ex);
}

struct ident {
  char who[8], name[64];
  int iid, seen;
  long max_frame;
};

static void call_ident(struct ts *t, actor *a, struct ident *id) {
  struct ts_call r;
  TH_OK(ts_call_ints(a, "ident", NULL, 0, &r, NULL));
  ts_wait(t, &r.done, 10000);
  TH_OK(r.status);
  assert_int_equal(sscanf(r.str, "%7s %d %63s %ld %d", id->who, &id->iid,
                          id->name, &id->max_frame, &id->seen),
                   5);
}

static void stop_and_wait(struct ts *t, actor *a, struct ts_exit *ex) {
  TH_OK(actor_stop(a));
  ts_wait(t, &ex->exited, 10000);
  assert_int_equal(ex->status, 0);
  TH_OK(ex->error);
}

/* ---- the public calls ------------------------------------------------------ */

static void subint_pool_set_refuses_bad_mode_and_size(void **state) {
  TH_ERR(actor_subint_pool_set(2, 1), -EINVAL);
  TH_ERR(actor_subint_pool_set(-1, 1), -EINVAL);
  TH_ERR(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, -1), -EINVAL);
  TH_ERR(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 65), -EINVAL);
  TH_ERR(actor_subint_pool_count(7), -EINVAL);
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_LEGACY, 0)); /* nothing to drain */
  assert_int_equal(actor_subint_pool_threads(), 0);
}

/* ---- spawn from a warm pool, refill ---------------------------------------- */

static void warm_case(int mode) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {2, 40};
  unsigned long taken;
  int threads = actor_subint_thread_count();
  actor *a;

  TH_OK(actor_subint_pool_set(mode, 2));
  WAIT_UNTIL(actor_subint_pool_count(mode) == 2);
  taken = actor__subint_pool_taken();
  ts_start(&t);
  a = pyh_spawn(&t, "pyactors:main", "subint", mode, &ex);
  /* Taken by the spawn itself, before the loop ran. */
  assert_int_equal(actor__subint_pool_taken(), taken + 1);
  assert_int_equal(actor_subint_thread_count(), threads + 1);
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  ts_wait(&t, &r.done, 10000);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);
  assert_int_equal(ex.hello, 1);
  /* The other mode's pool is not touched. */
  assert_int_equal(actor_subint_pool_count(!mode), 0);
  /* The refill, on the pool's thread, brings it back to 2. */
  WAIT_UNTIL(actor_subint_pool_count(mode) == 2);
  stop_and_wait(&t, a, &ex);
  assert_non_null(strstr(ex.reason, "entry returned"));
  drain_all(); /* first: see drain_all */
  ts_finish(&t);
  assert_int_equal(actor_subint_thread_count(), threads);
}

static void subint_pool_isolated_spawn_takes_a_parked_interpreter_and_refills(
    void **state) {
  warm_case(ACTOR_SUBINT_ISOLATED);
}

static void subint_pool_legacy_spawn_takes_a_parked_interpreter_and_refills(
    void **state) {
  warm_case(ACTOR_SUBINT_LEGACY);
}

/* ---- one actor per interpreter --------------------------------------------- */

static void never_reused_case(int mode) {
  struct ts t;
  struct ts_exit ex;
  struct mods m;
  struct ident id[3];
  unsigned long taken;
  actor *a;
  int i;

  mods_make(&m);
  TH_OK(actor_subint_pool_set(mode, 1));
  ts_start(&t);
  taken = actor__subint_pool_taken();
  for (i = 0; i < 3; i++) {
    WAIT_UNTIL(actor_subint_pool_count(mode) == 1);
    a = mods_spawn(&t, &m, 0, mode, NULL, &ex);
    call_ident(&t, a, &id[i]);
    /* No mark from an earlier actor: a fresh interpreter each time. */
    assert_int_equal(id[i].seen, 0);
    if (i > 0)
      assert_int_not_equal(id[i].iid, id[i - 1].iid);
    stop_and_wait(&t, a, &ex);
  }
  assert_int_equal(actor__subint_pool_taken(), taken + 3);
  drain_all();
  ts_finish(&t);
  mods_remove(&m);
}

static void subint_pool_isolated_interpreter_is_never_reused(void **state) {
  never_reused_case(ACTOR_SUBINT_ISOLATED);
}

static void subint_pool_legacy_interpreter_is_never_reused(void **state) {
  never_reused_case(ACTOR_SUBINT_LEGACY);
}

/* ---- drain --------------------------------------------------------------------- */

static void subint_pool_drain_ends_every_parked_interpreter_and_thread(
    void **state) {
  int interps0;

  /* CPython is up once the pool is: count from then on. */
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 3));
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_LEGACY, 2));
  interps0 = pyh_interp_count() - actor_subint_pool_count(0) -
             actor_subint_pool_count(1);
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 3 &&
             actor_subint_pool_count(ACTOR_SUBINT_LEGACY) == 2);
  /* A refiller that waits, and five parked threads; five interpreters. */
  WAIT_UNTIL(actor_subint_pool_threads() == 6);
  assert_int_equal(pyh_interp_count(), interps0 + 5);
  /* Shrinking retires the excess only. */
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 1));
  assert_int_equal(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED), 1);
  WAIT_UNTIL(pyh_interp_count() == interps0 + 3);
  drain_all(); /* and the harness checks that no thread is left */
  assert_int_equal(pyh_interp_count(), interps0);
  assert_int_equal(actor_subint_thread_count(), 0);
}

/* ---- under use ------------------------------------------------------------------- */

/* Actors of both modules, from the pool and cold, with others running:
 * each sees its own entry, path, name and frame limit (set when it starts,
 * not when its interpreter was made). */
static void subint_pool_spawns_while_actors_run_with_other_paths_and_entries(
    void **state) {
  struct ts t;
  struct ts_exit ex[6];
  struct ts_call r;
  struct ident id[6];
  struct mods m;
  char name[32];
  unsigned long taken;
  actor *a[6];
  int i, j;

  mods_make(&m);
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 2));
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 2);
  ts_start(&t);
  TH_OK(actor_rt_set_max_frame(t.rt, 1 << 20));
  taken = actor__subint_pool_taken();
  /* Six at once: two from the pool, the rest cold (or refilled), while the
   * earlier ones run. */
  for (i = 0; i < 6; i++) {
    snprintf(name, sizeof(name), "pool-%d", i);
    a[i] = mods_spawn(&t, &m, i % 2, ACTOR_SUBINT_ISOLATED, name, &ex[i]);
    if (i == 1)
      call_ident(&t, a[0], &id[0]); /* a[0] runs while more spawn */
  }
  assert_true(actor__subint_pool_taken() >= taken + 2);
  for (i = 0; i < 6; i++) {
    call_ident(&t, a[i], &id[i]);
    snprintf(name, sizeof(name), "pool-%d", i);
    assert_string_equal(id[i].who, i % 2 ? "b" : "a");
    assert_string_equal(id[i].name, name);
    assert_int_equal(id[i].max_frame, 1 << 20);
    assert_int_equal(id[i].seen, i == 0); /* a[0] was asked twice */
    for (j = 0; j < i; j++)
      assert_int_not_equal(id[i].iid, id[j].iid);
    /* Only its own directory is on its path. */
    TH_OK(ts_call_str(a[i], "can_import", i % 2 ? "poola" : "poolb", &r));
    ts_wait(&t, &r.done, 10000);
    TH_OK(r.status);
    assert_string_equal(r.str, "no");
  }
  for (i = 0; i < 6; i++)
    stop_and_wait(&t, a[i], &ex[i]);
  drain_all();
  ts_finish(&t);
  mods_remove(&m);
}

/* ---- kill before start ----------------------------------------------------------- */

/* Legacy, so that holding the main interpreter's GIL keeps the taken
 * interpreter from starting the actor until the kill is in. */
static void subint_pool_kill_before_start_is_not_abandoned(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  struct gil_holder g;
  int abandoned = actor_subint_abandoned_count();
  int threads = actor_subint_thread_count();
  unsigned long taken;
  actor *a;

  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_LEGACY, 1));
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_LEGACY) == 1);
  taken = actor__subint_pool_taken();
  ts_start(&t);
  gil_hold(&g); /* (the refill waits for it too) */
  a = pyh_spawn(&t, "pyactors:main", "subint", ACTOR_SUBINT_LEGACY, &ex);
  assert_int_equal(actor__subint_pool_taken(), taken + 1);
  TH_OK(ts_call_ints(a, "info", NULL, 0, &r, NULL)); /* queued before HELLO */
  TH_OK(actor_kill(a, 1));
  ts_run_for(&t, 20);
  gil_release(&g);
  ts_wait(&t, &ex.exited, 10000);
  ts_wait(&t, &r.done, 10000);
  TH_ERR(ex.hello, ACTOR_EKILLED);
  TH_ERR(ex.error, ACTOR_EKILLED);
  TH_ERR(r.status, ACTOR_ECLOSED);
  assert_non_null(strstr(ex.reason, "killed before it started"));
  ts_run_for(&t, 100); /* beyond every deadline: still not abandoned */
  drain_all();
  ts_finish(&t);
  assert_int_equal(actor_subint_abandoned_count(), abandoned);
  WAIT_UNTIL(actor_subint_thread_count() == threads);
}

/* ---- fork ------------------------------------------------------------------------- */

/* The child of a fork has none of the pool's threads (nor, once CPython
 * has run its fork handling, the interpreters): its pool must start empty,
 * or its exit would wait for threads that are not there. */
static void subint_pool_forked_child_starts_with_an_empty_pool(void **state) {
  pid_t pid;
  int st;

  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 2));
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 2);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(actor_subint_pool_threads() == 0 &&
                  actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 0 &&
                  actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 0) == 0
              ? 0
              : 1);
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  /* The parent's pool is untouched. */
  assert_int_equal(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED), 2);
  drain_all();
}

/* ---- the process ends with parked interpreters ------------------------------------ */

/* A C host: parked interpreters of both modes, one actor served, then the
 * process exits without draining.  argv[1]: "finalize" to play a Python
 * host instead (it starts CPython and finalises it before exiting). */
static int helper_pool_exit(int argc, char **argv) {
  struct ts_exit ex;
  actor_opts *o;
  actor_rt *rt;
  uv_loop_t loop;
  actor *a;
  int finalize = argc > 1 && strcmp(argv[1], "finalize") == 0;

  if (finalize) {
    Py_InitializeEx(0);
    (void)PyEval_SaveThread();
  }
  if (actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 2) ||
      actor_subint_pool_set(ACTOR_SUBINT_LEGACY, 2))
    return 2;
  while (actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) < 2 ||
         actor_subint_pool_count(ACTOR_SUBINT_LEGACY) < 2)
    usleep(1000);
  uv_loop_init(&loop);
  if (actor_rt_new(&rt, &loop))
    return 3;
  memset(&ex, 0, sizeof(ex));
  actor_opts_new(&o);
  actor_opts_set_backend(o, "subint");
  actor_opts_set_entry(o, "pyactors:main");
  actor_opts_add_path(o, getenv("LIBACTOR_TEST_PYDIR"));
  actor_opts_on_hello(o, ts_on_hello, &ex);
  actor_opts_on_exit(o, ts_on_exit, &ex);
  if (actor_spawn(rt, o, &a))
    return 4;
  actor_opts_free(o);
  while (ex.hello == 0)
    uv_run(&loop, UV_RUN_ONCE);
  actor_stop(a);
  while (!ex.exited)
    uv_run(&loop, UV_RUN_ONCE);
  if (ex.status != 0)
    return 5;
  actor_rt_free(rt);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop))
    return 6;
  /* The pool is still full (or refilling) here. */
  if (actor_subint_pool_threads() == 0)
    return 7;
  if (finalize) {
    PyGILState_Ensure();
    if (Py_FinalizeEx() != 0)
      return 8;
    if (actor_subint_pool_threads() != 0)
      return 9;
  }
  return 0;
}

static void exit_case(const char *how) {
  char out[4096];
  int st;
  size_t n;
  char cmd[1024];
  FILE *f;

  snprintf(cmd, sizeof(cmd), "'%s' --helper pool_exit %s 2>&1", th_self_exe(),
           how);
  f = popen(cmd, "r");
  assert_non_null(f);
  n = fread(out, 1, sizeof(out) - 1, f);
  out[n] = '\0';
  st = pclose(f);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("the host ended with %#x: %s", st, out);
  /* Nothing from CPython about interpreters or threads left behind, no
   * sanitizer report. */
  assert_null(strstr(out, "Fatal"));
  assert_null(strstr(out, "remaining subinterpreters"));
  assert_null(strstr(out, "Sanitizer"));
}

static void subint_pool_process_exit_with_parked_interpreters_is_clean(
    void **state) {
  exit_case("exit");
}

static void subint_pool_python_finalize_with_parked_interpreters_is_clean(
    void **state) {
  exit_case("finalize");
}

/* ---- preloaded modules ------------------------------------------------------- */

static void seen_case(struct ts *t, int mode, const char *name, char *out,
                      size_t n, int from_pool) {
  struct ts_exit ex;
  struct ts_call r;
  unsigned long taken = actor__subint_pool_taken();
  actor_opts *o = pyh_opts("poolpre:main", "subint", mode, 1);
  actor *a;
  TH_OK(actor_opts_set_name(o, name));
  a = pyh_spawn_opts(t, o, &ex);
  assert_int_equal(actor__subint_pool_taken(), taken + (from_pool ? 1 : 0));
  TH_OK(ts_call_ints(a, "seen", NULL, 0, &r, NULL));
  ts_wait(t, &r.done, 10000);
  TH_OK(r.status);
  snprintf(out, n, "%s", r.str);
  stop_and_wait(t, a, &ex);
}

/* The entry module of an actor taken from the pool was imported before
 * the actor existed (libactor_child unbound: name ""), once; the actor
 * then runs it bound to itself (its body is not run again).  A cold spawn
 * imports it at its start. */
static void preload_case(int mode) {
  const char *paths[] = {getenv("LIBACTOR_TEST_PYDIR"), NULL};
  const char *mods[] = {"poolpre", NULL};
  char seen[256];
  struct ts t;

  TH_OK(actor_subint_pool_preload(mode, paths, mods));
  TH_OK(actor_subint_pool_set(mode, 1));
  WAIT_UNTIL(actor_subint_pool_count(mode) == 1);
  ts_start(&t);
  seen_case(&t, mode, "warm-one", seen, sizeof(seen), 1);
  assert_string_equal(seen, "|warm-one");
  /* Without the pool: the actor's own start imports it. */
  TH_OK(actor_subint_pool_set(mode, 0));
  seen_case(&t, mode, "cold-one", seen, sizeof(seen), 0);
  assert_string_equal(seen, "cold-one|cold-one");
  TH_OK(actor_subint_pool_preload(mode, NULL, NULL));
  drain_all();
  ts_finish(&t);
}

static void subint_pool_isolated_preload_imports_the_entry_ahead_of_the_actor(
    void **state) {
  preload_case(ACTOR_SUBINT_ISOLATED);
}

static void subint_pool_legacy_preload_imports_the_entry_ahead_of_the_actor(
    void **state) {
  preload_case(ACTOR_SUBINT_LEGACY);
}

/* Interpreters parked before a preload are remade with it; clearing it
 * remakes them without. */
static void subint_pool_preload_remakes_what_was_parked(void **state) {
  const char *paths[] = {getenv("LIBACTOR_TEST_PYDIR"), NULL};
  const char *mods[] = {"poolpre", NULL};
  char seen[256];
  struct ts t;

  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 1));
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 1);
  TH_OK(actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, paths, mods));
  ts_start(&t);
  /* The old one is retired at once; the refill parks a preloaded one. */
  assert_int_equal(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED), 0);
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 1);
  seen_case(&t, ACTOR_SUBINT_ISOLATED, "pre", seen, sizeof(seen), 1);
  assert_string_equal(seen, "|pre");
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 1);
  TH_OK(actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, NULL, NULL));
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 1);
  seen_case(&t, ACTOR_SUBINT_ISOLATED, "plain", seen, sizeof(seen), 1);
  assert_string_equal(seen, "plain|plain");
  drain_all();
  ts_finish(&t);
}

/* A module that fails to import stops the refill of that mode (spawns
 * take the cold path and work), until the next _set or _preload. */
static void subint_pool_failed_preload_stops_the_refill_spawns_go_cold(
    void **state) {
  const char *paths[] = {getenv("LIBACTOR_TEST_PYDIR"), NULL};
  const char *bad[] = {"poolpre_bad", NULL};
  char seen[256];
  struct ts t;

  TH_OK(actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, paths, bad));
  TH_OK(actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 2));
  WAIT_UNTIL(actor__subint_pool_failed(ACTOR_SUBINT_ISOLATED));
  assert_int_equal(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED), 0);
  ts_start(&t);
  seen_case(&t, ACTOR_SUBINT_ISOLATED, "cold", seen, sizeof(seen), 0);
  assert_string_equal(seen, "cold|cold");
  /* A new preload clears the failure: the refill works again. */
  TH_OK(actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, NULL, NULL));
  assert_false(actor__subint_pool_failed(ACTOR_SUBINT_ISOLATED));
  WAIT_UNTIL(actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) == 2);
  drain_all();
  ts_finish(&t);
}

static void subint_pool_preload_refuses_bad_input(void **state) {
  const char *empty[] = {"", NULL};
  const char *many[66];
  int i;
  for (i = 0; i < 65; i++)
    many[i] = "m";
  many[65] = NULL;
  TH_ERR(actor_subint_pool_preload(7, NULL, NULL), -EINVAL);
  TH_ERR(actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, empty, NULL),
         -EINVAL);
  TH_ERR(actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, NULL, empty),
         -EINVAL);
  TH_ERR(actor_subint_pool_preload(ACTOR_SUBINT_LEGACY, NULL, many), -EINVAL);
  TH_OK(actor_subint_pool_preload(ACTOR_SUBINT_LEGACY, NULL, NULL));
  assert_int_equal(actor_subint_pool_threads(), 0);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(subint_pool_set_refuses_bad_mode_and_size),
      TH_TEST(subint_pool_isolated_spawn_takes_a_parked_interpreter_and_refills),
      TH_TEST(subint_pool_legacy_spawn_takes_a_parked_interpreter_and_refills),
      TH_TEST(subint_pool_isolated_interpreter_is_never_reused),
      TH_TEST(subint_pool_legacy_interpreter_is_never_reused),
      TH_TEST(subint_pool_drain_ends_every_parked_interpreter_and_thread),
      TH_TEST_T(subint_pool_spawns_while_actors_run_with_other_paths_and_entries,
                60),
      TH_TEST(subint_pool_kill_before_start_is_not_abandoned),
      TH_TEST(subint_pool_forked_child_starts_with_an_empty_pool),
      TH_TEST(subint_pool_process_exit_with_parked_interpreters_is_clean),
      TH_TEST(subint_pool_python_finalize_with_parked_interpreters_is_clean),
      TH_TEST(subint_pool_isolated_preload_imports_the_entry_ahead_of_the_actor),
      TH_TEST(subint_pool_legacy_preload_imports_the_entry_ahead_of_the_actor),
      TH_TEST(subint_pool_preload_remakes_what_was_parked),
      TH_TEST(subint_pool_failed_preload_stops_the_refill_spawns_go_cold),
      TH_TEST(subint_pool_preload_refuses_bad_input),
  };
  return cmocka_run_group_tests_name("subint_pool", tests, ts_group_setup,
                                     NULL);
}

int main(int argc, char **argv) {
  static struct th_helper helpers[16];
  int i;
  for (i = 0; ts_helpers[i].name != NULL; i++)
    helpers[i] = ts_helpers[i];
  helpers[i].name = "pool_exit";
  helpers[i].fn = helper_pool_exit;
  return th_main(argc, argv, helpers, run_all);
}
