/* Helpers shared by the tests of Python actors (test_subint.c,
 * test_pyactor.c): spawn options for tests/py/pyactors.py, and a count of
 * the interpreters alive in this process.  Include after Python.h and
 * support.h. */
#ifndef LIBACTOR_TESTS_PYHELPERS_H
#define LIBACTOR_TESTS_PYHELPERS_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Options for `entry` on `backend` (mode: ACTOR_SUBINT_*), with the test
 * directory on the path.  short_deadlines: hello 10 s, the stop stages
 * 1 s each; otherwise the library's defaults. */
static inline actor_opts *pyh_opts(const char *entry, const char *backend,
                                   int mode, int short_deadlines) {
  actor_opts *o;
  const char *dir = getenv("LIBACTOR_TEST_PYDIR");
  const char *ext = getenv("LIBACTOR_TEST_PYEXT");
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_backend(o, backend));
  TH_OK(actor_opts_set_entry(o, entry));
  assert_non_null(dir);
  TH_OK(actor_opts_add_path(o, dir));
  if (ext != NULL)
    TH_OK(actor_opts_add_path(o, ext));
  TH_OK(actor_opts_set_subint_mode(o, mode));
  if (short_deadlines)
    TH_OK(actor_opts_set_deadlines(o, 10000, 1000, 1000, 1000));
  return o;
}

/* Spawn with the exit/hello recorders; fails the test on error. */
static inline actor *pyh_spawn_opts(struct ts *t, actor_opts *o,
                                    struct ts_exit *ex) {
  actor *a;
  memset(ex, 0, sizeof(*ex));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, ex));
  TH_OK(actor_opts_on_hello(o, ts_on_hello, ex));
  if (actor_spawn(t->rt, o, &a) != 0)
    fail_msg("spawn: %s", actor_rt_errmsg(t->rt));
  actor_opts_free(o);
  return a;
}

static inline actor *pyh_spawn(struct ts *t, const char *entry,
                               const char *backend, int mode,
                               struct ts_exit *ex) {
  return pyh_spawn_opts(t, pyh_opts(entry, backend, mode, 1), ex);
}

/* Interpreters alive in this process (main included); 0 before CPython
 * starts.  Takes the GIL on the calling thread for a moment. */
static inline int pyh_interp_count(void) {
  PyGILState_STATE g;
  PyInterpreterState *i;
  int n = 0;
  if (!Py_IsInitialized())
    return 0;
  g = PyGILState_Ensure();
  for (i = PyInterpreterState_Head(); i != NULL; i = PyInterpreterState_Next(i))
    n++;
  PyGILState_Release(g);
  return n;
}

struct gil_holder {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int held, release;
};

static inline void *gil_holder_main(void *arg) {
  struct gil_holder *g = arg;
  PyGILState_STATE s = PyGILState_Ensure();
  pthread_mutex_lock(&g->mu);
  g->held = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->release)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  PyGILState_Release(s);
  return NULL;
}

/* Another thread takes the main interpreter's GIL, so that a new actor
 * thread cannot create its interpreter until gil_release(). */
static inline void gil_hold(struct gil_holder *g) {
  memset(g, 0, sizeof(*g));
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  assert_int_equal(pthread_create(&g->th, NULL, gil_holder_main, g), 0);
  pthread_mutex_lock(&g->mu);
  while (!g->held)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static inline void gil_release(struct gil_holder *g) {
  pthread_mutex_lock(&g->mu);
  g->release = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->th, NULL);
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

#endif
