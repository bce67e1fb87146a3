/* subint: a Python actor in a CPython sub-interpreter, on a thread of its
 * own in this process.
 *
 * One dedicated thread per actor creates the interpreter, runs the entry,
 * ends the interpreter on that same thread, and exits; it is never a pooled
 * thread (a thread state left attached to a reused thread is what makes
 * teardown hang).  Isolated (own GIL, own allocator, no fork/exec) by
 * default; legacy (the main interpreter's GIL) on request.
 *
 * The channel is in memory (ipc/inproc.c): the same frames and the same
 * parent-side dispatch as a socket, with the child blocking — GIL released
 * — in a condition variable after a short spin.
 *
 * Teardown, every step bounded, the loop never blocked:
 *   STOP          the running call gets libactor_child.Cancelled, even in
 *                 a busy loop (the inbox's watcher, inbox.c); serve()
 *                 returns; the entry ends; the thread ends the interpreter
 *                 and reports through a uv_async.
 *   SIGTERM-like  (after the graceful deadline) interrupt: a short-lived
 *                 thread attaches a thread state of the actor's interpreter
 *                 (waiting for that interpreter's GIL, not ours), injects
 *                 KeyboardInterrupt into the actor thread with
 *                 PyThreadState_SetAsyncExc — which only looks at the
 *                 threads of the *current* interpreter, hence the extra
 *                 thread state — through the inbox (no Cancelled replaces
 *                 it), which wakes the actor if it waits for input.
 *   SIGKILL-like  the same again.  An exception cannot interrupt a blocking
 *                 C call (time.sleep), so:
 *   abandoned     after the kill deadline the runtime stops waiting: the
 *                 thread is detached and counted (actor_subint_abandoned_
 *                 count()), the actor reports ACTOR_EABANDONED.  If the
 *                 thread ever finishes it cleans up after itself.
 *
 * The interpreter must not be ended while an interrupter is attached to it:
 * the actor thread sets `ending` and waits, with its GIL released, for the
 * interrupters to leave (they hold the mutex only briefly, never while
 * waiting for a GIL), then clears any exception injected too late, so that
 * none lands in the interpreter's own teardown code. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/inproc.h"
#include "py/py.h"
#include "rt/internal.h"
#include "spawn/backend.h"

static atomic_int live_threads;
static atomic_int abandoned_threads;

int actor_subint_thread_count(void) { return atomic_load(&live_threads); }
int actor_subint_abandoned_count(void) {
  return atomic_load(&abandoned_threads);
}

/* Shared by the loop side, the actor thread and interrupters; freed by the
 * last one to let go. */
struct subint_shared {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int refs;
  struct actor__inproc *ip;
  /* set before the thread starts, then read-only */
  char *entry;
  char **paths;
  char *name;
  size_t max_frame;
  int mode;
  /* under mu */
  int go, abort_start;
  int killed; /* a kill came before the interpreter existed */
  PyInterpreterState *interp; /* while interrupters may attach */
  struct actor__py_inbox *ib;  /* published with interp */
  unsigned long tid;
  int ending;
  int interrupters;
  int finished;
  int status;
  int interrupted;
  char how[256];
  uv_async_t *done; /* NULL once the loop side is gone */
};

struct subint {
  actor *a;
  struct subint_shared *sh;
  uv_async_t *done;
  pthread_t thread;
  int thread_started;
  int thread_settled; /* joined or detached */
  int closing;
};

static void shared_unref(struct subint_shared *sh) {
  size_t i;
  if (atomic_fetch_sub(&sh->refs, 1) != 1)
    return;
  actor__inproc_unref(sh->ip);
  pthread_mutex_destroy(&sh->mu);
  pthread_cond_destroy(&sh->cv);
  free(sh->entry);
  free(sh->name);
  if (sh->paths != NULL) {
    for (i = 0; sh->paths[i] != NULL; i++)
      free(sh->paths[i]);
    free(sh->paths);
  }
  free(sh);
}

static int subint_available(const char **why) {
  return actor__py_version_ok(why);
}

/* ---- the actor thread ------------------------------------------------------ */

static void thread_finish(struct subint_shared *sh, int status) {
  pthread_mutex_lock(&sh->mu);
  sh->finished = 1;
  sh->status = status;
  if (sh->done != NULL)
    uv_async_send(sh->done);
  pthread_mutex_unlock(&sh->mu);
  atomic_fetch_sub(&live_threads, 1);
  shared_unref(sh);
}

