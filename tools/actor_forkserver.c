/* actor-forkserver — the fork server of the forkserver backend.
 *
 *   actor-forkserver -H HOSTPID [-P] [-p DIR]... [-m MODULE]... [-l LIB]...
 *
 * Started by a libactor runtime (src/spawn/forkserver.c), never by hand:
 * fd 3 is its control channel (src/spawn/fsproto.h).  It loads what its
 * children should inherit — shared objects (-l), and with -P or -m
 * CPython and the modules — once, then only forks.
 *
 * Threads.  The main thread starts CPython (when wanted), releases the
 * GIL and starts the worker, then only waits: for the worker to end, or
 * for a request to start CPython later (a Python spawn on a server that
 * started without it).  The worker — attached to the main interpreter
 * with a thread state of its own — reads the control channel, forks
 * (PyOS_BeforeFork / PyOS_AfterFork_Parent / PyOS_AfterFork_Child around
 * fork() for Python children), holds each child's pidfd until it reaps it,
 * signals children's process groups on request, and relays each exit.  It
 * lives as long as the server, which matters: the children's parent-death
 * signal follows the thread that forked them.  This process never runs a
 * libuv loop or a sub-interpreter of its own (a live sub-interpreter
 * would kill every Python child, CPython gh-139759).
 *
 * Ending: EOF on the control channel (the runtime closed it, or the host
 * died) — every child's process group is SIGKILLed and reaped, and the
 * server exits.  The host dying outright also kills the server through
 * its own parent-death signal, and the children through theirs. */
#ifdef ACTOR_FS_PYTHON
#include "py/py.h" /* Python.h first */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/fsproto.h"
#ifdef ACTOR_FS_PYTHON
#include "fs_afterfork.h"
#endif

#define CTL_FD 3
#define CHAN_FD 3 /* the channel's number in a child */

extern char **environ;

/* ---- the server's state (worker thread, but for the Python start) ------ */

struct kid {
  uint32_t id;
  int pid, pidfd;
  int signalled;
};

struct lib {
  char *name;
  void *handle;
};

static struct {
  int host_pid;
  int python;   /* CPython is initialised */
  int py_start; /* worker -> main: please start CPython (1), done (2) */
  int py_err;
  char py_why[256];
  char **paths, **modules;
  size_t npaths, nmodules;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int worker_done;
  struct kid *kids;
  size_t nkids, capkids;
  struct lib *libs;
  size_t nlibs;
  char *buf; /* one control packet */
  sigset_t changed; /* signals whose disposition is not the default */
#ifdef ACTOR_FS_PYTHON
  /* Looked up once at CPython's start, used by every Python child: a
   * child's import of a cached module and a call through signal.py's enum
   * wrapper touch enough objects (refcounts: copy-on-write faults) to cost
   * ~0.2 ms each here (docs/performance.md §4). */
  PyObject *py_signal;       /* _signal.signal */
  PyObject *py_int_handler;  /* _signal.default_int_handler */
  PyObject *py_exitfuncs;    /* atexit._run_exitfuncs */
#endif
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* ---- replies --------------------------------------------------------------- */

static void reply(int kind, uint32_t id, int64_t a, int64_t b,
                  const char *msg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  struct pollfd pfd = {CTL_FD, POLLOUT, 0};
  int r;

  actor__fs_pack_begin(&sb, &pk);
  msgpack_pack_array(&pk, kind == ACTOR__FS_FATAL ? 3 : 4);
  msgpack_pack_int(&pk, kind);
  msgpack_pack_uint32(&pk, id);
  if (kind == ACTOR__FS_FATAL) {
    actor__fs_pack_str(&pk, msg); /* < 1 KiB: ACTOR__FS_MAX_REPLY */
  } else {
    msgpack_pack_int64(&pk, a);
    if (msg != NULL)
      actor__fs_pack_str(&pk, msg);
    else
      msgpack_pack_int64(&pk, b);
  }
  if (actor__fs_pack_end(&sb) == 0) {
    /* The host reads promptly; a full socket waits for it (it is our
     * only client, and an exit must not be lost). */
    while ((r = actor__fs_send(CTL_FD, sb.data, sb.size, NULL, 0)) == -EAGAIN)
      poll(&pfd, 1, 1000);
    (void)r; /* the host is gone: its end tells us, on the next read */
  }
  msgpack_sbuffer_destroy(&sb);
}

/* ---- CPython ------------------------------------------------------------------ */

#ifdef ACTOR_FS_PYTHON
static void py_exc_text(char *buf, size_t len) {
  PyObject *exc = PyErr_GetRaisedException(), *s = NULL;
  const char *t = NULL;
  if (exc != NULL)
    s = PyObject_Repr(exc);
  if (s != NULL)
    t = PyUnicode_AsUTF8(s);
  snprintf(buf, len, "%s", t ? t : "unknown Python error");
  PyErr_Clear();
  Py_XDECREF(s);
  Py_XDECREF(exc);
}

/* Main thread: start CPython, put the paths in sys.path, import the
 * modules, release the GIL.  0, or -1 with S.py_why. */
static int py_start(void) {
  PyConfig cfg;
  PyStatus ps;
  PyObject *sys_path, *m;
  size_t i;

  PyConfig_InitPythonConfig(&cfg);
  /* Children install SIGINT's handler themselves; the server has none. */
  cfg.install_signal_handlers = 0;
  cfg.parse_argv = 0;
  ps = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(ps)) {
    snprintf(S.py_why, sizeof(S.py_why), "CPython failed to start: %s",
             ps.err_msg ? ps.err_msg : "?");
    return -1;
  }
  /* What every Python child needs, imported here once: libactor_child
   * (unbound until a child binds it; preloads may import it, and its code
   * is compiled once), signal (for SIGINT's handler), atexit (the exit). */
  if (actor__py_preinstall() < 0) {
    py_exc_text(S.py_why, sizeof(S.py_why));
    goto fail;
  }
  for (i = 0; i < 2; i++) {
    m = PyImport_ImportModule(i == 0 ? "signal" : "atexit");
    if (m == NULL) {
      py_exc_text(S.py_why, sizeof(S.py_why));
      goto fail;
    }
    if (i == 1)
      S.py_exitfuncs = PyObject_GetAttrString(m, "_run_exitfuncs");
    Py_DECREF(m);
  }
  m = PyImport_ImportModule("_signal");
  if (m != NULL) {
    S.py_signal = PyObject_GetAttrString(m, "signal");
    S.py_int_handler = PyObject_GetAttrString(m, "default_int_handler");
    Py_DECREF(m);
  }
  if (S.py_exitfuncs == NULL || S.py_signal == NULL ||
      S.py_int_handler == NULL) {
    py_exc_text(S.py_why, sizeof(S.py_why));
    goto fail;
  }
  sys_path = PySys_GetObject("path"); /* borrowed */
  for (i = S.npaths; sys_path != NULL && i > 0; i--) {
    PyObject *d = PyUnicode_DecodeFSDefault(S.paths[i - 1]);
    if (d == NULL || PyList_Insert(sys_path, 0, d) < 0) {
      Py_XDECREF(d);
      py_exc_text(S.py_why, sizeof(S.py_why));
      goto fail;
    }
    Py_DECREF(d);
  }
  for (i = 0; i < S.nmodules; i++) {
    m = PyImport_ImportModule(S.modules[i]);
    if (m == NULL) {
      char t[200];
      py_exc_text(t, sizeof(t));
      snprintf(S.py_why, sizeof(S.py_why), "cannot preload '%s': %s",
               S.modules[i], t);
      goto fail;
    }
    Py_DECREF(m);
  }
  S.python = 1;
  PyEval_SaveThread();
  return 0;
fail:
  PyEval_SaveThread();
  S.python = 1; /* initialised, even if a module failed */
  return -1;
}
#endif

