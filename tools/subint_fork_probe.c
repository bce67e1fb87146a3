/* subint-fork-probe — does CPython still refuse fork() from a sub-interpreter?
 *
 *   subint-fork-probe [--mode subint|main|main-live-subint] [--timeout-ms N]
 *
 * Runs the experiment behind the `subint_fork` backend's refusal in this
 * (sacrificial) process and reports what happened to the forked child
 * (docs/cpython-subint-fork.md):
 *
 *   1. Py_InitializeFromConfig (isolated, install_signal_handlers = 0,
 *      no site), then release the GIL.
 *   2. A pthread creates a thread state of the MAIN interpreter and attaches
 *      it, then creates a sub-interpreter with Py_NewInterpreterFromConfig
 *      and a legacy config that allows fork (shared GIL, main obmalloc).
 *   3. With that sub-interpreter's thread state current, fork the way
 *      os.fork() does: PyOS_BeforeFork(); fork(); PyOS_AfterFork_Child() in
 *      the child, PyOS_AfterFork_Parent() in the parent.  The child's stderr
 *      is a pipe set up by the parent before the fork (the child redirects
 *      nothing); if PyOS_AfterFork_Child() returns, the child writes
 *      "CHILD SURVIVED" there and _exit(0)s.
 *   4. The parent reads the pipe and reaps the child, both bounded
 *      (--timeout-ms, default 10000; then SIGKILL), ends the sub-interpreter,
 *      drops its main thread state, joins, Py_FinalizeEx().
 *
 * Modes (step 3):
 *   subint            fork with the sub-interpreter's thread state current
 *                     (the default; what the subint_fork backend needs)
 *   main              control: fork from the same worker thread with the
 *                     main interpreter's thread state, no sub-interpreter
 *   main-live-subint  fork with the main interpreter's thread state while
 *                     the sub-interpreter is alive (CPython gh-139759)
 *
 * Output (stdout): "key: value" lines, then a one-line summary.
 *   probe: subint-fork-probe 1
 *   mode: subint
 *   python: 3.14.8
 *   python-build: 3.14.8 (main, ...) [GCC ...]
 *   child-pid: 12345
 *   child-status: exit 1 | signal 6 (SIGABRT) | hung (killed after N ms)
 *   child-survived: no
 *   gate-message: yes            ("not main interpreter" in its stderr)
 *   child-stderr: Fatal Python error: _PyInterpreterState_DeleteExceptMain: not main interpreter
 *   child-stderr: ...            (one line each, at most 40)
 *   result: blocked | not-blocked          (mode subint)
 *   result: survived | died                (the other modes)
 *   summary: ...
 * "blocked": the child did not survive PyOS_AfterFork_Child (it died or hung
 * there; the "CHILD SURVIVED" marker comes right after it).
 *
 * Exit status: 0 when the experiment ran (whatever its result), 2 when it
 * could not (bad arguments, Python or the sub-interpreter failed to start,
 * pipe/fork failed); then "result: error" and "error: ..." say why. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBE_VERSION 1
#define MARKER "CHILD SURVIVED"
#define GATE_TEXT "not main interpreter"
#define OUT_MAX (64 * 1024)
#define MAX_STDERR_LINES 40

enum mode { MODE_SUBINT, MODE_MAIN, MODE_MAIN_LIVE_SUBINT };
static const char *const mode_names[] = {"subint", "main", "main-live-subint"};

struct probe {
  enum mode mode;
  int timeout_ms;
  PyInterpreterState *main_interp;

  int ran;        /* the child was forked and reaped */
  char err[256];  /* why the experiment could not run */
  pid_t pid;
  int reaped;
  int wstatus;
  int hung;       /* still alive at the deadline: SIGKILLed */
  int saw_eof;
  char out[OUT_MAX + 1]; /* the child's stderr */
  size_t outlen;
  int truncated;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int left_ms(uint64_t deadline) {
  uint64_t t = now_ms();
  return t >= deadline ? 0 : (int)(deadline - t);
}

