/* actor_subint_fork_probe(): does CPython still refuse fork() from a
 * sub-interpreter?  (libactor-python; the core answers ACTOR_EUNAVAIL.)
 *
 * The experiment kills a forked child on purpose and leaves CPython's
 * runtime state of the forking process in a shape nobody should keep using,
 * so it never runs in the caller's process: it runs the subint-fork-probe
 * tool (tools/subint_fork_probe.c) as a sacrificial process and reads its
 * report.  The tool embeds its own CPython (it links libpython), so the
 * answer is about the CPython the tool was built against — the one this
 * library was built against.
 *
 * The tool is a helper program: found through $LIBACTOR_SUBINT_FORK_PROBE,
 * else in the helper directory (src/spawn/helper.h).
 *
 * Hygiene: started with posix_spawn in a process group of its own, stdin
 * /dev/null, stdout and stderr into one close-on-exec pipe, our other fds
 * closed, signal mask and SIGCHLD/SIGPIPE dispositions reset.  Everything is
 * bounded (PROBE_TIMEOUT_MS): past it the whole group is SIGKILLed.  The
 * group is also SIGKILLed once the tool has exited but before it is reaped
 * (its pid, hence the group id, cannot be reused while it is a zombie), so
 * no grandchild survives it.  The tool is always reaped and the pipe always
 * closed before returning.
 *
 * No Python API is used here: nothing in this file needs the GIL, and it may
 * be called from any thread. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libactor/actor.h"
#include "spawn/backend.h"
#include "spawn/helper.h"

extern char **environ;

#define PROBE_ENV "LIBACTOR_SUBINT_FORK_PROBE"
#define PROBE_NAME "subint-fork-probe"
#define PROBE_TIMEOUT_MS 20000
#define PROBE_OUT_MAX (64 * 1024)
#define PROBE_EVIDENCE_MAX 4096

struct probe_run {
  char *out; /* stdout + stderr of the tool, NUL-terminated */
  size_t len;
  int eof;
  int timed_out;
  int reaped;   /* we know how it ended */
  int wstatus;
};

static uint64_t probe_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int probe_left_ms(uint64_t deadline) {
  uint64_t t = probe_now_ms();
  return t >= deadline ? 0 : (int)(deadline - t);
}

static const char *probe_path(char *buf, size_t n) {
  return actor__helper_path(PROBE_NAME, PROBE_ENV, buf, n);
}

static void probe_read(struct probe_run *r, int fd, uint64_t deadline) {
  char tmp[4096];
  struct pollfd pfd;
  ssize_t n;
  int k;

  while (!r->eof) {
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    k = poll(&pfd, 1, probe_left_ms(deadline));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return;
    n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0) {
      r->eof = 1;
      return;
    }
    if (r->len + (size_t)n > PROBE_OUT_MAX)
      n = (ssize_t)(PROBE_OUT_MAX - r->len); /* keep reading, drop the rest */
    memcpy(r->out + r->len, tmp, (size_t)n);
    r->len += (size_t)n;
    r->out[r->len] = '\0';
  }
}

/* Wait (without reaping) until the tool has exited, up to the deadline;
 * then kill what is left of its group and reap it. */
static void probe_finish(struct probe_run *r, pid_t pid, uint64_t deadline) {
  siginfo_t si;
  pid_t w;
  int k;

  for (;;) {
    memset(&si, 0, sizeof(si));
    k = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
    if (k == 0 && si.si_pid == pid)
      break; /* exited: a zombie now */
    if (k < 0 && errno == ECHILD)
      goto gone; /* reaped behind our back (SIGCHLD ignored by the host) */
    if (k < 0 && errno != EINTR)
      break;
    if (probe_left_ms(deadline) == 0) {
      r->timed_out = 1;
      break;
    }
    usleep(2000);
  }
  /* A zombie keeps its pid and group: this reaches only what the tool left
   * behind (a grandchild it could not reap), or the tool itself if it is
   * still running past the deadline. */
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  do
    w = waitpid(pid, &r->wstatus, 0);
  while (w < 0 && errno == EINTR);
  if (w == pid) {
    r->reaped = 1;
    return;
  }
gone:
  r->reaped = 0;
}

