/* subint: a Python actor in a CPython sub-interpreter, on a thread of its
 * own in this process.
 *
 * One dedicated thread per actor creates the interpreter, runs the entry,
 * ends the interpreter on that same thread, and exits; it never serves a
 * second actor (a thread state left attached to a reused thread is what
 * makes teardown hang).  The thread and its interpreter are made at spawn
 * (the cold path) or ahead of time by the warm pool (below), which hands a
 * parked one its actor.  Isolated (own GIL, own allocator, no fork/exec)
 * by default; legacy (the main interpreter's GIL) on request.
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* A sub-interpreter of `mode`, made on the calling thread from a
 * main-interpreter thread state of its own (PyThreadState_New binds it to
 * this thread).  0 with *ts (the new interpreter's) current and *main_ts
 * detached, or -1 with the reason in `how`. */
static int interp_new(int mode, PyThreadState **main_ts, PyThreadState **ts,
                      char *how, size_t n) {
  PyStatus st;

  *ts = NULL;
  *main_ts = PyThreadState_New(PyInterpreterState_Main());
  PyEval_RestoreThread(*main_ts);
  if (mode == ACTOR_SUBINT_LEGACY) {
    const PyInterpreterConfig cfg = {
        .use_main_obmalloc = 1,
        .allow_fork = 1,
        .allow_exec = 1,
        .allow_threads = 1,
        .allow_daemon_threads = 1,
        .check_multi_interp_extensions = 0,
        .gil = PyInterpreterConfig_SHARED_GIL,
    };
    st = Py_NewInterpreterFromConfig(ts, &cfg);
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
    st = Py_NewInterpreterFromConfig(ts, &cfg);
  }
  if (PyStatus_Exception(st)) {
    snprintf(how, n, "could not create the interpreter: %s",
             st.err_msg ? st.err_msg : "?");
    PyThreadState_Clear(*main_ts);
    PyThreadState_DeleteCurrent();
    return -1;
  }
  return 0;
}

/* With `ts` current: end its interpreter, then drop main_ts (the thread is
 * left with no thread state). */
static void interp_end(PyThreadState *ts, PyThreadState *main_ts) {
  Py_EndInterpreter(ts);
  PyEval_RestoreThread(main_ts);
  PyThreadState_Clear(main_ts);
  PyThreadState_DeleteCurrent();
}

/* Wait at the gate until the loop side has opened the channel (or given
 * up).  Returns what stops the actor from starting, or NULL. */
static const char *thread_gate(struct subint_shared *sh) {
  const char *no = NULL;
  pthread_mutex_lock(&sh->mu);
  while (!sh->go)
    pthread_cond_wait(&sh->cv, &sh->mu);
  if (sh->killed)
    no = "killed before it started";
  else if (sh->abort_start)
    no = "never started";
  pthread_mutex_unlock(&sh->mu);
  return no;
}

/* The actor's life in an interpreter that exists (`ts` current, main_ts
 * detached): run the entry unless a kill came first, end the interpreter,
 * report.  `prepared`: the pool's modules (a reference we own), or NULL. */