/* Worker: CPython is running (started now by the main thread if need be),
 * and this thread holds a main-interpreter thread state (*ts).  0 or -1. */
static int worker_python(void **ts, char *why, size_t len) {
#ifdef ACTOR_FS_PYTHON
  if (!S.python && !S.py_err) {
    pthread_mutex_lock(&S.mu);
    S.py_start = 1;
    pthread_cond_broadcast(&S.cv);
    while (S.py_start != 2)
      pthread_cond_wait(&S.cv, &S.mu);
    pthread_mutex_unlock(&S.mu);
  }
  /* A start that failed fails every Python spawn after it too, with its
   * reason: CPython is not started again over what the failure left, nor
   * used half set up (S.python is set when a step after the start
   * failed). */
  if (S.py_err) {
    snprintf(why, len, "%s", S.py_why);
    return -1;
  }
  if (*ts == NULL) {
    /* PyThreadState_New binds it to this thread, which keeps it for good:
     * the worker is the thread the children are forked from. */
    *ts = PyThreadState_New(PyInterpreterState_Main());
    if (*ts == NULL) {
      snprintf(why, len, "cannot make a thread state");
      return -1;
    }
  }
  return 0;
#else
  (void)ts;
  snprintf(why, len, "this fork server was built without Python "
                     "(ACTOR_WITH_PYTHON=OFF)");
  return -1;
#endif
}

/* ---- C entries ---------------------------------------------------------------- */

typedef int (*c_entry_fn)(actor_child *c);

static void *lib_open(const char *name, char *why, size_t len) {
  struct lib *l;
  size_t i;
  void *h;

  for (i = 0; i < S.nlibs; i++)
    if (strcmp(S.libs[i].name, name) == 0)
      return S.libs[i].handle;
  h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
  if (h == NULL) {
    snprintf(why, len, "cannot load '%s': %s", name, dlerror());
    return NULL;
  }
  l = realloc(S.libs, (S.nlibs + 1) * sizeof(*l));
  if (l == NULL || (l[S.nlibs].name = strdup(name)) == NULL) {
    if (l != NULL)
      S.libs = l;
    snprintf(why, len, "out of memory");
    return NULL;
  }
  S.libs = l;
  l[S.nlibs++].handle = h;
  return h;
}