/* Run the tool; 0 with its output in *r, or -errno if it could not start. */
static int probe_run(const char *path, struct probe_run *r) {
  char *argv[] = {(char *)path, "--mode", "subint", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, dflt;
  uint64_t deadline;
  int pfd[2], e;
  pid_t pid;

  memset(r, 0, sizeof(*r));
  r->out = malloc(PROBE_OUT_MAX + 1);
  if (r->out == NULL)
    return -ENOMEM;
  r->out[0] = '\0';
  if (pipe2(pfd, O_CLOEXEC)) {
    e = -errno;
    free(r->out);
    r->out = NULL;
    return e;
  }

  posix_spawn_file_actions_init(&fa);
  /* dup2 first: if our stdio was closed, the pipe may sit on fd 0..2. */
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  posix_spawnattr_init(&at);
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGCHLD); /* the tool must be able to reap its child */
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dflt);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  if (strchr(path, '/') != NULL)
    e = posix_spawn(&pid, path, &fa, &at, argv, environ);
  else
    e = posix_spawnp(&pid, path, &fa, &at, argv, environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  if (e != 0) {
    close(pfd[0]);
    free(r->out);
    r->out = NULL;
    return -e;
  }

  deadline = probe_now_ms() + PROBE_TIMEOUT_MS;
  probe_read(r, pfd[0], deadline);
  if (!r->eof) {
    /* Past the deadline with the pipe still open: end the whole group,
     * then take what it wrote (the pipe closes as its holders die). */
    r->timed_out = 1;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    probe_read(r, pfd[0], probe_now_ms() + 2000);
  }
  close(pfd[0]);
  probe_finish(r, pid, r->timed_out ? probe_now_ms() : deadline);
  return 0;
}

/* The value of the first "key: value" line with this key, or NULL. */
static const char *probe_field(const char *out, const char *key, int *len) {
  size_t kl = strlen(key);
  const char *p = out, *e;
  while (p != NULL && *p != '\0') {
    if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ') {
      p += kl + 2;
      e = strchr(p, '\n');
      *len = e ? (int)(e - p) : (int)strlen(p);
      return p;
    }
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
  return NULL;
}

static void probe_status(const struct probe_run *r, char *buf, size_t n) {
  if (!r->reaped)
    snprintf(buf, n, "%s", r->timed_out ? "killed after the deadline"
                                        : "status unknown");
  else if (WIFEXITED(r->wstatus))
    snprintf(buf, n, "exit %d%s", WEXITSTATUS(r->wstatus),
             r->timed_out ? ", after the deadline" : "");
  else if (WIFSIGNALED(r->wstatus))
    snprintf(buf, n, "signal %d%s", WTERMSIG(r->wstatus),
             r->timed_out ? " (killed after the deadline)" : "");
  else
    snprintf(buf, n, "wait status 0x%x", (unsigned)r->wstatus);
}

/* Evidence: the tool's summary first, then its report minus the header
 * lines, under a line naming the tool and how it ended. */
static void probe_evidence(const char *path, const struct probe_run *r,
                           const char *verdict, char *ev, size_t n) {
  const char *sum, *p, *e;
  char st[96];
  size_t k = 0;
  int sl = 0, w;

  if (ev == NULL || n == 0)
    return;
  ev[0] = '\0';
  probe_status(r, st, sizeof(st));
#define EV_ADD(...)                                                            \
  do {                                                                         \
    w = snprintf(ev + k, n - k, __VA_ARGS__);                                  \
    if (w < 0 || (size_t)w >= n - k) {                                         \
      k = n - 1;                                                               \
      goto done;                                                               \
    }                                                                          \
    k += (size_t)w;                                                            \
  } while (0)
  sum = probe_field(r->out, "summary", &sl);
  if (sum != NULL)
    EV_ADD("%.*s\n", sl, sum);
  else
    EV_ADD("%s\n", verdict);
  EV_ADD("probe-tool: %s (%s)\n", path, st);
  for (p = r->out; *p != '\0'; p = *e ? e + 1 : e) {
    e = strchr(p, '\n');
    if (e == NULL)
      e = p + strlen(p);
    if (e == p || strncmp(p, "summary: ", 9) == 0 ||
        strncmp(p, "probe: ", 7) == 0 || strncmp(p, "python-build: ", 14) == 0)
      continue;
    EV_ADD("%.*s\n", (int)(e - p), p);
  }
#undef EV_ADD
done:
  /* Drop a trailing newline. */
  if (k > 0 && k < n && ev[k - 1] == '\n')
    ev[k - 1] = '\0';
  ev[n - 1] = '\0';
}