static void thread_run(struct subint_shared *sh, PyThreadState *main_ts,
                       PyThreadState *ts, PyObject *prepared,
                       const char *no) {
  struct actor__py_ep *ep;
  struct actor__py_inbox *ib;
  struct actor__py_run run;
  int status = 1, killed;

  /* The inbox (and its endpoint) outlives the run: interrupters use it
   * while they are counted, and the actor's threads until the interpreter
   * ends. */
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
  if (killed)
    no = "killed before it started";
  if (no == NULL && ib != NULL) {
    sh->interp = PyThreadState_GetInterpreter(ts);
    sh->tid = PyThread_get_thread_ident();
    sh->ib = ib;
  }
  pthread_mutex_unlock(&sh->mu);

  if (no != NULL || ib == NULL) {
    snprintf(run.how, sizeof(run.how), "%s", no != NULL ? no : "out of memory");
    Py_XDECREF(prepared);
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
    run.prepared = prepared;
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
}

/* The cold path: a thread of its own, an interpreter made for the actor. */
static void *subint_thread(void *arg) {
  struct subint_shared *sh = arg;
  PyThreadState *main_ts, *ts;
  const char *no;

  no = thread_gate(sh);
  if (no != NULL) {
    snprintf(sh->how, sizeof(sh->how), "%s", no);
    actor__inproc_child_close(sh->ip);
    thread_finish(sh, 1);
    return NULL;
  }
  if (interp_new(sh->mode, &main_ts, &ts, sh->how, sizeof(sh->how))) {
    actor__inproc_child_close(sh->ip);
    thread_finish(sh, 1);
    return NULL;
  }
  thread_run(sh, main_ts, ts, NULL, NULL);
  return NULL;
}

/* ---- the warm pool ------------------------------------------------------------
 *
 * Interpreters made ahead of time, one per parked thread, with the modules
 * installed (actor__py_prepare), waiting for a spawn of their mode.  A
 * spawn takes one — under the pool's mutex, no GIL, nothing that blocks —
 * and hands it the actor: the thread then goes through the same gate and
 * the same run as a cold one, and ends its interpreter and itself after
 * the actor, never serving another.  One refill thread (never the loop)
 * makes them, one at a time, to keep at most `target` parked per mode; it
 * exits when both targets are 0.  Retired (drained) ones end their
 * interpreter on their own thread and exit.
 *
 * Counted: `threads` is every thread the pool owns (the refiller, and
 * interpreters being made, parked or ending); a parked thread taken by an
 * actor leaves it for live_threads (actor_subint_thread_count). */
struct pooled {
  struct pooled *next;
  pthread_t thread;
  int mode;
  unsigned gen;               /* pool.gen[mode] when it was started */
  char **paths, **modules;    /* its copy of the preload */
  int retire;                 /* under pool.mu */
  struct subint_shared *sh;   /* under pool.mu: the actor, once taken */
  pthread_cond_t cv;          /* wakes the parked thread */
};

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* the refiller's wake-up; a drain's wait */
  int target[2];
  int parked[2];
  int making[2];
  int failed[2]; /* making one failed: stop until the next pool_set */
  struct pooled *list[2];
  /* actor_subint_pool_preload's, per mode (NULL: none); gen counts the
   * changes, so that one made under an older preload is not parked. */
  char **preload_paths[2], **preload_modules[2];
  unsigned gen[2];
  int threads;
  int refiller;
  uint64_t last_take_ns; /* CLOCK_MONOTONIC */
  int atexit_done, py_atexit_done, atfork_done;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static atomic_ulong pool_taken; /* spawns served from the pool, for tests */
unsigned long actor__subint_pool_taken(void);
unsigned long actor__subint_pool_taken(void) { return atomic_load(&pool_taken); }
int actor__subint_pool_failed(int mode); /* for tests too */

#define POOL_MAX 64
#define POOL_EXIT_WAIT_S 5 /* ending one takes milliseconds */
/* A refill waits until no spawn has taken from the pool for this long:
 * making an interpreter takes a core (and the main GIL) for milliseconds,
 * which the actors just started need more (a burst of spawns, each
 * starting its entry). */
#define POOL_REFILL_QUIET_NS (5 * 1000000ull)

static uint64_t pool_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pool_thread_gone(void) {
  pthread_mutex_lock(&pool.mu);
  pool.threads--;
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
}

static void vec_free(char **v) {
  size_t i;
  for (i = 0; v != NULL && v[i] != NULL; i++)
    free(v[i]);
  free(v);
}

static void *pool_thread(void *arg) {
  struct pooled *p = arg;
  PyThreadState *main_ts, *ts;
  PyObject *prepared = NULL;
  struct subint_shared *sh;
  const char *no;
  char how[256];
  int ok;

  ok = interp_new(p->mode, &main_ts, &ts, how, sizeof(how)) == 0;
  if (ok) {
    prepared = actor__py_prepare("subint", p->mode == ACTOR_SUBINT_ISOLATED);
    if (prepared == NULL ||
        actor__py_preload(p->paths, p->modules) != 0) {
      PyObject *exc = PyErr_GetRaisedException();
      fprintf(stderr, "libactor: subint pool: %s failed:\n",
              prepared == NULL ? "loading libactor_child" : "the preload");
      /* Not PyErr_Print: a preloaded module's SystemExit would end the
       * process. */
      if (exc != NULL)
        PyErr_DisplayException(exc);
      Py_XDECREF(exc);
      Py_XDECREF(prepared);
      prepared = NULL;
      interp_end(ts, main_ts);
      ok = 0;
    } else {
      (void)PyEval_SaveThread(); /* parked with no GIL held */
    }
  } else {
    fprintf(stderr, "libactor: subint pool: %s\n", how);
  }
  vec_free(p->paths);
  vec_free(p->modules);
  p->paths = p->modules = NULL;

  pthread_mutex_lock(&pool.mu);
  pool.making[p->mode]--;
  if (!ok && p->gen == pool.gen[p->mode])
    pool.failed[p->mode] = 1;
  else if (!ok)
    ; /* a preload since replaced: the refill tries the new one */
  else if (pool.parked[p->mode] >= pool.target[p->mode] ||
           p->gen != pool.gen[p->mode])
    p->retire = 1; /* drained, shrunk or preloaded anew while it was made */
  else {
    p->thread = pthread_self(); /* pthread_create may not have stored it */
    p->next = pool.list[p->mode];
    pool.list[p->mode] = p;
    pool.parked[p->mode]++;
  }
  pthread_cond_broadcast(&pool.cv); /* the refiller waits for this one */
  while (ok && !p->retire && p->sh == NULL)
    pthread_cond_wait(&p->cv, &pool.mu);
  sh = p->sh;
  pthread_mutex_unlock(&pool.mu);

  pthread_cond_destroy(&p->cv);
  free(p);
  if (sh == NULL) {
    /* Never taken: end the interpreter here, where it was made. */
    if (ok) {
      PyEval_RestoreThread(ts);
      Py_DECREF(prepared);
      interp_end(ts, main_ts);
    }
    pthread_detach(pthread_self());
    pool_thread_gone();
    return NULL;
  }
  /* Taken: an actor thread from now on (joined by the loop side).  The
   * gate is waited at with no GIL held, as on the cold path. */
  no = thread_gate(sh);
  PyEval_RestoreThread(ts);
  thread_run(sh, main_ts, ts, prepared, no);
  return NULL;
}

static void pool_py_atexit_register(void);
static char **copy_vec(char *const *v);

/* Did copy_vec copy every string of `v` (NULL: nothing to copy)? */
static int vec_whole(char **c, char **v) {
  size_t i;
  if (v == NULL)
    return 1;
  for (i = 0; v[i] != NULL; i++)
    if (c[i] == NULL)
      return 0;
  return 1;
}

/* The refiller: one interpreter at a time, while a mode is short. */
static void *pool_refiller(void *arg) {
  PyThreadState *ts;
  struct pooled *p;
  struct timespec until;
  uint64_t now, wait;
  pthread_t t;
  int mode, r;

  (void)arg;
  pthread_mutex_lock(&pool.mu);
  if (!pool.py_atexit_done) {
    /* A Python host finalises its CPython: the parked interpreters must
     * end before it does (Python's atexit runs first). */
    pool.py_atexit_done = 1;
    pthread_mutex_unlock(&pool.mu);
    ts = PyThreadState_New(PyInterpreterState_Main());
    PyEval_RestoreThread(ts);
    pool_py_atexit_register();
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
    pthread_mutex_lock(&pool.mu);
  }
  for (;;) {
    for (mode = 0; mode < 2; mode++)
      if (!pool.failed[mode] &&
          pool.parked[mode] + pool.making[mode] < pool.target[mode])
        break;
    if (mode == 2) {
      if (pool.target[0] == 0 && pool.target[1] == 0)
        break;
      pthread_cond_wait(&pool.cv, &pool.mu);
      continue;
    }
    now = pool_now_ns();
    if (now - pool.last_take_ns < POOL_REFILL_QUIET_NS) {
      /* (the condition variable's clock is CLOCK_REALTIME) */
      clock_gettime(CLOCK_REALTIME, &until);
      wait = POOL_REFILL_QUIET_NS - (now - pool.last_take_ns);
      until.tv_nsec += (long)wait;
      until.tv_sec += until.tv_nsec / 1000000000L;
      until.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&pool.cv, &pool.mu, &until);
      continue;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
      pool.failed[mode] = 1;
      continue;
    }
    p->mode = mode;
    p->gen = pool.gen[mode];
    if ((pool.preload_paths[mode] != NULL &&
         (p->paths = copy_vec(pool.preload_paths[mode])) == NULL) ||
        (pool.preload_modules[mode] != NULL &&
         (p->modules = copy_vec(pool.preload_modules[mode])) == NULL) ||
        !vec_whole(p->paths, pool.preload_paths[mode]) ||
        !vec_whole(p->modules, pool.preload_modules[mode])) {
      vec_free(p->paths);
      vec_free(p->modules);
      free(p);
      pool.failed[mode] = 1;
      continue;
    }
    pthread_cond_init(&p->cv, NULL);
    pool.making[mode]++;
    pool.threads++;
    /* Not into p: the thread may be gone, and p freed, by the time
     * pthread_create returns.  It records its own handle. */
    r = pthread_create(&t, NULL, pool_thread, p);
    if (r) {
      pool.making[mode]--;
      pool.threads--;
      pool.failed[mode] = 1;
      pthread_cond_destroy(&p->cv);
      vec_free(p->paths);
      vec_free(p->modules);
      free(p);
      continue;
    }
    /* One at a time: creation takes the main GIL and a core for
     * milliseconds. */
    while (pool.making[mode] > 0)
      pthread_cond_wait(&pool.cv, &pool.mu);
  }
  pool.refiller = 0;
  pool.threads--;
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  pthread_detach(pthread_self());
  return NULL;
}