static void *subint_thread(void *arg) {
  struct subint_shared *sh = arg;
  PyThreadState *main_ts, *ts = NULL;
  struct actor__py_ep *ep;
  struct actor__py_inbox *ib;
  struct actor__py_run run;
  PyStatus st;
  int status = 1, killed;

  pthread_mutex_lock(&sh->mu);
  while (!sh->go)
    pthread_cond_wait(&sh->cv, &sh->mu);
  killed = sh->killed;
  pthread_mutex_unlock(&sh->mu);
  if (sh->abort_start || killed) {
    snprintf(sh->how, sizeof(sh->how),
             killed ? "killed before it started" : "never started");
    actor__inproc_child_close(sh->ip);
    thread_finish(sh, 1);
    return NULL;
  }

  /* A main-interpreter thread state of our own to create the new
   * interpreter from (PyThreadState_New binds it to this thread). */
  main_ts = PyThreadState_New(PyInterpreterState_Main());
  PyEval_RestoreThread(main_ts);
  if (sh->mode == ACTOR_SUBINT_LEGACY) {
    const PyInterpreterConfig cfg = {
        .use_main_obmalloc = 1,
        .allow_fork = 1,
        .allow_exec = 1,
        .allow_threads = 1,
        .allow_daemon_threads = 1,
        .check_multi_interp_extensions = 0,
        .gil = PyInterpreterConfig_SHARED_GIL,
    };
    st = Py_NewInterpreterFromConfig(&ts, &cfg);
  } else {
    const PyInterpreterConfig cfg = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    st = Py_NewInterpreterFromConfig(&ts, &cfg);
  }
  if (PyStatus_Exception(st)) {
    snprintf(sh->how, sizeof(sh->how), "could not create the interpreter: %s",
             st.err_msg ? st.err_msg : "?");
    PyThreadState_Clear(main_ts);
    PyThreadState_DeleteCurrent();
    actor__inproc_child_close(sh->ip);
    thread_finish(sh, 1);
    return NULL;
  }
  /* `ts` (ours) is current; main_ts is detached.  The inbox (and its
   * endpoint) outlives the run: interrupters use it while they are
   * counted, and the actor's threads until the interpreter ends. */
  ep = malloc(sizeof(*ep));
  ib = NULL;
  if (ep != NULL) {
    actor__py_ep_inproc(ep, sh->ip);
    ib = actor__py_inbox_new(ep, sh->max_frame);
  }
  memset(&run, 0, sizeof(run));
  pthread_mutex_lock(&sh->mu);
  /* A kill that came while the interpreter was being made: the actor
   * never starts (no HELLO; its calls fail), as a process killed before
   * it ran. */
  killed = sh->killed;
  if (!killed && ib != NULL) {
    sh->interp = PyThreadState_GetInterpreter(ts);
    sh->tid = PyThread_get_thread_ident();
    sh->ib = ib;
  }
  pthread_mutex_unlock(&sh->mu);

  if (killed || ib == NULL) {
    snprintf(run.how, sizeof(run.how), "%s",
             killed ? "killed before it started" : "out of memory");
  } else {
    run.ep = ep;
    run.ib = ib;
    run.entry = sh->entry;
    run.paths = sh->paths;
    run.name = sh->name;
    run.backend = "subint";
    run.max_frame = sh->max_frame;
    /* The process is the host's: os._exit() must not end it.  Legacy
     * interpreters may fork, and a forked child needs the real one. */
    run.guard_exits = sh->mode == ACTOR_SUBINT_ISOLATED;
    status = actor__py_run_actor(&run);
  }
  actor__inproc_child_close(sh->ip); /* EOF for the parent */

  /* No interrupter may be attached when the interpreter ends. */
  Py_BEGIN_ALLOW_THREADS;
  pthread_mutex_lock(&sh->mu);
  sh->ending = 1;
  while (sh->interrupters > 0)
    pthread_cond_wait(&sh->cv, &sh->mu);
  sh->interp = NULL;
  sh->ib = NULL;
  pthread_mutex_unlock(&sh->mu);
  Py_END_ALLOW_THREADS;
  /* An interrupt that came too late must not fire during teardown. */
  PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
  PyErr_Clear();
  snprintf(sh->how, sizeof(sh->how), "%s", run.how);
  sh->interrupted = run.interrupted;
  Py_EndInterpreter(ts);
  /* Only now: the actor's threads could send until the interpreter
   * ended.  One still inside keeps the inbox, and the channel with it. */
  if (actor__py_inbox_free(ib) == -EBUSY)
    actor__inproc_ref(sh->ip);

  PyEval_RestoreThread(main_ts);
  PyThreadState_Clear(main_ts);
  PyThreadState_DeleteCurrent();
  thread_finish(sh, status);
  return NULL;
}

