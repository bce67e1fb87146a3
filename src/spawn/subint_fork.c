/* subint_fork: fork() a child from a CPython sub-interpreter — a dead end.
 *
 * The idea: use a fresh sub-interpreter on a worker thread as a clean
 * "launchpad" and fork the child from it.  CPython refuses: in the child,
 * PyOS_AfterFork_Child() calls _PyInterpreterState_DeleteExceptMain(), which
 * returns _PyStatus_ERR("not main interpreter") when the forking thread's
 * current thread state belongs to a sub-interpreter, and the child dies with
 *
 *   Fatal Python error: _PyInterpreterState_DeleteExceptMain: not main
 *   interpreter
 *
 * before it runs anything of ours.  The whole story, with the CPython source
 * lines, the probe and a draft of the upstream report, is in
 * docs/cpython-subint-fork.md.  The working alternative is the `forkserver`
 * backend, which forks from a thread attached to the *main* interpreter of a
 * process with no live sub-interpreter.
 *
 * So this backend is a stub that says why, in both libraries (it needs no
 * Python.h): available() refuses, and actor_spawn() fails there with the
 * reason as its message.  start/signal/close are never reached through
 * actor_spawn, but are safe if they are.
 *
 * The probe.  libactor-python can run the experiment (actor_subint_fork_probe:
 * the subint-fork-probe tool in a sacrificial process).  available() never
 * runs it — it is called on the loop thread, which must not wait for a
 * sacrificial process — but reads the process-wide result if a probe has
 * already run (actor__subint_fork_probe_peek).  Then:
 *   - no probe yet, or it saw the child die (the expected case), or it
 *     could not run: ACTOR_EBLOCKED with the static reason below;
 *   - the probe saw the child SURVIVE (a CPython that lifted the gate):
 *     ACTOR_EUNAVAIL, saying so.  Not ACTOR_EBLOCKED — its meaning, "blocked
 *     by the Python runtime", would then be false; the backend is unavailable
 *     because nobody has implemented it yet, and the message says that.
 * The not-blocked reason is formatted once (pthread_once) and never changes,
 * so available() is safe from any thread and its *why stays valid. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rt/internal.h"
#include "spawn/backend.h"

/* actor_spawn formats "subint_fork: <why>" into a 512-byte message: the
 * reason must say everything well within that. */
#define SF_BLOCKED_WHY                                                         \
  "CPython refuses fork() from a sub-interpreter: the forked child dies in "   \
  "PyOS_AfterFork_Child -> _PyInterpreterState_DeleteExceptMain "              \
  "(Python/pystate.c) with \"Fatal Python error: "                             \
  "_PyInterpreterState_DeleteExceptMain: not main interpreter\". This "        \
  "backend is a documented stub (docs/cpython-subint-fork.md). Use the "      \
  "forkserver backend (forks from a main-interpreter worker thread of a "     \
  "clean fork server) or subproc"

#define SF_NOT_BLOCKED_WHY                                                     \
  "the probe found fork() from a sub-interpreter works on this CPython "       \
  "(%s): the _PyInterpreterState_DeleteExceptMain \"not main interpreter\" "   \
  "gate is gone. This backend is still a stub and cannot spawn; use "         \
  "forkserver or subproc, and see docs/cpython-subint-fork.md to "            \
  "implement this one"

struct subint_fork {
  actor *a;
};

static pthread_once_t sf_once = PTHREAD_ONCE_INIT;
static char sf_why_buf[400];
static const char *sf_peek_evidence;

/* "python: 3.15.0" in the probe's evidence -> "Python 3.15.0". */
static void sf_python_version(const char *evidence, char *out, size_t n) {
  const char *p = evidence ? strstr(evidence, "python: ") : NULL;
  size_t k = 0;
  if (p == NULL) {
    snprintf(out, n, "version unknown");
    return;
  }
  p += strlen("python: ");
  while (p[k] != '\0' && p[k] != '\n' && p[k] != ' ' && k < 32)
    k++;
  snprintf(out, n, "Python %.*s", (int)k, p);
}

static void sf_format_not_blocked(void) {
  char ver[48];
  sf_python_version(sf_peek_evidence, ver, sizeof(ver));
  snprintf(sf_why_buf, sizeof(sf_why_buf), SF_NOT_BLOCKED_WHY, ver);
}

static int sf_available(const char **why) {
  int blocked = 1;
  const char *evidence = NULL;

  if (actor__subint_fork_probe_peek(&blocked, &evidence) == 0 && !blocked) {
    sf_peek_evidence = evidence; /* the cached result never changes */
    pthread_once(&sf_once, sf_format_not_blocked);
    *why = sf_why_buf;
    return ACTOR_EUNAVAIL;
  }
  /* No probe yet, the probe confirmed the block, or it could not run here
   * (core build, tool missing): the documented CPython behaviour stands. */
  *why = SF_BLOCKED_WHY;
  return ACTOR_EBLOCKED;
}

/* Not reached through actor_spawn (available() refuses first).  Keeps the
 * contract anyway: message set, nothing opened; close follows. */
static int sf_start(void *st, actor *a, const actor_opts *o) {
  struct subint_fork *sf = st;
  const char *why;
  int r;
  (void)o;
  sf->a = a;
  r = sf_available(&why);
  if (r == 0) /* cannot happen: the backend never becomes available */
    r = ACTOR_EUNAVAIL;
  actor__seterr(a->rt, "subint_fork: %s", why);
  return r;
}

static int sf_signal(void *st, int how) {
  (void)st;
  (void)how;
  return -ESRCH; /* there is never a child to signal */
}

/* Called after a failed start; nothing was opened, so closing is done at
 * once.  Idempotent. */
static void sf_close(void *st) {
  struct subint_fork *sf = st;
  actor *a = sf->a;
  if (a == NULL)
    return;
  sf->a = NULL;
  actor__backend_closed(a);
}

const struct actor__backend actor__backend_subint_fork = {
    1,        "subint_fork", sizeof(struct subint_fork), sf_available,
    sf_start, sf_signal,     sf_close,
};
