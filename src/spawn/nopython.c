/* The core build's stand-ins for what needs CPython.
 *
 * libactor (the core) links no Python and includes no Python.h.  Its
 * backend table still lists the Python backends, so that a host asking for
 * them learns why it cannot have them here instead of "no such backend";
 * libactor-python, which is the core plus the Python layer in one library,
 * links the real definitions in place of this file (docs/python.md). */
#include "spawn/backend.h"

#define NO_PYTHON                                                              \
  "this is the core libactor, built without Python: link libactor-python "     \
  "(which needs CPython 3.14 or newer)"

static int nopy_available(const char **why) {
  *why = NO_PYTHON;
  return ACTOR_EUNAVAIL;
}

static int nopy_start(void *st, actor *a, const actor_opts *o) {
  (void)st;
  (void)a;
  (void)o;
  return ACTOR_EUNAVAIL; /* not reached: spawn checks available() first */
}

static int nopy_signal(void *st, int how) {
  (void)st;
  (void)how;
  return ACTOR_EUNAVAIL;
}

static void nopy_close(void *st) { (void)st; }

const struct actor__backend actor__backend_subint = {
    1, "subint", 1, nopy_available, nopy_start, nopy_signal, nopy_close,
};

int actor_subint_abandoned_count(void) { return 0; }
int actor_subint_thread_count(void) { return 0; }
int actor_subint_pool_set(int mode, int size) {
  (void)mode;
  (void)size;
  return ACTOR_EUNAVAIL;
}
int actor_subint_pool_count(int mode) {
  (void)mode;
  return 0;
}
int actor_subint_pool_threads(void) { return 0; }
int actor_subint_pool_preload(int mode, const char *const *paths,
                              const char *const *modules) {
  (void)mode;
  (void)paths;
  (void)modules;
  return ACTOR_EUNAVAIL;
}

int actor_subint_fork_probe(int *blocked, char *evidence, size_t len) {
  (void)blocked;
  if (evidence != 0 && len > 0)
    evidence[0] = '\0';
  return ACTOR_EUNAVAIL;
}

int actor__subint_fork_probe_peek(int *blocked, const char **evidence) {
  return actor__subint_fork_probe_cached(blocked, evidence);
}

int actor__subint_fork_probe_cached(int *blocked, const char **evidence) {
  *blocked = 1;
  *evidence = NO_PYTHON;
  return ACTOR_EUNAVAIL;
}