/* ---- interrupting ---------------------------------------------------------- */

static void *interrupter_thread(void *arg) {
  struct subint_shared *sh = arg;
  PyInterpreterState *interp;
  PyThreadState *ts;
  unsigned long tid;

  pthread_mutex_lock(&sh->mu);
  interp = sh->interp;
  tid = sh->tid;
  pthread_mutex_unlock(&sh->mu);
  /* The interpreter stays alive while we are counted in `interrupters`. */
  ts = PyThreadState_New(interp);
  if (ts != NULL) {
    PyEval_RestoreThread(ts); /* that interpreter's GIL */
    pthread_mutex_lock(&sh->mu);
    /* Through the inbox: it wins over a Cancelled the inbox injected, and
     * a child waiting for input returns to Python, where it lands. */
    if (!sh->ending && sh->ib != NULL)
      actor__py_inbox_interrupt(sh->ib, tid, PyExc_KeyboardInterrupt);
    pthread_mutex_unlock(&sh->mu);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
  }
  pthread_mutex_lock(&sh->mu);
  sh->interrupters--;
  pthread_cond_broadcast(&sh->cv);
  pthread_mutex_unlock(&sh->mu);
  shared_unref(sh);
  return NULL;
}

static int subint_signal(void *st, int how) {
  struct subint *si = st;
  struct subint_shared *sh = si->sh;
  pthread_attr_t attr;
  pthread_t t;
  int r;

  (void)how; /* TERM and KILL: the same, strongest thing we have */
  if (sh == NULL)
    return -ESRCH;
  pthread_mutex_lock(&sh->mu);
  if (sh->finished || sh->ending || sh->interp == NULL) {
    /* Decided under the mutex (the thread may finish at any moment).  No
     * interpreter yet: the thread has not started the actor, and now
     * never will. */
    r = sh->finished ? -ESRCH : 0;
    if (!sh->finished && !sh->ending)
      sh->killed = 1;
    pthread_mutex_unlock(&sh->mu);
    return r;
  }
  sh->interrupters++;
  atomic_fetch_add(&sh->refs, 1);
  pthread_mutex_unlock(&sh->mu);
  /* The interrupter may wait a while for a busy interpreter's GIL, or for
   * ever for one stuck in C: it is detached, never waited on. */
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  r = pthread_create(&t, &attr, interrupter_thread, sh);
  pthread_attr_destroy(&attr);
  if (r) {
    pthread_mutex_lock(&sh->mu);
    sh->interrupters--;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    shared_unref(sh);
    return -r;
  }
  return 0;
}

/* ---- the loop side ----------------------------------------------------------- */

static void done_cb(uv_async_t *h) {
  struct subint *si = h->data;
  struct subint_shared *sh = si->sh;
  int status, interrupted;
  char how[256];

  pthread_mutex_lock(&sh->mu);
  if (!sh->finished) {
    pthread_mutex_unlock(&sh->mu);
    return;
  }
  status = sh->status;
  interrupted = sh->interrupted;
  snprintf(how, sizeof(how), "%s", sh->how);
  pthread_mutex_unlock(&sh->mu);
  if (si->closing)
    return;
  actor__backend_set_how(si->a, interrupted
                                    ? "interrupted (KeyboardInterrupt injected)"
                                    : how);
  actor__backend_exited(si->a, status, 0, 0);
}

static void done_closed(uv_handle_t *h) {
  struct subint *si = h->data;
  free(h);
  si->done = NULL;
  if (si->sh != NULL) {
    shared_unref(si->sh);
    si->sh = NULL;
  }
  actor__backend_closed(si->a);
}

static void subint_close(void *st) {
  struct subint *si = st;
  struct subint_shared *sh = si->sh;
  int finished = 1, aborted = 0;

  if (si->closing)
    return;
  si->closing = 1;

  if (sh != NULL) {
    pthread_mutex_lock(&sh->mu);
    finished = sh->finished;
    /* A start aborted or killed before the actor ran ends by itself,
     * promptly: not abandoned, even if the runtime stops waiting first. */
    aborted = sh->abort_start || sh->killed;
    sh->done = NULL; /* the thread must not touch the handle from now on */
    pthread_mutex_unlock(&sh->mu);
  }
  if (si->thread_started && !si->thread_settled) {
    si->thread_settled = 1;
    if (finished) {
      /* It reported after its last use of anything shared: this join
       * waits for a thread that is returning, not for Python. */
      pthread_join(si->thread, NULL);
    } else {
      /* The runtime gave up on it (abandoned).  It keeps its reference to
       * the shared block and frees it if it ever finishes. */
      pthread_detach(si->thread);
      if (!aborted)
        atomic_fetch_add(&abandoned_threads, 1);
    }
  }
  if (si->done != NULL) {
    uv_close((uv_handle_t *)si->done, done_closed);
    return;
  }
  if (sh != NULL) {
    shared_unref(sh);
    si->sh = NULL;
  }
  actor__backend_closed(si->a);
}