/* Under pool.mu: retire the parked interpreters of `mode` beyond `keep`. */
static void pool_retire(int mode, int keep) {
  struct pooled *p;
  while (pool.parked[mode] > keep && (p = pool.list[mode]) != NULL) {
    pool.list[mode] = p->next;
    pool.parked[mode]--;
    p->retire = 1;
    pthread_cond_signal(&p->cv);
  }
}

/* Drain both modes and wait, up to `sec` seconds, for every pool thread
 * to end. */
static void pool_drain_wait(int sec) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += sec;
  pthread_mutex_lock(&pool.mu);
  pool.target[0] = pool.target[1] = 0;
  pool_retire(0, 0);
  pool_retire(1, 0);
  pthread_cond_broadcast(&pool.cv);
  while (pool.threads > 0 &&
         pthread_cond_timedwait(&pool.cv, &pool.mu, &until) != ETIMEDOUT)
    ;
  pthread_mutex_unlock(&pool.mu);
}

static PyObject *pool_py_atexit(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  Py_BEGIN_ALLOW_THREADS; /* retiring ones need the main GIL */
  pool_drain_wait(POOL_EXIT_WAIT_S);
  Py_END_ALLOW_THREADS;
  Py_RETURN_NONE;
}

static PyMethodDef pool_py_atexit_def = {
    "_libactor_subint_pool_drain", pool_py_atexit, METH_NOARGS,
    "End libactor's parked sub-interpreters (registered with atexit)."};

