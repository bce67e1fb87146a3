/* CPython in this process: the version gate and on-demand initialisation.
 *
 * Two ways in (docs/python.md).  In a Python host (the cffi shim) CPython
 * is already running and we only check its version.  In a C host nobody
 * started it: the first subint spawn initialises it with
 * install_signal_handlers = 0 — the host and libuv own the signals — and
 * then releases the GIL, so that sub-interpreter threads can run while the
 * loop thread never holds it.  We never finalise it: abandoned actor
 * threads may still be inside it, and the process's exit ends it anyway. */
#include <pthread.h>

#include "py/py.h"

#define PY_MIN_VERSION 0x030E0000 /* 3.14 */

int actor__py_version_check(unsigned long version, const char **why);
int actor__py_version_check(unsigned long version, const char **why) {
  if (version < PY_MIN_VERSION) {
    *why = "the CPython in this process is older than 3.14 (sub-interpreters "
           "with their own GIL and the APIs this backend needs are 3.14+)";
    return ACTOR_EUNAVAIL;
  }
  return 0;
}

int actor__py_version_ok(const char **why) {
  /* Py_Version is the version of the CPython we run with (which may differ
   * from the headers we were built with, for a Python host). */
  return actor__py_version_check(Py_Version, why);
}

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static int init_done;
static int init_failed;

int actor__py_ensure(const char **why) {
  PyConfig cfg;
  PyStatus st;
  int r;

  r = actor__py_version_ok(why);
  if (r)
    return r;
  pthread_mutex_lock(&init_mu);
  if (init_done || Py_IsInitialized()) {
    init_done = 1;
    pthread_mutex_unlock(&init_mu);
    return 0;
  }
  if (init_failed) {
    pthread_mutex_unlock(&init_mu);
    *why = "CPython failed to initialise in this process";
    return ACTOR_EPYTHON;
  }
  PyConfig_InitPythonConfig(&cfg);
  cfg.install_signal_handlers = 0;
  cfg.parse_argv = 0;
  cfg.user_site_directory = 0;
  st = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(st)) {
    init_failed = 1;
    pthread_mutex_unlock(&init_mu);
    *why = "CPython failed to initialise in this process";
    return ACTOR_EPYTHON;
  }
  /* Release the GIL (and detach this thread): from now on threads attach
   * their own thread states.  The main thread state stays alive, unused. */
  (void)PyEval_SaveThread();
  init_done = 1;
  pthread_mutex_unlock(&init_mu);
  return 0;
}