static c_entry_fn c_entry_find(const char *spec, char *why, size_t len) {
  const char *colon = strrchr(spec, ':');
  char lib[4096];
  void *h, *f;

  if (colon == NULL || (size_t)(colon - spec) >= sizeof(lib)) {
    snprintf(why, len, "bad C entry '%s' (lib.so:function)", spec);
    return NULL;
  }
  memcpy(lib, spec, (size_t)(colon - spec));
  lib[colon - spec] = '\0';
  h = lib_open(lib, why, len);
  if (h == NULL)
    return NULL;
  dlerror();
  f = dlsym(h, colon + 1);
  if (f == NULL) {
    snprintf(why, len, "no function '%.200s' in '%.200s'", colon + 1, lib);
    return NULL;
  }
  return (c_entry_fn)(uintptr_t)f;
}

/* ---- the child, after fork --------------------------------------------------- */

struct req {
  uint32_t id;
  int kind;
  char *entry, *name, *cwd;
  size_t max_frame;
  char **paths, **env; /* NULL-terminated */
  int clear_env;
  int out, err; /* ACTOR_STDIO_* */
  c_entry_fn cfn;
  int fd;             /* the channel */
  int out_fd, err_fd; /* capture pipes, or -1 */
};

static void req_free(struct req *q) {
  size_t i;
  free(q->entry);
  free(q->name);
  free(q->cwd);
  for (i = 0; q->paths != NULL && q->paths[i] != NULL; i++)
    free(q->paths[i]);
  for (i = 0; q->env != NULL && q->env[i] != NULL; i++)
    free(q->env[i]);
  free(q->paths);
  free(q->env);
  if (q->fd >= 0)
    close(q->fd);
  if (q->out_fd >= 0)
    close(q->out_fd);
  if (q->err_fd >= 0)
    close(q->err_fd);
  memset(q, 0, sizeof(*q));
  q->fd = q->out_fd = q->err_fd = -1;
}

/* What every child does first, whatever it runs: its own session and
 * process group, death with the server, a descriptor table of stdio and
 * the channel only, default signal dispositions and an empty mask. */
static void child_common(struct req *q, int server_pid) {
  sigset_t none;
  int sig, null_fd;

  setsid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != server_pid)
    _exit(111); /* the server died before prctl */
  /* Every source is above 3 (0-3 are the server's own), so no dup2 here
   * overwrites another's source; close_range below closes the sources. */
  if ((q->out_fd >= 0 && dup2(q->out_fd, 1) < 0) ||
      (q->err_fd >= 0 && dup2(q->err_fd, 2) < 0))
    _exit(112);
  if (q->fd != CHAN_FD) {
    if (dup2(q->fd, CHAN_FD) < 0)
      _exit(112);
    close(q->fd);
    q->fd = CHAN_FD;
  }
  if (q->out == ACTOR_STDIO_DISCARD || q->err == ACTOR_STDIO_DISCARD) {
    null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0) {
      if (q->out == ACTOR_STDIO_DISCARD)
        dup2(null_fd, 1);
      if (q->err == ACTOR_STDIO_DISCARD)
        dup2(null_fd, 2);
      if (null_fd > CHAN_FD)
        close(null_fd);
    }
  }
  close_range(CHAN_FD + 1, ~0u, 0);
  fcntl(CHAN_FD, F_SETFD, FD_CLOEXEC);
  /* Only what the server's start changed (the host started it with every
   * disposition default): one syscall per signal costs a spawn ~60. */
  for (sig = 1; sig < NSIG; sig++)
    if (sigismember(&S.changed, sig) == 1)
      signal(sig, SIG_DFL);
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
  if (q->cwd != NULL && chdir(q->cwd) != 0) {
    fprintf(stderr, "actor-forkserver: %s: cannot chdir to '%s': %s\n",
            q->name, q->cwd, strerror(errno));
    _exit(127);
  }
}