/* With a main-interpreter thread state attached.  Python's atexit, not
 * PyUnstable_AtExit: those callbacks run only after CPython has ended the
 * sub-interpreters left over — ours included, from the wrong thread. */
static void pool_py_atexit_register(void) {
  PyObject *fn, *mod, *r = NULL;
  fn = PyCFunction_New(&pool_py_atexit_def, NULL);
  mod = PyImport_ImportModule("atexit");
  if (fn != NULL && mod != NULL)
    r = PyObject_CallMethod(mod, "register", "O", fn);
  if (r == NULL)
    PyErr_Print();
  Py_XDECREF(r);
  Py_XDECREF(mod);
  Py_XDECREF(fn);
}

static void pool_c_atexit(void) { pool_drain_wait(POOL_EXIT_WAIT_S); }

/* A fork (a legacy actor may fork; so may a Python host) copies none of
 * the pool's threads, and CPython deletes the copied sub-interpreters in
 * the child: the child's pool starts empty, or its exit would wait for
 * threads that are not there. */
static void pool_atfork_prepare(void) { pthread_mutex_lock(&pool.mu); }
static void pool_atfork_parent(void) { pthread_mutex_unlock(&pool.mu); }
static void pool_atfork_child(void) {
  int m;
  for (m = 0; m < 2; m++) {
    pool.target[m] = pool.parked[m] = pool.making[m] = pool.failed[m] = 0;
    pool.list[m] = NULL; /* their memory stays with the parent's threads */
  }
  pool.threads = 0;
  pool.refiller = 0;
  pthread_cond_init(&pool.cv, NULL);
  pthread_mutex_unlock(&pool.mu);
}

/* A spawn: take a parked interpreter of sh->mode and hand it the actor.
 * 1 with *t its thread, or 0 when none is parked (the cold path). */
static int pool_take(struct subint_shared *sh, pthread_t *t) {
  struct pooled *p;
  pthread_mutex_lock(&pool.mu);
  p = pool.list[sh->mode];
  if (p != NULL) {
    pool.list[sh->mode] = p->next;
    pool.parked[sh->mode]--;
    pool.threads--; /* live_threads has it now */
    p->sh = sh;
    *t = p->thread;
    atomic_fetch_add(&pool_taken, 1);
    pool.last_take_ns = pool_now_ns();
    pthread_cond_signal(&p->cv);
    pthread_cond_broadcast(&pool.cv); /* refill */
  }
  pthread_mutex_unlock(&pool.mu);
  return p != NULL;
}