static char **copy_vec(char *const *v) {
  size_t n = 0, i;
  char **c;
  if (v == NULL)
    return NULL;
  while (v[n] != NULL)
    n++;
  c = calloc(n + 1, sizeof(*c));
  if (c == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if ((c[i] = strdup(v[i])) == NULL)
      return c; /* partial: freed with the rest; caught below */
  return c;
}

static int subint_start(void *st, actor *a, const actor_opts *o) {
  struct subint *si = st;
  struct subint_shared *sh;
  const char *why = NULL;
  pthread_attr_t attr;
  int r;

  si->a = a;
  /* A C host that holds the GIL while it runs the loop would starve every
   * actor thread (each must take the main interpreter's GIL to create its
   * interpreter), until the actors are abandoned.  PyGILState_Check()
   * cannot tell (it answers 1 once any sub-interpreter exists); an
   * attached thread state on this thread can. */
  if (Py_IsInitialized() && PyThreadState_GetUnchecked() != NULL) {
    actor__seterr(a->rt,
                  "subint: the calling thread holds a Python thread state "
                  "(the GIL): release it while the loop runs "
                  "(PyEval_SaveThread() or Py_BEGIN_ALLOW_THREADS), or no "
                  "subint actor can start");
    return ACTOR_ESTATE;
  }
  r = actor__py_ensure(&why);
  if (r) {
    actor__seterr(a->rt, "subint: %s", why);
    return r;
  }
  if (o->entry == NULL) {
    actor__seterr(a->rt, "subint: no entry (actor_opts_set_entry)");
    return -EINVAL;
  }
  sh = calloc(1, sizeof(*sh));
  if (sh == NULL)
    return -ENOMEM;
  pthread_mutex_init(&sh->mu, NULL);
  pthread_cond_init(&sh->cv, NULL);
  atomic_init(&sh->refs, 1); /* the loop side's */
  sh->ip = actor__inproc_new();
  sh->entry = strdup(o->entry);
  sh->name = strdup(a->name);
  sh->paths = copy_vec(o->paths);
  sh->max_frame = a->rt->max_frame;
  sh->mode = o->subint_mode;
  si->sh = sh;
  if (sh->ip == NULL || sh->entry == NULL || sh->name == NULL ||
      (o->paths != NULL && (sh->paths == NULL ||
                            (o->npaths > 0 && sh->paths[o->npaths - 1] == NULL))))
    return -ENOMEM; /* close() frees what was made */

  si->done = malloc(sizeof(*si->done));
  if (si->done == NULL)
    return -ENOMEM;
  r = uv_async_init(a->rt->loop, si->done, done_cb);
  if (r) {
    free(si->done);
    si->done = NULL;
    return r;
  }
  si->done->data = si;
  sh->done = si->done;

  /* The thread waits at its gate until the channel is open. */
  atomic_fetch_add(&sh->refs, 1);
  atomic_fetch_add(&live_threads, 1);
  pthread_attr_init(&attr);
  r = pthread_create(&si->thread, &attr, subint_thread, sh);
  pthread_attr_destroy(&attr);
  if (r) {
    atomic_fetch_sub(&live_threads, 1);
    atomic_fetch_sub(&sh->refs, 1);
    actor__seterr(a->rt, "subint: cannot start a thread: %s", strerror(r));
    return -r;
  }
  si->thread_started = 1;

  r = actor__inproc_open_parent(&a->chan, a->rt->loop, sh->ip, sh->max_frame,
                                &actor__parent_chan_cbs, a);
  pthread_mutex_lock(&sh->mu);
  sh->abort_start = r != 0;
  sh->go = 1;
  pthread_cond_broadcast(&sh->cv);
  pthread_mutex_unlock(&sh->mu);
  if (r) {
    actor__seterr(a->rt, "subint: channel: %s", actor_strerror(r));
    return r;
  }
  return 0;
}

const struct actor__backend actor__backend_subint = {
    1,
    "subint",
    sizeof(struct subint),
    subint_available,
    subint_start,
    subint_signal,
    subint_close,
};