int actor_subint_fork_probe(int *blocked, char *evidence, size_t len) {
  char pathbuf[4096], why[600], st[96];
  const char *path, *res;
  struct probe_run r;
  int rl = 0, rc, b = 1; /* blocked until the experiment says otherwise */

  if (blocked != NULL)
    *blocked = 1;
  if (evidence != NULL && len > 0)
    evidence[0] = '\0';
  path = probe_path(pathbuf, sizeof(pathbuf));
  rc = probe_run(path, &r);
  if (rc != 0) {
    if (evidence != NULL && len > 0)
      snprintf(evidence, len,
               "the subint-fork-probe tool could not be started (%s): %s "
               "(set $" PROBE_ENV " to its path)",
               path, strerror(-rc));
    return rc;
  }

  res = probe_field(r.out, "result", &rl);
  if (r.timed_out) {
    /* Even with a verdict printed, a tool that hung after it is not to be
     * trusted. */
    rc = -ETIMEDOUT;
  } else if (res != NULL && rl == 7 && strncmp(res, "blocked", 7) == 0) {
    rc = 0;
  } else if (res != NULL && rl == 11 && strncmp(res, "not-blocked", 11) == 0) {
    rc = 0;
    b = 0;
  } else if (r.len == 0 && r.reaped && WIFEXITED(r.wstatus) &&
             WEXITSTATUS(r.wstatus) == 127) {
    /* posix_spawn could not report the failed exec (under valgrind, for
     * one): the child's 127 means "not found". */
    free(r.out);
    if (evidence != NULL && len > 0)
      snprintf(evidence, len,
               "the subint-fork-probe tool could not be executed (%s): exit "
               "127 (set $" PROBE_ENV " to its path)",
               path);
    return -ENOENT;
  } else {
    rc = ACTOR_EPYTHON;
  }

  if (rc == 0) {
    if (blocked != NULL)
      *blocked = b;
    probe_evidence(path, &r,
                   b ? "fork() from a sub-interpreter is refused"
                     : "fork() from a sub-interpreter works",
                   evidence, len);
  } else {
    probe_status(&r, st, sizeof(st));
    snprintf(why, sizeof(why), "the probe did not reach a verdict (%.400s, %s)",
             path, st);
    /* The tool's own summary, when it has one, says why ("the probe could
     * not run: ..."); otherwise `why` heads the evidence. */
    probe_evidence(path, &r, why, evidence, len);
  }
  free(r.out);
  return rc;
}

/* ---- once per process ------------------------------------------------------ */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_cached_rc;
static int probe_cached_blocked = 1;
static char probe_cached_evidence[PROBE_EVIDENCE_MAX];
static atomic_int probe_done;

static void probe_run_once(void) {
  probe_cached_rc = actor_subint_fork_probe(
      &probe_cached_blocked, probe_cached_evidence,
      sizeof(probe_cached_evidence));
  atomic_store(&probe_done, 1);
}

int actor__subint_fork_probe_cached(int *blocked, const char **evidence) {
  pthread_once(&probe_once, probe_run_once);
  if (blocked != NULL)
    *blocked = probe_cached_blocked;
  if (evidence != NULL)
    *evidence = probe_cached_evidence;
  return probe_cached_rc;
}

/* The cached result if the probe has run, without ever running it: the
 * backend's available() is called on the loop thread, which must not wait
 * for a probe (up to 20 s). */
int actor__subint_fork_probe_peek(int *blocked, const char **evidence) {
  if (!atomic_load(&probe_done))
    return ACTOR_EUNAVAIL;
  return actor__subint_fork_probe_cached(blocked, evidence);
}