int actor_subint_pool_set(int mode, int size) {
  const char *why;
  pthread_attr_t attr;
  pthread_t t;
  int r = 0;

  if ((mode != ACTOR_SUBINT_ISOLATED && mode != ACTOR_SUBINT_LEGACY) ||
      size < 0 || size > POOL_MAX)
    return -EINVAL;
  if (size > 0) {
    /* As for a spawn (subint_start): the interpreters need the main GIL
     * to be made. */
    if (Py_IsInitialized() && PyThreadState_GetUnchecked() != NULL)
      return ACTOR_ESTATE;
    r = actor__py_ensure(&why);
    if (r)
      return r;
  }
  pthread_mutex_lock(&pool.mu);
  pool.target[mode] = size;
  pool.failed[mode] = 0;
  pool_retire(mode, size);
  if (size > 0 && !pool.refiller) {
    pthread_attr_init(&attr);
    r = -pthread_create(&t, &attr, pool_refiller, NULL);
    pthread_attr_destroy(&attr);
    if (r == 0) {
      pool.refiller = 1;
      pool.threads++;
    } else {
      pool.target[mode] = 0;
    }
  }
  if (r == 0 && size > 0 && !pool.atexit_done && atexit(pool_c_atexit) == 0)
    pool.atexit_done = 1;
  if (r == 0 && size > 0 && !pool.atfork_done &&
      pthread_atfork(pool_atfork_prepare, pool_atfork_parent,
                     pool_atfork_child) == 0)
    pool.atfork_done = 1;
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  return r;
}

/* A NULL-terminated vector of at most POOL_PRELOAD_MAX non-empty strings
 * (NULL: none) copied, in *out (NULL for none).  0, -EINVAL or -ENOMEM. */
#define POOL_PRELOAD_MAX 64
static int preload_vec(const char *const *v, char ***out) {
  size_t n = 0;
  *out = NULL;
  if (v == NULL)
    return 0;
  for (; v[n] != NULL; n++)
    if (n >= POOL_PRELOAD_MAX || v[n][0] == '\0')
      return -EINVAL;
  if (n == 0)
    return 0;
  *out = copy_vec((char *const *)v);
  if (*out == NULL || !vec_whole(*out, (char **)v)) {
    vec_free(*out);
    *out = NULL;
    return -ENOMEM;
  }
  return 0;
}

int actor_subint_pool_preload(int mode, const char *const *paths,
                              const char *const *modules) {
  char **p, **m, **oldp, **oldm;
  int r;

  if (mode != ACTOR_SUBINT_ISOLATED && mode != ACTOR_SUBINT_LEGACY)
    return -EINVAL;
  if ((r = preload_vec(paths, &p)) != 0)
    return r;
  if ((r = preload_vec(modules, &m)) != 0) {
    vec_free(p);
    return r;
  }
  pthread_mutex_lock(&pool.mu);
  oldp = pool.preload_paths[mode];
  oldm = pool.preload_modules[mode];
  pool.preload_paths[mode] = p;
  pool.preload_modules[mode] = m;
  pool.gen[mode]++;
  pool.failed[mode] = 0;
  /* What is parked was made with the old preload: remade. */
  pool_retire(mode, 0);
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  vec_free(oldp);
  vec_free(oldm);
  return 0;
}

int actor__subint_pool_failed(int mode) {
  int f;
  pthread_mutex_lock(&pool.mu);
  f = pool.failed[mode];
  pthread_mutex_unlock(&pool.mu);
  return f;
}

int actor_subint_pool_count(int mode) {
  int n;
  if (mode != ACTOR_SUBINT_ISOLATED && mode != ACTOR_SUBINT_LEGACY)
    return -EINVAL;
  pthread_mutex_lock(&pool.mu);
  n = pool.parked[mode];
  pthread_mutex_unlock(&pool.mu);
  return n;
}

int actor_subint_pool_threads(void) {
  int n;
  pthread_mutex_lock(&pool.mu);
  n = pool.threads;
  pthread_mutex_unlock(&pool.mu);
  return n;
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
  if (pool_take(sh, &si->thread)) {
    r = 0; /* a warm interpreter: no thread to start, none to make */
  } else {
    pthread_attr_init(&attr);
    r = pthread_create(&si->thread, &attr, subint_thread, sh);
    pthread_attr_destroy(&attr);
  }
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