static void child_env_c(struct req *q) {
  size_t i;
  char *eq;
  if (q->clear_env)
    clearenv();
  for (i = 0; q->env != NULL && q->env[i] != NULL; i++) {
    eq = strchr(q->env[i], '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    setenv(q->env[i], eq + 1, 1);
    *eq = '=';
  }
}

static void child_env_init(struct actor__child_env *e, struct req *q) {
  memset(e, 0, sizeof(*e));
  e->fd = CHAN_FD;
  e->max_frame = q->max_frame;
  e->name = q->name;
  e->backend = strdup("forkserver");
  q->name = NULL;
}

static void child_c(struct req *q) {
  struct actor__child_env e;
  actor_child *c;
  int st;

  child_env_c(q);
  child_env_init(&e, q);
  if (e.backend == NULL || e.name == NULL)
    _exit(113);
  q->fd = -1;
  st = actor__child_new_env(&c, NULL, &e);
  if (st) {
    fprintf(stderr, "actor-forkserver: cannot start the actor: %s\n",
            actor_strerror(st));
    _exit(114);
  }
  st = q->cfn(c);
  actor_child_free(c);
  fflush(stdout);
  fflush(stderr);
  _exit(st & 0xff);
}

#ifdef ACTOR_FS_PYTHON
/* SIGINT -> KeyboardInterrupt.  CPython's own handler (installed in the
 * child's main interpreter) trips the flag that the main thread's next
 * bytecode acts on, and writes to its wake-up fd; a thread of ours reads
 * that and wakes whatever the actor's Python code waits in (the inbox),
 * which an EINTR alone would not (the signal may go to another thread, and
 * the inbox retries).  Without the wake, an idle actor — an orphan whose
 * parent is gone, say — never notices.  The subint kind reads the same fd
 * on the main thread itself and injects KeyboardInterrupt into its
 * sub-interpreter. */
struct sigrelay {
  int rfd;
  struct actor__py_inbox *ib;
  unsigned long tid;
};

static void *relay_thread(void *arg) {
  struct sigrelay *r = arg;
  struct pollfd pfd = {r->rfd, POLLIN, 0};
  char b[64];
  for (;;) {
    if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
      return NULL;
    if (read(r->rfd, b, sizeof(b)) > 0)
      actor__py_inbox_wake(r->ib, r->tid);
  }
}

/* signal.signal(SIGINT, signal.default_int_handler), through _signal's
 * own function (what signal.signal calls after its enum conversions). */
static int py_child_signals(int *rfd) {
  PyObject *res = NULL;
  int p[2];

  *rfd = -1;
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
    return -1;
  res = PyObject_CallFunction(S.py_signal, "iO", SIGINT, S.py_int_handler);
  Py_XDECREF(res);
  if (res == NULL) {
    PyErr_Print();
    return -1;
  }
  PySignal_SetWakeupFd(p[1]);
  *rfd = p[0];
  return 0;
}

/* The host's environment changes, through os.environ (which calls putenv)
 * so that Python sees them too. */
static void py_child_env(struct req *q) {
  PyObject *os, *env = NULL;
  size_t i;
  char *eq;

  if (!q->clear_env && (q->env == NULL || q->env[0] == NULL))
    return;
  os = PyImport_ImportModule("os");
  if (os != NULL)
    env = PyObject_GetAttrString(os, "environ");
  if (env != NULL && q->clear_env) {
    PyObject *r = PyObject_CallMethod(env, "clear", NULL);
    Py_XDECREF(r);
  }
  for (i = 0; env != NULL && q->env != NULL && q->env[i] != NULL; i++) {
    eq = strchr(q->env[i], '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    PyObject *v = PyUnicode_DecodeFSDefault(eq + 1);
    if (v != NULL)
      PyMapping_SetItemString(env, q->env[i], v);
    Py_XDECREF(v);
    *eq = '=';
  }
  PyErr_Clear();
  Py_XDECREF(env);
  Py_XDECREF(os);
}

/* The way a forked Python process ends (as multiprocessing's do): the
 * atexit functions, the streams flushed, then _exit — not Py_Finalize,
 * whose teardown of a server's worth of modules is the slow part. */
static void py_child_exit(int status) {
  PyObject *r, *f;
  const char *names[] = {"stdout", "stderr"};
  size_t i;

  r = S.py_exitfuncs != NULL ? PyObject_CallNoArgs(S.py_exitfuncs) : NULL;
  Py_XDECREF(r);
  for (i = 0; i < 2; i++) {
    f = PySys_GetObject(names[i]); /* borrowed */
    r = f != NULL && f != Py_None ? PyObject_CallMethod(f, "flush", NULL)
                                  : NULL;
    Py_XDECREF(r);
  }
  PyErr_Clear();
  fflush(stdout);
  fflush(stderr);
  _exit(status & 0xff);
}

static int py_run(struct req *q, struct actor__py_inbox *ib,
                  struct actor__py_ep *ep, int guard) {
  struct actor__py_run run;
  int status;

  memset(&run, 0, sizeof(run));
  run.ep = ep;
  run.ib = ib;
  run.entry = q->entry;
  run.paths = q->paths;
  run.name = q->name;
  run.backend = "forkserver";
  run.max_frame = q->max_frame;
  run.guard_exits = guard;
  status = actor__py_run_actor(&run);
  if (status != 0)
    fprintf(stderr, "actor-forkserver: %s: %s\n", q->name, run.how);
  ep->close(ep);
  return status;
}

static int py_inbox(struct req *q, struct actor__py_ep **epp,
                    struct actor__py_inbox **ibp) {
  struct actor__py_ep *ep = malloc(sizeof(*ep));
  *epp = ep;
  *ibp = NULL;
  if (ep == NULL || actor__py_ep_socket(ep, CHAN_FD))
    return -1;
  *ibp = actor__py_inbox_new(ep, q->max_frame);
  return *ibp != NULL ? 0 : -1;
}

/* Kind PY: the entry in this process's main interpreter, on this thread
 * (after fork, the main thread: threading.main_thread() is it). */
static void py_child_main(struct req *q) {
  struct actor__py_ep *ep;
  struct actor__py_inbox *ib;
  struct sigrelay rl;
  pthread_t t;
  int rfd;

  PyOS_AfterFork_Child();
  actor__fs_after_fork_child();
  py_child_env(q);
  if (py_inbox(q, &ep, &ib) || py_child_signals(&rfd))
    _exit(115);
  rl.rfd = rfd;
  rl.ib = ib;
  rl.tid = PyThread_get_thread_ident();
  if (pthread_create(&t, NULL, relay_thread, &rl) == 0)
    pthread_detach(t);
  py_child_exit(py_run(q, ib, ep, 0));
}

/* Kind SUBINT: a fresh sub-interpreter on a thread of its own (it exits
 * with the interpreter); the main thread waits for it and turns SIGINT
 * into a KeyboardInterrupt injected there, as the subint backend's
 * interrupter does. */
struct subrun {
  struct req *q;
  pthread_mutex_t mu;
  PyInterpreterState *interp; /* while it may be interrupted */
  struct actor__py_inbox *ib;
  unsigned long tid;
  int interrupting, finished, status;
  int wfd; /* written when finished */
};

static void *subint_thread(void *arg) {
  struct subrun *sr = arg;
  PyThreadState *main_ts, *ts = NULL;
  struct actor__py_ep *ep;
  struct actor__py_inbox *ib;
  PyStatus st;
  int legacy = sr->q->kind == ACTOR__FS_SUBINT_LEGACY, status = 1;
  const PyInterpreterConfig cfg = {
      .use_main_obmalloc = legacy,
      .allow_fork = legacy,
      .allow_exec = legacy,
      .allow_threads = 1,
      .allow_daemon_threads = legacy,
      .check_multi_interp_extensions = !legacy,
      .gil = legacy ? PyInterpreterConfig_SHARED_GIL
                    : PyInterpreterConfig_OWN_GIL,
  };

  main_ts = PyThreadState_New(PyInterpreterState_Main());
  PyEval_RestoreThread(main_ts);
  st = Py_NewInterpreterFromConfig(&ts, &cfg);
  if (PyStatus_Exception(st)) {
    fprintf(stderr, "actor-forkserver: %s: cannot create the interpreter: %s\n",
            sr->q->name, st.err_msg ? st.err_msg : "?");
  } else if (py_inbox(sr->q, &ep, &ib) == 0) {
    pthread_mutex_lock(&sr->mu);
    sr->interp = PyThreadState_GetInterpreter(ts);
    sr->ib = ib;
    sr->tid = PyThread_get_thread_ident();
    pthread_mutex_unlock(&sr->mu);
    status = py_run(sr->q, ib, ep, !legacy);
    /* No interrupt may be attached when the interpreter ends. */
    Py_BEGIN_ALLOW_THREADS;
    for (;;) {
      pthread_mutex_lock(&sr->mu);
      if (!sr->interrupting) {
        sr->interp = NULL;
        pthread_mutex_unlock(&sr->mu);
        break;
      }
      pthread_mutex_unlock(&sr->mu);
      usleep(1000);
    }
    Py_END_ALLOW_THREADS;
    PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
    PyErr_Clear();
    Py_EndInterpreter(ts);
  }
  PyEval_RestoreThread(main_ts);
  PyThreadState_Clear(main_ts);
  PyThreadState_DeleteCurrent();
  sr->status = status;
  __atomic_store_n(&sr->finished, 1, __ATOMIC_RELEASE);
  if (write(sr->wfd, "x", 1) < 0)
    _exit(status);
  return NULL;
}

static void subint_interrupt(struct subrun *sr) {
  PyThreadState *ts;
  PyInterpreterState *interp;

  pthread_mutex_lock(&sr->mu);
  interp = sr->interp;
  if (interp != NULL)
    sr->interrupting = 1;
  pthread_mutex_unlock(&sr->mu);
  if (interp == NULL)
    return;
  ts = PyThreadState_New(interp);
  if (ts != NULL) {
    PyEval_RestoreThread(ts); /* that interpreter's GIL */
    actor__py_inbox_interrupt(sr->ib, sr->tid, PyExc_KeyboardInterrupt);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
  }
  pthread_mutex_lock(&sr->mu);
  sr->interrupting = 0;
  pthread_mutex_unlock(&sr->mu);
}

/* A fresh sub-interpreter starts from the configuration, not from the
 * server's sys.path: give it the server's directories after the spawn's. */
static void subint_paths(struct req *q) {
  size_t n = 0, i;
  char **v;
  while (q->paths[n] != NULL)
    n++;
  v = calloc(n + S.npaths + 1, sizeof(*v));
  if (v == NULL)
    return;
  memcpy(v, q->paths, n * sizeof(*v));
  for (i = 0; i < S.npaths; i++)
    v[n + i] = strdup(S.paths[i]);
  free(q->paths);
  q->paths = v;
}

static void py_child_subint(struct req *q) {
  struct subrun sr;
  struct pollfd pfd[2];
  pthread_t t;
  int rfd, done[2];
  ssize_t n;
  char b[64];

  PyOS_AfterFork_Child();
  actor__fs_after_fork_child();
  subint_paths(q);
  py_child_env(q);
  if (py_child_signals(&rfd) || pipe2(done, O_CLOEXEC))
    _exit(115);
  memset(&sr, 0, sizeof(sr));
  pthread_mutex_init(&sr.mu, NULL);
  sr.q = q;
  sr.wfd = done[1];
  PyThreadState *main_ts = PyEval_SaveThread();
  if (pthread_create(&t, NULL, subint_thread, &sr) != 0)
    _exit(116);
  pfd[0].fd = done[0];
  pfd[0].events = POLLIN;
  pfd[1].fd = rfd;
  pfd[1].events = POLLIN;
  while (!__atomic_load_n(&sr.finished, __ATOMIC_ACQUIRE)) {
    if (poll(pfd, 2, -1) < 0)
      continue;
    n = (pfd[1].revents & POLLIN) ? read(rfd, b, sizeof(b)) : 0;
    if (n > 0 && memchr(b, SIGINT, (size_t)n) != NULL)
      subint_interrupt(&sr);
  }
  pthread_join(t, NULL);
  PyEval_RestoreThread(main_ts);
  py_child_exit(sr.status);
}
#endif

/* Note the signals whose disposition is not SIG_DFL now (after a preload
 * or CPython's start), for the children to reset. */
static void note_signals(void) {
  struct sigaction sa;
  int sig;
  sigemptyset(&S.changed);
  for (sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 &&
        sa.sa_handler != SIG_DFL)
      sigaddset(&S.changed, sig);
}

/* ---- requests ------------------------------------------------------------------ */

static struct kid *kid_find(uint32_t id) {
  size_t i;
  for (i = 0; i < S.nkids; i++)
    if (S.kids[i].id == id)
      return &S.kids[i];
  return NULL;
}

static char **strvec(const msgpack_object *o) {
  char **v;
  uint32_t i, n;
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY)
    return calloc(1, sizeof(char *));
  n = o->via.array.size;
  v = calloc((size_t)n + 1, sizeof(*v));
  for (i = 0; v != NULL && i < n; i++)
    if (o->via.array.ptr[i].type == MSGPACK_OBJECT_STR)
      v[i] = strndup(o->via.array.ptr[i].via.str.ptr,
                     o->via.array.ptr[i].via.str.size);
  return v;
}

static void do_spawn(const msgpack_object *it, size_t cnt, int *fds,
                     int nfds, void **ts) {
  struct req q;
  struct kid *kd;
  char why[512];
  int python, pid, pidfd, k, self = (int)getpid();

  memset(&q, 0, sizeof(q));
  q.fd = q.out_fd = q.err_fd = -1;
  q.id = (uint32_t)actor__fs_int(it, cnt, 1);
  q.kind = (int)actor__fs_int(it, cnt, 2);
  q.entry = actor__fs_strdup(it, cnt, 3);
  q.name = actor__fs_strdup(it, cnt, 4);
  q.max_frame = (size_t)actor__fs_int(it, cnt, 5);
  q.paths = strvec(cnt > 6 ? &it[6] : NULL);
  q.cwd = actor__fs_strdup(it, cnt, 7);
  q.env = strvec(cnt > 8 ? &it[8] : NULL);
  q.clear_env = (int)actor__fs_int(it, cnt, 9);
  q.out = (int)actor__fs_int(it, cnt, 10);
  q.err = (int)actor__fs_int(it, cnt, 11);
  if (q.max_frame < ACTOR__MIN_MAX_FRAME)
    q.max_frame = ACTOR__DEFAULT_MAX_FRAME;
  /* The channel, then a capture pipe for each captured output. */
  k = 0;
  if (k < nfds)
    q.fd = fds[k++];
  if (q.out == ACTOR_STDIO_CAPTURE && k < nfds)
    q.out_fd = fds[k++];
  if (q.err == ACTOR_STDIO_CAPTURE && k < nfds)
    q.err_fd = fds[k++];
  actor__fs_close_fds(fds + k, nfds - k);
  if (q.fd < 0 || (q.out == ACTOR_STDIO_CAPTURE && q.out_fd < 0) ||
      (q.err == ACTOR_STDIO_CAPTURE && q.err_fd < 0) || q.entry == NULL || q.name == NULL || q.paths == NULL ||
      q.env == NULL || q.kind < ACTOR__FS_C || q.kind > ACTOR__FS_SUBINT_LEGACY) {
    reply(ACTOR__FS_FAILED, q.id, -EINVAL, 0, "malformed spawn request");
    goto out;
  }
  if (S.nkids == S.capkids) {
    size_t cap = S.capkids ? 2 * S.capkids : 16;
    struct kid *nk = realloc(S.kids, cap * sizeof(*nk));
    if (nk == NULL) {
      reply(ACTOR__FS_FAILED, q.id, -ENOMEM, 0, "out of memory");
      goto out;
    }
    S.kids = nk;
    S.capkids = cap;
  }
  python = q.kind != ACTOR__FS_C;
  if (!python) {
    q.cfn = c_entry_find(q.entry, why, sizeof(why));
    if (q.cfn == NULL) {
      reply(ACTOR__FS_FAILED, q.id, -ENOENT, 0, why);
      goto out;
    }
  } else if (!S.python) {
    if (worker_python(ts, why, sizeof(why))) {
      reply(ACTOR__FS_FAILED, q.id, ACTOR_EUNAVAIL, 0, why);
      goto out;
    }
    note_signals();
  } else if (worker_python(ts, why, sizeof(why))) {
    reply(ACTOR__FS_FAILED, q.id, ACTOR_EUNAVAIL, 0, why);
    goto out;
  }

#ifdef ACTOR_FS_PYTHON
  if (python) {
    PyEval_RestoreThread(*ts);
    PyOS_BeforeFork();
  }
#endif
  pid = fork();
  if (pid == 0) {
    child_common(&q, self);
    if (!python)
      child_c(&q);
#ifdef ACTOR_FS_PYTHON
    if (q.kind == ACTOR__FS_PY)
      py_child_main(&q);
    py_child_subint(&q);
#endif
    _exit(117);
  }
#ifdef ACTOR_FS_PYTHON
  if (python) {
    PyOS_AfterFork_Parent();
    PyEval_SaveThread();
  }
#endif
  if (pid < 0) {
    reply(ACTOR__FS_FAILED, q.id, -errno, 0, "fork failed");
    goto out;
  }
  pidfd = pidfd_open(pid, 0);
  if (pidfd < 0) {
    int e = errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    reply(ACTOR__FS_FAILED, q.id, -e, 0, "cannot watch the child (pidfd)");
    goto out;
  }
  kd = &S.kids[S.nkids++];
  kd->id = q.id;
  kd->pid = pid;
  kd->pidfd = pidfd;
  kd->signalled = 0;
  reply(ACTOR__FS_SPAWNED, q.id, pid, 0, NULL);
out:
  req_free(&q);
}

/* The group of an unreaped child: its pid, which is its group id, names
 * nobody else while the leader is alive or a zombie, and only we reap. */
static void do_signal(uint32_t id, int sig) {
  struct kid *k = kid_find(id);
  if (k == NULL || (sig != SIGTERM && sig != SIGKILL && sig != SIGINT))
    return;
  k->signalled = 1;
  kill(-k->pid, sig);
}

static void reap(size_t i) {
  struct kid *k = &S.kids[i];
  siginfo_t si;
  uint32_t id;
  int r;

  memset(&si, 0, sizeof(si));
  if (k->signalled) {
    /* Ended on request: what is left of its group goes too, before the
     * leader is reaped and the group id freed. */
    r = waitid(P_PIDFD, (id_t)k->pidfd, &si, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && si.si_pid == 0)
      return;
    if (r == 0)
      kill(-k->pid, SIGKILL);
    memset(&si, 0, sizeof(si));
  }
  r = waitid(P_PIDFD, (id_t)k->pidfd, &si, WEXITED | WNOHANG);
  if (r == 0 && si.si_pid == 0)
    return;
  if (r < 0 && errno == EINTR)
    return;
  /* Forgotten before the host hears of it: what it sees next is a
   * server without this child. */
  id = k->id;
  close(k->pidfd);
  S.kids[i] = S.kids[--S.nkids];
  if (r < 0)
    reply(ACTOR__FS_EXIT, id, -1, 0, NULL);
  else if (si.si_code == CLD_EXITED)
    reply(ACTOR__FS_EXIT, id, si.si_status, 0, NULL);
  else
    reply(ACTOR__FS_EXIT, id, -1, si.si_status, NULL);
}

/* The host is gone or closed us: no child outlives the server. */
static void kill_all(void) {
  siginfo_t si;
  size_t i;
  for (i = 0; i < S.nkids; i++)
    kill(-S.kids[i].pid, SIGKILL);
  for (i = 0; i < S.nkids; i++) {
    while (waitid(P_PIDFD, (id_t)S.kids[i].pidfd, &si, WEXITED) < 0 &&
           errno == EINTR)
      ;
    close(S.kids[i].pidfd);
  }
  S.nkids = 0;
}

/* One control packet; 1 when the server should end. */
static int on_packet(ssize_t n, int *fds, int nfds, void **ts) {
  msgpack_unpacked u;
  const msgpack_object *it;
  size_t cnt;
  int kind;

  if (actor__fs_decode(S.buf, (size_t)n, &u, &it, &cnt, &kind)) {
    msgpack_unpacked_destroy(&u);
    actor__fs_close_fds(fds, nfds);
    reply(ACTOR__FS_FATAL, 0, 0, 0, "malformed control message");
    return 1;
  }
  if (kind == ACTOR__FS_SPAWN)
    do_spawn(it, cnt, fds, nfds, ts); /* takes the descriptors */
  else if (kind == ACTOR__FS_SIGNAL)
    do_signal((uint32_t)actor__fs_int(it, cnt, 1),
              (int)actor__fs_int(it, cnt, 2));
  if (kind != ACTOR__FS_SPAWN)
    actor__fs_close_fds(fds, nfds);
  msgpack_unpacked_destroy(&u);
  return 0;
}

static void *worker(void *arg) {
  struct pollfd *pfd = NULL;
  void *ts = NULL;
  size_t i, cap = 0;
  ssize_t n;
  int fds[ACTOR__FS_MAX_FDS], nfds, quit = 0;

  (void)arg;
  if (S.python) {
    /* The thread state the forks are made with, from the start. */
    char why[256];
    (void)worker_python(&ts, why, sizeof(why));
  }
  while (!quit) {
    if (cap < S.nkids + 1) {
      cap = 2 * (S.nkids + 1);
      struct pollfd *np = realloc(pfd, cap * sizeof(*np));
      if (np == NULL) {
        usleep(10000);
        continue;
      }
      pfd = np;
    }
    pfd[0].fd = CTL_FD;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    for (i = 0; i < S.nkids; i++) {
      pfd[i + 1].fd = S.kids[i].pidfd;
      pfd[i + 1].events = POLLIN;
      pfd[i + 1].revents = 0;
    }
    if (poll(pfd, S.nkids + 1, -1) < 0)
      continue;
    /* Exits first (the table shrinks from the back: walk down). */
    for (i = S.nkids; i > 0; i--)
      if (pfd[i].revents != 0 && pfd[i].fd == S.kids[i - 1].pidfd)
        reap(i - 1);
    if (pfd[0].revents == 0)
      continue;
    for (;;) {
      n = actor__fs_recv(CTL_FD, S.buf, ACTOR__FS_MAX_PACKET, fds, &nfds, 0);
      if (n == -EAGAIN)
        break;
      if (n <= 0) {
        actor__fs_close_fds(fds, nfds);
        quit = 1;
        break;
      }
      if (on_packet(n, fds, nfds, &ts)) {
        quit = 1;
        break;
      }
    }
  }
  kill_all();
  free(pfd);
  pthread_mutex_lock(&S.mu);
  S.worker_done = 1;
  pthread_cond_broadcast(&S.cv);
  pthread_mutex_unlock(&S.mu);
  return NULL;
}

/* ---- main -------------------------------------------------------------------------- */

static int usage(void) {
  fprintf(stderr, "usage: actor-forkserver -H HOSTPID [-P] [-p DIR]... "
                  "[-m MODULE]... [-l LIB]...\n"
                  "(started by a libactor runtime, not by hand)\n");
  return 2;
}

int main(int argc, char **argv) {
  pthread_t t;
  char why[512];
  int i, python = 0, fail = 0;
  char **libs;
  size_t nlibs = 0;

  libs = calloc((size_t)argc, sizeof(*libs));
  S.paths = calloc((size_t)argc, sizeof(char *));
  S.modules = calloc((size_t)argc, sizeof(char *));
  if (libs == NULL || S.paths == NULL || S.modules == NULL)
    return 2;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-P") == 0)
      python = 1;
    else if (i + 1 >= argc)
      return usage();
    else if (strcmp(argv[i], "-H") == 0)
      S.host_pid = atoi(argv[++i]);
    else if (strcmp(argv[i], "-p") == 0)
      S.paths[S.npaths++] = argv[++i];
    else if (strcmp(argv[i], "-m") == 0)
      S.modules[S.nmodules++] = argv[++i], python = 1;
    else if (strcmp(argv[i], "-l") == 0)
      libs[nlibs++] = argv[++i];
    else
      return usage();
  }
  if (S.host_pid <= 0 || fcntl(CTL_FD, F_GETFD) < 0)
    return usage();
  /* Die with the host (the thread of its loop, strictly), and check it
   * did not die before the prctl. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != S.host_pid)
    return 3;
  fcntl(CTL_FD, F_SETFD, FD_CLOEXEC);
  S.buf = malloc(ACTOR__FS_MAX_PACKET);
  if (S.buf == NULL)
    return 2;

  for (i = 0; i < (int)nlibs && !fail; i++)
    if (lib_open(libs[i], why, sizeof(why)) == NULL)
      fail = 1;
#ifdef ACTOR_FS_PYTHON
  if (!fail && python && py_start() != 0) {
    snprintf(why, sizeof(why), "%s", S.py_why);
    fail = 1;
  }
#else
  /* Without Python the server still serves C entries; only a preload it
   * cannot honour is fatal (Python spawns fail one by one). */
  (void)python;
  if (!fail && S.nmodules > 0) {
    snprintf(why, sizeof(why), "cannot preload '%s': this fork server was "
             "built without Python (ACTOR_WITH_PYTHON=OFF)", S.modules[0]);
    fail = 1;
  }
#endif
  if (fail) {
    reply(ACTOR__FS_FATAL, 0, 0, 0, why);
    _exit(2);
  }

  note_signals();
  if (pthread_create(&t, NULL, worker, NULL) != 0)
    return 2;
  pthread_mutex_lock(&S.mu);
  while (!S.worker_done) {
    if (S.py_start == 1) {
      pthread_mutex_unlock(&S.mu);
#ifdef ACTOR_FS_PYTHON
      S.py_err = py_start() != 0;
#else
      S.py_err = 1;
#endif
      pthread_mutex_lock(&S.mu);
      S.py_start = 2;
      pthread_cond_broadcast(&S.cv);
      continue;
    }
    pthread_cond_wait(&S.cv, &S.mu);
  }
  pthread_mutex_unlock(&S.mu);
  pthread_join(t, NULL);
  /* No Py_Finalize, no leak report: the process ends here. */
  fflush(stdout);
  fflush(stderr);
  _exit(0);
}