/* Read what the child writes to its stderr until EOF or the deadline. */
static void read_until(struct probe *p, int fd, uint64_t deadline) {
  char tmp[4096];
  struct pollfd pfd;
  ssize_t n;
  int r;

  while (!p->saw_eof) {
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    r = poll(&pfd, 1, left_ms(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return; /* deadline (or poll failed) */
    n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0) {
      p->saw_eof = 1;
      return;
    }
    if (p->outlen + (size_t)n > OUT_MAX) {
      p->truncated = 1;
      n = (ssize_t)(OUT_MAX - p->outlen);
    }
    memcpy(p->out + p->outlen, tmp, (size_t)n);
    p->outlen += (size_t)n;
    p->out[p->outlen] = '\0';
  }
}

/* Reap the child, waiting until the deadline; past it, SIGKILL and reap. */
static void reap(struct probe *p, uint64_t deadline) {
  pid_t r;
  for (;;) {
    r = waitpid(p->pid, &p->wstatus, WNOHANG);
    if (r == p->pid) {
      p->reaped = 1;
      return;
    }
    if (r < 0 && errno != EINTR) {
      snprintf(p->err, sizeof(p->err), "waitpid(%d): %s", (int)p->pid,
               strerror(errno));
      return;
    }
    if (left_ms(deadline) == 0)
      break;
    usleep(5000);
  }
  p->hung = 1;
  kill(p->pid, SIGKILL);
  do
    r = waitpid(p->pid, &p->wstatus, 0);
  while (r < 0 && errno == EINTR);
  p->reaped = r == p->pid;
}

/* Called with the GIL held and the thread state to fork from current. */
static void do_fork(struct probe *p) {
  int ep[2], saved, e;
  uint64_t deadline;
  pid_t pid;

  if (pipe2(ep, O_CLOEXEC)) {
    snprintf(p->err, sizeof(p->err), "pipe2: %s", strerror(errno));
    return;
  }
  /* Nothing buffered may be flushed twice: the child may exit() (that is
   * how Py_ExitStatusException ends it), which flushes stdio. */
  fflush(stdout);
  fflush(stderr);
  /* The child's stderr is the pipe from its first instruction: point our
   * fd 2 at it across the fork, and restore it in the parent right after. */
  saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (saved < 0 || dup2(ep[1], 2) < 0) {
    snprintf(p->err, sizeof(p->err), "redirecting stderr: %s",
             strerror(errno));
    if (saved >= 0)
      close(saved);
    close(ep[0]);
    close(ep[1]);
    return;
  }

  /* Exactly what os.fork() does around fork(). */
  PyOS_BeforeFork();
  pid = fork();
  if (pid == 0) {
    static const char msg[] = MARKER "\n";
    PyOS_AfterFork_Child();
    /* Still here: CPython let the child live. */
    if (write(2, msg, sizeof(msg) - 1) < 0) {
      /* nothing to do: the missing marker reports it */
    }
    _exit(0);
  }
  e = errno;
  PyOS_AfterFork_Parent();
  dup2(saved, 2);
  close(saved);
  close(ep[1]); /* the child holds the only write end now */
  if (pid < 0) {
    close(ep[0]);
    snprintf(p->err, sizeof(p->err), "fork: %s", strerror(e));
    return;
  }
  p->pid = pid;

  Py_BEGIN_ALLOW_THREADS
  deadline = now_ms() + (uint64_t)p->timeout_ms;
  read_until(p, ep[0], deadline);
  if (!p->saw_eof) {
    /* Hung with the pipe open: kill it, then take what it wrote. */
    p->hung = 1;
    kill(pid, SIGKILL);
    read_until(p, ep[0], now_ms() + 1000);
  }
  reap(p, p->hung ? now_ms() + 1000 : deadline);
  Py_END_ALLOW_THREADS
  close(ep[0]);
  p->ran = p->reaped;
}

static void *worker(void *arg) {
  struct probe *p = arg;
  PyThreadState *mts, *sts = NULL;
  PyStatus st;

  /* A main-interpreter thread state of this thread, attached. */
  mts = PyThreadState_New(p->main_interp);
  if (mts == NULL) {
    snprintf(p->err, sizeof(p->err), "PyThreadState_New failed");
    return NULL;
  }
  PyEval_RestoreThread(mts);

  if (p->mode != MODE_MAIN) {
    /* Legacy: the configuration under which os.fork() is allowed in a
     * sub-interpreter at all (an isolated one refuses fork outright). */
    const PyInterpreterConfig cfg = {
        .use_main_obmalloc = 1,
        .allow_fork = 1,
        .allow_exec = 1,
        .allow_threads = 1,
        .allow_daemon_threads = 1,
        .check_multi_interp_extensions = 0,
        .gil = PyInterpreterConfig_SHARED_GIL,
    };
    st = Py_NewInterpreterFromConfig(&sts, &cfg);
    if (PyStatus_Exception(st) || sts == NULL) {
      snprintf(p->err, sizeof(p->err), "Py_NewInterpreterFromConfig: %s",
               st.err_msg ? st.err_msg : "failed");
      /* On failure the previous thread state (mts) is current again. */
      sts = NULL;
      goto out;
    }
    /* sts is current now; mts is swapped out (same GIL). */
    if (p->mode == MODE_MAIN_LIVE_SUBINT)
      PyThreadState_Swap(mts);
  }

  do_fork(p);

  if (sts != NULL) {
    if (p->mode == MODE_MAIN_LIVE_SUBINT)
      PyThreadState_Swap(sts);
    /* Needs sts current; returns with no thread state and no GIL. */
    Py_EndInterpreter(sts);
    PyEval_RestoreThread(mts);
  }
out:
  PyThreadState_Clear(mts);
  PyThreadState_DeleteCurrent(); /* also releases the GIL */
  return NULL;
}

/* ---- report ------------------------------------------------------------- */

static void describe_status(const struct probe *p, char *buf, size_t n) {
  const char *abbrev;
  int sig;
  if (p->hung) {
    snprintf(buf, n, "hung (killed by the probe after %d ms)", p->timeout_ms);
  } else if (!p->reaped) {
    snprintf(buf, n, "unknown");
  } else if (WIFEXITED(p->wstatus)) {
    snprintf(buf, n, "exit %d", WEXITSTATUS(p->wstatus));
  } else if (WIFSIGNALED(p->wstatus)) {
    sig = WTERMSIG(p->wstatus);
    abbrev = sigabbrev_np(sig);
    snprintf(buf, n, "signal %d (SIG%s)%s", sig, abbrev ? abbrev : "?",
             WCOREDUMP(p->wstatus) ? ", core dumped" : "");
  } else {
    snprintf(buf, n, "wait status 0x%x", (unsigned)p->wstatus);
  }
}

/* The first line of the child's stderr that contains `needle`. */
static int find_line(const struct probe *p, const char *needle,
                     const char **start, int *len) {
  const char *s = p->out, *hit = strstr(s, needle), *b, *e;
  if (hit == NULL)
    return 0;
  b = hit;
  while (b > s && b[-1] != '\n')
    b--;
  e = strchr(hit, '\n');
  if (e == NULL)
    e = s + p->outlen;
  *start = b;
  *len = (int)(e - b);
  return 1;
}

static void print_stderr_lines(const struct probe *p) {
  const char *s = p->out, *e;
  int lines = 0, more = 0;
  while (*s != '\0') {
    e = strchr(s, '\n');
    if (e == NULL)
      e = s + strlen(s);
    if (e > s) {
      if (lines < MAX_STDERR_LINES)
        printf("child-stderr: %.*s\n", (int)(e - s), s);
      else
        more++;
      lines++;
    }
    s = *e ? e + 1 : e;
  }
  if (more > 0 || p->truncated)
    printf("child-stderr-omitted: %d more line(s)%s\n", more,
           p->truncated ? ", output truncated" : "");
}

static void version_of(char *buf, size_t n) {
  const char *v = Py_GetVersion();
  size_t k = strcspn(v, " ");
  snprintf(buf, n, "%.*s", (int)k, v);
}

static int report(const struct probe *p, const char *pyver,
                  const char *pybuild) {
  char status[128];
  const char *fatal = NULL;
  int fatal_len = 0, survived, gate;

  printf("probe: subint-fork-probe %d\n", PROBE_VERSION);
  printf("mode: %s\n", mode_names[p->mode]);
  printf("python: %s\n", pyver[0] ? pyver : "unknown");
  printf("python-build: %s\n", pybuild[0] ? pybuild : "unknown");
  if (!p->ran) {
    printf("result: error\n");
    printf("error: %s\n", p->err[0] ? p->err : "the experiment did not run");
    printf("summary: the probe could not run: %s\n",
           p->err[0] ? p->err : "unknown reason");
    return 2;
  }

  describe_status(p, status, sizeof(status));
  survived = !p->hung && p->reaped && WIFEXITED(p->wstatus) &&
             WEXITSTATUS(p->wstatus) == 0 && strstr(p->out, MARKER) != NULL;
  gate = strstr(p->out, GATE_TEXT) != NULL;
  if (!find_line(p, "Fatal Python error", &fatal, &fatal_len))
    find_line(p, GATE_TEXT, &fatal, &fatal_len);

  printf("child-pid: %d\n", (int)p->pid);
  printf("child-status: %s\n", status);
  printf("child-survived: %s\n", survived ? "yes" : "no");
  printf("gate-message: %s\n", gate ? "yes" : "no");
  print_stderr_lines(p);

  switch (p->mode) {
  case MODE_SUBINT:
    printf("result: %s\n", survived ? "not-blocked" : "blocked");
    if (survived)
      printf("summary: the child survived PyOS_AfterFork_Child: CPython %s "
             "no longer refuses fork() from a sub-interpreter (the "
             "subint_fork backend could now be implemented)\n",
             pyver);
    else if (fatal != NULL)
      printf("summary: CPython %s still refuses fork() from a "
             "sub-interpreter: the child died in PyOS_AfterFork_Child "
             "(%s) with \"%.*s\"\n",
             pyver, status, fatal_len, fatal);
    else
      printf("summary: CPython %s still refuses fork() from a "
             "sub-interpreter: the child did not get past "
             "PyOS_AfterFork_Child (%s), without a fatal message\n",
             pyver, status);
    break;
  case MODE_MAIN:
    printf("result: %s\n", survived ? "survived" : "died");
    printf("summary: control: fork() from a worker thread attached to the "
           "main interpreter, no sub-interpreter alive: the child %s (%s)\n",
           survived ? "survived" : "died", status);
    break;
  case MODE_MAIN_LIVE_SUBINT:
    printf("result: %s\n", survived ? "survived" : "died");
    printf("summary: fork() from the main interpreter while a "
           "sub-interpreter is alive: the child %s (%s)%s\n",
           survived ? "survived" : "died", status,
           survived ? "" : "; CPython gh-139759");
    break;
  }
  return 0;
}

static int usage(FILE *f, int code) {
  fprintf(f, "usage: subint-fork-probe [--mode subint|main|main-live-subint] "
             "[--timeout-ms N]\n"
             "Checks whether CPython still refuses fork() from a "
             "sub-interpreter (docs/cpython-subint-fork.md).\n"
             "Exit status: 0 the experiment ran (see \"result:\"), 2 it "
             "could not.\n");
  return code;
}

int main(int argc, char **argv) {
  static struct probe p; /* large: the captured output */
  char pyver[64] = "", pybuild[256] = "";
  PyThreadState *main_ts;
  PyConfig cfg;
  PyStatus st;
  pthread_t th;
  char *end;
  long v;
  int i, r, code;

  p.mode = MODE_SUBINT;
  p.timeout_ms = 10000;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
      return usage(stdout, 0);
    if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
      const char *m = argv[++i];
      if (strcmp(m, "subint") == 0)
        p.mode = MODE_SUBINT;
      else if (strcmp(m, "main") == 0)
        p.mode = MODE_MAIN;
      else if (strcmp(m, "main-live-subint") == 0)
        p.mode = MODE_MAIN_LIVE_SUBINT;
      else
        return usage(stderr, 2);
    } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
      errno = 0;
      v = strtol(argv[++i], &end, 10);
      if (errno || *end != '\0' || v < 100 || v > 600000)
        return usage(stderr, 2);
      p.timeout_ms = (int)v;
    } else {
      return usage(stderr, 2);
    }
  }

  PyConfig_InitIsolatedConfig(&cfg);
  cfg.install_signal_handlers = 0;
  cfg.site_import = 0;
  st = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(st)) {
    snprintf(p.err, sizeof(p.err), "Py_InitializeFromConfig: %s",
             st.err_msg ? st.err_msg : "failed");
    return report(&p, pyver, pybuild);
  }
  version_of(pyver, sizeof(pyver));
  snprintf(pybuild, sizeof(pybuild), "%s", Py_GetVersion());
  for (end = pybuild; *end; end++)
    if (*end == '\n')
      *end = ' ';
  p.main_interp = PyInterpreterState_Main();

  main_ts = PyEval_SaveThread(); /* release the GIL for the worker */
  r = pthread_create(&th, NULL, worker, &p);
  if (r != 0)
    snprintf(p.err, sizeof(p.err), "pthread_create: %s", strerror(r));
  else
    pthread_join(th, NULL);
  PyEval_RestoreThread(main_ts);
  if (Py_FinalizeEx() < 0 && p.err[0] == '\0' && !p.ran)
    snprintf(p.err, sizeof(p.err), "Py_FinalizeEx failed");

  code = report(&p, pyver, pybuild);
  fflush(stdout);
  return code;
}
