/*
 * Test harness for libactor's cmocka tests: watchdog, leak checks, helpers.
 * See harness.h for the API.
 *
 * Two rules shape this file:
 *
 *  - The watchdog fires when something is stuck, and the stuck thread may
 *    hold any lock: stdio's (a thread blocked writing to a full stderr
 *    pipe), the allocator's, the dynamic loader's.  So the path from the
 *    deadline to _exit() avoids stdio and malloc: it reads directories with
 *    getdents64 into stack buffers, formats with snprintf into fixed
 *    buffers, and writes with write(2).  What it cannot avoid (posix_spawn
 *    for gdb, dladdr inside backtrace_symbols_fd) is bounded by timeouts.
 *
 *  - Directory walks use the raw getdents64 syscall rather than opendir(),
 *    for the reason above and because the leak check must know which fd it
 *    used itself to read /proc/self/fd.
 */
#define _GNU_SOURCE

#include "harness.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Signal used by the fallback stack dump.  SIGURG's default action is to
 * ignore it, so a stray late delivery cannot kill anything, and neither
 * libuv nor libactor uses it. */
#define TH_BT_SIGNAL SIGURG

/* Bounds of the watchdog's dump. */
#define TH_GDB_TIMEOUT_MS 20000
#define TH_BT_THREAD_TIMEOUT_MS 2000
#define TH_MAX_PROCS 8192
#define TH_MAX_TASKS 1024

/* How long th_assert_no_leaks() waits for things to go away. */
#define TH_LEAK_GRACE_MS 2000
#define TH_LEAK_POLL_MS 10

/* ------------------------------------------------------------------------ */
/* Small tools                                                              */
/* ------------------------------------------------------------------------ */

static int th__gettid(void) {
  return (int)syscall(SYS_gettid);
}

uint64_t th_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void th__sleep_ms(unsigned ms) {
  struct timespec ts;

  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Parse a non-negative decimal number that is the whole string; -1 if not. */
static int th__parse_int(const char *s) {
  long v;

  if (*s == '\0')
    return -1;
  for (v = 0; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
    if (v > INT_MAX)
      return -1;
  }
  return (int)v;
}

static void th__write_all(int fd, const char *p, size_t n) {
  ssize_t r;

  while (n > 0) {
    r = write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    p += r;
    n -= (size_t)r;
  }
}

/* snprintf + write: no FILE lock, no allocation. */
__attribute__((format(printf, 2, 3)))
static void th__fdprintf(int fd, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof(buf))
    n = (int)sizeof(buf) - 1;
  th__write_all(fd, buf, (size_t)n);
}

/* Read a small file into buf, NUL-terminated.  Returns the length or -1. */
static ssize_t th__read_file(const char *path, char *buf, size_t size) {
  ssize_t n;
  size_t len;
  int fd;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  len = 0;
  while (len + 1 < size) {
    n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

/* The comm of a thread or process, without the trailing newline. */
static void th__read_comm(const char *path, char *comm, size_t size) {
  ssize_t n;

  n = th__read_file(path, comm, size);
  if (n <= 0) {
    snprintf(comm, size, "?");
    return;
  }
  if (comm[n - 1] == '\n')
    comm[n - 1] = '\0';
}

/* Parse /proc/<pid>/stat: "pid (comm) S ppid ...".  comm may itself hold
 * spaces and parentheses, so it runs to the LAST ')'. */
static int th__proc_stat(int pid, int *ppid, char *state, char *comm,
                         size_t commsz) {
  char path[64];
  char buf[512];
  char *open_paren;
  char *close_paren;
  size_t len;

  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  if (th__read_file(path, buf, sizeof(buf)) <= 0)
    return -1;
  open_paren = strchr(buf, '(');
  close_paren = strrchr(buf, ')');
  if (open_paren == NULL || close_paren == NULL || close_paren < open_paren)
    return -1;
  if (sscanf(close_paren + 1, " %c %d", state, ppid) != 2)
    return -1;
  if (comm != NULL && commsz > 0) {
    len = (size_t)(close_paren - open_paren - 1);
    if (len >= commsz)
      len = commsz - 1;
    memcpy(comm, open_paren + 1, len);
    comm[len] = '\0';
  }
  return 0;
}

/* A bounded string builder for reports. */
struct th__buf {
  char *p;
  size_t size;
  size_t len;
};

__attribute__((format(printf, 2, 3)))
static void th__bprintf(struct th__buf *b, const char *fmt, ...) {
  va_list ap;
  int n;

  if (b->p == NULL || b->len + 1 >= b->size)
    return;
  va_start(ap, fmt);
  n = vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  b->len += (size_t)n;
  if (b->len >= b->size)
    b->len = b->size - 1;
}

/* ------------------------------------------------------------------------ */
/* Directory walks                                                          */
/* ------------------------------------------------------------------------ */

/* The kernel's record layout for getdents64.  Declared here because glibc
 * only exposes getdents64() from 2.30 on. */
struct th__dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

/* Called for each entry but "." and ".."; `dirfd` is the fd reading the
 * directory.  Returning non-zero stops the walk. */
typedef int (*th__dir_cb)(const char *name, int dirfd, void *arg);

static int th__dir_each(const char *path, th__dir_cb cb, void *arg) {
  char buf[4096] __attribute__((aligned(8)));
  struct th__dirent64 *d;
  long n;
  long off;
  int err;
  int fd;

  fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  err = 0;
  for (;;) {
    n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      err = -errno;
      break;
    }
    if (n == 0)
      break;
    for (off = 0; off < n; off += d->d_reclen) {
      d = (struct th__dirent64 *)(buf + off);
      if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
        continue;
      if (cb(d->d_name, fd, arg) != 0)
        goto done;
    }
  }
done:
  close(fd);
  return err;
}

/* ------------------------------------------------------------------------ */
/* Watchdog state                                                           */
/* ------------------------------------------------------------------------ */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* CLOCK_MONOTONIC; initialised with the thread */
  int started;             /* the watchdog thread exists */
  int atfork_registered;
  int armed;
  struct timespec deadline;
  unsigned seconds;
  int no_gdb;
  char name[128];
  char dir[PATH_MAX];
} th__wd = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* The watchdog thread's tid, 0 before it exists.  Read without the mutex by
 * the leak counters, hence atomic. */
static atomic_int th__wd_tid;

/* ------------------------------------------------------------------------ */
/* Leak snapshot                                                            */
/* ------------------------------------------------------------------------ */

static int th__snap_fd_cb(const char *name, int dirfd, void *arg) {
  struct th_snap *s;
  int fd;

  s = arg;
  fd = th__parse_int(name);
  if (fd < 0 || fd == dirfd)
    return 0;
  s->fds++;
  if (fd < TH_SNAP_MAX_FD)
    s->fdset[fd / 64] |= (uint64_t)1 << (fd % 64);
  else
    s->fds_high++;
  return 0;
}

static int th__snap_task_cb(const char *name, int dirfd, void *arg) {
  struct th_snap *s;
  int tid;

  (void)dirfd;
  s = arg;
  tid = th__parse_int(name);
  /* The watchdog thread is the harness's, not the test's: leave it out so
   * that counts taken before and after its creation compare equal. */
  if (tid <= 0 || tid == atomic_load(&th__wd_tid))
    return 0;
  if (s->threads < TH_SNAP_MAX_IDS)
    s->tids[s->threads] = tid;
  s->threads++;
  return 0;
}

static int th__snap_proc_cb(const char *name, int dirfd, void *arg) {
  struct th_snap *s;
  char state;
  int ppid;
  int pid;

  (void)dirfd;
  s = arg;
  pid = th__parse_int(name);
  if (pid <= 0)
    return 0;
  /* The process may be gone already; that is not an error. */
  if (th__proc_stat(pid, &ppid, &state, NULL, 0) != 0)
    return 0;
  if (ppid != getpid())
    return 0;
  if (s->children < TH_SNAP_MAX_IDS)
    s->child_pids[s->children] = pid;
  s->children++;
  return 0;
}

void th_snap_take(struct th_snap *s) {
  memset(s, 0, sizeof(*s));
  th__dir_each("/proc/self/fd", th__snap_fd_cb, s);
  th__dir_each("/proc/self/task", th__snap_task_cb, s);
  th__dir_each("/proc", th__snap_proc_cb, s);
}

static int th__count_cb(const char *name, int dirfd, void *arg) {
  int fd;

  fd = th__parse_int(name);
  if (fd >= 0 && fd != dirfd)
    (*(int *)arg)++;
  return 0;
}

int th_count_fds(void) {
  int n;

  n = 0;
  th__dir_each("/proc/self/fd", th__count_cb, &n);
  return n;
}

static int th__has_id(const int *ids, int n, int id) {
  int i;

  for (i = 0; i < n; i++)
    if (ids[i] == id)
      return 1;
  return 0;
}

int th_leaks(const struct th_snap *before, char *report, size_t n) {
  struct th_snap now;
  struct th__buf b;
  char path[64];
  char target[PATH_MAX];
  char comm[64];
  char state;
  ssize_t len;
  int leaks;
  int ppid;
  int fd;
  int i;

  b.p = report;
  b.size = n;
  b.len = 0;
  if (report != NULL && n > 0)
    report[0] = '\0';
  leaks = 0;
  th_snap_take(&now);

  /* File descriptors: compare the sets, so that closing an fd that existed
   * before does not hide a new one. */
  for (fd = 0; fd < TH_SNAP_MAX_FD; fd++) {
    uint64_t bit = (uint64_t)1 << (fd % 64);

    if ((now.fdset[fd / 64] & bit) == 0 || (before->fdset[fd / 64] & bit) != 0)
      continue;
    leaks++;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    len = readlink(path, target, sizeof(target) - 1);
    if (len < 0)
      snprintf(target, sizeof(target), "? (closed meanwhile)");
    else
      target[len] = '\0';
    th__bprintf(&b, "  leaked fd %d -> %s\n", fd, target);
  }
  if (now.fds_high > before->fds_high) {
    leaks += now.fds_high - before->fds_high;
    th__bprintf(&b, "  leaked %d fd(s) numbered %d or more\n",
                now.fds_high - before->fds_high, TH_SNAP_MAX_FD);
  }

  /* Threads.  With more than TH_SNAP_MAX_IDS of them only counts compare. */
  if (now.threads > TH_SNAP_MAX_IDS || before->threads > TH_SNAP_MAX_IDS) {
    if (now.threads > before->threads) {
      leaks += now.threads - before->threads;
      th__bprintf(&b, "  %d more thread(s) than before (%d -> %d)\n",
                  now.threads - before->threads, before->threads, now.threads);
    }
  } else {
    for (i = 0; i < now.threads; i++) {
      if (th__has_id(before->tids, before->threads, now.tids[i]))
        continue;
      leaks++;
      snprintf(path, sizeof(path), "/proc/self/task/%d/comm", now.tids[i]);
      th__read_comm(path, comm, sizeof(comm));
      th__bprintf(&b, "  leaked thread tid %d comm \"%s\"\n", now.tids[i],
                  comm);
    }
  }

  /* Child processes, zombies included: an unreaped child is a leak too. */
  if (now.children > TH_SNAP_MAX_IDS || before->children > TH_SNAP_MAX_IDS) {
    if (now.children > before->children) {
      leaks += now.children - before->children;
      th__bprintf(&b, "  %d more child process(es) than before (%d -> %d)\n",
                  now.children - before->children, before->children,
                  now.children);
    }
  } else {
    for (i = 0; i < now.children; i++) {
      if (th__has_id(before->child_pids, before->children, now.child_pids[i]))
        continue;
      leaks++;
      if (th__proc_stat(now.child_pids[i], &ppid, &state, comm,
                        sizeof(comm)) != 0) {
        state = '?';
        snprintf(comm, sizeof(comm), "?");
      }
      th__bprintf(&b, "  leaked child pid %d comm \"%s\" state %c\n",
                  now.child_pids[i], comm, state);
    }
  }
  if (report != NULL && n > 5 && b.len == n - 1)
    memcpy(report + n - 5, "...\n", 5);  /* say it was cut */
  return leaks;
}

/* Name of the test whose setup ran last, for messages. */
static char th__cur_name[128] = "?";

void th_assert_no_leaks(const struct th_snap *before) {
  char report[4096];
  uint64_t start;
  int n;

  start = th_now_ms();
  while (th_leaks(before, NULL, 0) > 0) {
    if (th_now_ms() - start >= TH_LEAK_GRACE_MS)
      break;
    th__sleep_ms(TH_LEAK_POLL_MS);
  }
  n = th_leaks(before, report, sizeof(report));
  if (n > 0)
    fail_msg("test '%s' leaked %d item(s):\n%s", th__cur_name, n, report);
}

/* ------------------------------------------------------------------------ */
/* Watchdog: the dump                                                       */
/* ------------------------------------------------------------------------ */

/* Look for gdb's frame lines ("#0 ") in what it appended to the dump, so
 * that a gdb that ran but could not attach (it exits 0 after "ptrace:
 * Operation not permitted.") counts as a failure and the fallback runs. */
static int th__dump_has_frames(int fd, off_t from) {
  char buf[8192 + 8];
  size_t keep;
  ssize_t n;

  keep = 0;
  for (;;) {
    n = pread(fd, buf + keep, sizeof(buf) - 8 - 1, from);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return 0;
    from += n;
    buf[keep + (size_t)n] = '\0';
    if (memmem(buf, keep + (size_t)n, "#0 ", 3) != NULL)
      return 1;
    /* Carry the tail over so a match split across reads is still seen. */
    if (keep + (size_t)n >= 8) {
      memmove(buf, buf + keep + (size_t)n - 8, 8);
      keep = 8;
    }
  }
}

/* Run `gdb -batch -p <pid> -ex "thread apply all bt"` with its output
 * appended to fd.  Returns 1 if gdb produced stacks.
 *
 * posix_spawn rather than fork: in a multi-threaded process only
 * async-signal-safe calls are allowed between fork and exec, fork runs
 * pthread_atfork handlers and takes the allocator's locks (which a stuck
 * thread might hold), and posix_spawnp reports a missing gdb as ENOENT
 * directly instead of through the child's exit status. */
static int th__wd_gdb(int fd, int pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none;
  char pidbuf[16];
  uint64_t start;
  off_t from;
  pid_t gdb;
  pid_t r;
  int status;
  int err;

  char *argv[] = {
    "gdb", "-batch", "-nx",
    /* Never download debug info from the network while a test hangs. */
    "-iex", "set debuginfod enabled off",
    "-iex", "set pagination off",
    "-p", pidbuf,
    "-ex", "info threads",
    "-ex", "thread apply all bt",
    NULL
  };

  snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
  from = lseek(fd, 0, SEEK_END);

#if defined(PR_SET_PTRACER) && defined(PR_SET_PTRACER_ANY)
  /* Under Yama ptrace_scope=1 a process may only trace its descendants, and
   * gdb is ours: allow it explicitly.  EINVAL without Yama is fine. */
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif

  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (fd != 1)
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
  if (fd != 2)
    posix_spawn_file_actions_adddup2(&fa, fd, 2);

  /* This thread blocks every signal and gdb would inherit that mask. */
  posix_spawnattr_init(&attr);
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

  err = posix_spawnp(&gdb, "gdb", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    th__fdprintf(fd, "gdb: cannot run it: %s\n", strerror(err));
    return 0;
  }

  /* Bounded wait.  This thread has every signal blocked, so nothing
   * interrupts it; it polls because waitpid has no timeout.  If gdb hangs
   * while attached, every thread of this process, this one included, is
   * stopped and only an outer timeout (ctest's) can help. */
  start = th_now_ms();
  status = 0;
  for (;;) {
    r = waitpid(gdb, &status, WNOHANG);
    if (r == gdb)
      break;
    if (r < 0 && errno != EINTR) {
      /* ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1)
       * elsewhere).  Judge by the output alone. */
      status = 0;
      break;
    }
    if (th_now_ms() - start >= TH_GDB_TIMEOUT_MS) {
      kill(gdb, SIGKILL);
      while (waitpid(gdb, &status, 0) < 0 && errno == EINTR)
        ;
      th__fdprintf(fd, "\ngdb: no result within %d s, killed it\n",
                   TH_GDB_TIMEOUT_MS / 1000);
      return 0;
    }
    th__sleep_ms(20);
  }

  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    th__fdprintf(fd, "gdb: exit status 127 (not found?)\n");
    return 0;
  }
  if (fd == 2)
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!th__dump_has_frames(fd, from)) {
    th__fdprintf(fd, "\ngdb: produced no stacks (status 0x%x)\n", status);
    return 0;
  }
  return 1;
}

/* Fallback dump: every thread writes its own stack from a signal handler.
 *
 * The watchdog thread signals one thread at a time and waits for it, so the
 * handlers run one after the other.  A handler acts only if it runs in the
 * thread currently expected (th__bt_tid): a thread that had the signal
 * blocked and takes it late, after the watchdog has moved on, does nothing
 * rather than writing into another thread's section.
 *
 * backtrace() is not async-signal-safe the first time it is called (it
 * loads libgcc_s), so the watchdog thread calls it once when it starts.
 * backtrace_symbols_fd() takes the loader's lock through dladdr(); a thread
 * interrupted while holding that lock would hang in its handler, which the
 * per-thread timeout turns into a note in the dump. */
static atomic_int th__bt_fd = -1;
static atomic_int th__bt_tid;
static sem_t th__bt_sem;

static void th__bt_handler(int sig) {
  void *frames[64];
  int saved_errno;
  int n;

  (void)sig;
  saved_errno = errno;
  if (th__gettid() == atomic_load(&th__bt_tid)) {
    n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, atomic_load(&th__bt_fd));
    sem_post(&th__bt_sem);
  }
  errno = saved_errno;
}

struct th__tids {
  int n;
  int tids[TH_MAX_TASKS];
};

static int th__collect_tid_cb(const char *name, int dirfd, void *arg) {
  struct th__tids *t;
  int tid;

  (void)dirfd;
  t = arg;
  tid = th__parse_int(name);
  if (tid > 0 && t->n < TH_MAX_TASKS)
    t->tids[t->n++] = tid;
  return 0;
}

static void th__wd_signal_dump(int fd) {
  static struct th__tids tasks;
  struct sigaction sa;
  char path[64];
  char comm[64];
  char wchan[64];
  uint64_t start;
  char state;
  int answered;
  int ppid;
  int self;
  int pid;
  int i;

  th__fdprintf(fd, "\n=== stacks from backtrace() in each thread "
                   "(signal %d; build with -rdynamic for names) ===\n",
               TH_BT_SIGNAL);
  pid = getpid();
  self = th__gettid();
  atomic_store(&th__bt_fd, fd);
  atomic_store(&th__bt_tid, 0);
  sem_init(&th__bt_sem, 0, 0);

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = th__bt_handler;
  sigfillset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_ONSTACK;
  sigaction(TH_BT_SIGNAL, &sa, NULL);

  tasks.n = 0;
  th__dir_each("/proc/self/task", th__collect_tid_cb, &tasks);

  for (i = 0; i < tasks.n; i++) {
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tasks.tids[i]);
    th__read_comm(path, comm, sizeof(comm));
    th__fdprintf(fd, "\nThread LWP %d \"%s\":\n", tasks.tids[i], comm);
    if (tasks.tids[i] == self) {
      th__fdprintf(fd, "  (the watchdog thread itself)\n");
      continue;
    }
    while (sem_trywait(&th__bt_sem) == 0)
      ;
    atomic_store(&th__bt_tid, tasks.tids[i]);
    if (syscall(SYS_tgkill, pid, tasks.tids[i], TH_BT_SIGNAL) != 0) {
      th__fdprintf(fd, "  (tgkill: %s; exited meanwhile?)\n", strerror(errno));
      continue;
    }
    answered = 0;
    start = th_now_ms();
    while (th_now_ms() - start < TH_BT_THREAD_TIMEOUT_MS) {
      if (sem_trywait(&th__bt_sem) == 0) {
        answered = 1;
        break;
      }
      th__sleep_ms(1);
    }
    atomic_store(&th__bt_tid, 0);
    if (!answered) {
      /* Say at least where the kernel has it. */
      snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tasks.tids[i]);
      th__read_comm(path, wchan, sizeof(wchan));
      if (th__proc_stat(tasks.tids[i], &ppid, &state, NULL, 0) != 0)
        state = '?';
      th__fdprintf(fd, "  (no answer within %d ms: signal %d blocked in this "
                       "thread, or the thread is stuck in its handler; "
                       "state %c, wchan %s)\n",
                   TH_BT_THREAD_TIMEOUT_MS, TH_BT_SIGNAL, state, wchan);
    }
  }
}

struct th__proc {
  int pid;
  int ppid;
  char state;
  char comm[32];
  char ours;
};

struct th__procs {
  int n;
  struct th__proc p[TH_MAX_PROCS];
};

static int th__collect_proc_cb(const char *name, int dirfd, void *arg) {
  struct th__procs *ps;
  struct th__proc *p;
  int pid;

  (void)dirfd;
  ps = arg;
  pid = th__parse_int(name);
  if (pid <= 0 || ps->n >= TH_MAX_PROCS)
    return 0;
  p = &ps->p[ps->n];
  if (th__proc_stat(pid, &p->ppid, &p->state, p->comm, sizeof(p->comm)) != 0)
    return 0;
  p->pid = pid;
  p->ours = 0;
  ps->n++;
  return 0;
}

/* List this process's descendants (children first, then theirs) into the
 * dump and SIGKILL them after the stderr line is out.  Descendants and not
 * only children: killing an actor alone would orphan its own children. */
static struct th__procs th__wd_procs;

static void th__wd_list_descendants(int fd) {
  struct th__procs *ps;
  int changed;
  int pid;
  int i;
  int j;

  ps = &th__wd_procs;
  ps->n = 0;
  th__dir_each("/proc", th__collect_proc_cb, ps);
  pid = getpid();
  do {
    changed = 0;
    for (i = 0; i < ps->n; i++) {
      if (ps->p[i].ours)
        continue;
      if (ps->p[i].ppid == pid) {
        ps->p[i].ours = 1;
        changed = 1;
        continue;
      }
      for (j = 0; j < ps->n; j++) {
        if (ps->p[j].ours && ps->p[j].pid == ps->p[i].ppid) {
          ps->p[i].ours = 1;
          changed = 1;
          break;
        }
      }
    }
  } while (changed);

  th__fdprintf(fd, "\n=== child processes of pid %d (and their descendants) "
                   "===\n", pid);
  j = 0;
  for (i = 0; i < ps->n; i++) {
    if (!ps->p[i].ours)
      continue;
    th__fdprintf(fd, "pid %d ppid %d state %c comm %s\n", ps->p[i].pid,
                 ps->p[i].ppid, ps->p[i].state, ps->p[i].comm);
    j++;
  }
  if (j == 0)
    th__fdprintf(fd, "(none)\n");
}

static void th__wd_kill_descendants(void) {
  int i;

  for (i = 0; i < th__wd_procs.n; i++)
    if (th__wd_procs.p[i].ours)
      kill(th__wd_procs.p[i].pid, SIGKILL);
}

/* Keep file names plain whatever the test is called. */
static void th__sanitize(const char *in, char *out, size_t size) {
  size_t i;

  for (i = 0; in[i] != '\0' && i + 1 < size; i++) {
    char c = in[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    out[i] = ok ? c : '_';
  }
  out[i] = '\0';
}

__attribute__((noreturn))
static void th__wd_fire(const char *name, unsigned seconds, const char *dir,
                        int no_gdb) {
  static char path[PATH_MAX + 256];
  static char where[PATH_MAX + 512];
  char safe[128];
  int have_stacks;
  int pid;
  int fd;

  pid = getpid();
  /* ctest may point every test at a dump directory that nothing created
   * yet; make the last component (EEXIST and failures are both fine: the
   * open below decides). */
  mkdir(dir, 0777);
  th__sanitize(name, safe, sizeof(safe));
  snprintf(path, sizeof(path), "%s/watchdog-%s-%d.txt", dir, safe, pid);
  /* Read-write: th__dump_has_frames() reads back what gdb wrote. */
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    snprintf(where, sizeof(where), "%s", path);
  } else {
    /* Better stacks on stderr than none at all. */
    snprintf(where, sizeof(where), "stderr (cannot create %s: %s)", path,
             strerror(errno));
    fd = 2;
  }

  th__fdprintf(fd, "libactor test watchdog\ntest: %s\ntimeout: %u s\n"
                   "pid: %d\n\n", name, seconds, pid);
  have_stacks = 0;
  if (no_gdb) {
    th__fdprintf(fd, "gdb: skipped (LIBACTOR_TEST_NO_GDB)\n");
  } else {
    th__fdprintf(fd, "=== stacks from gdb ===\n");
    have_stacks = th__wd_gdb(fd, pid);
  }
  if (!have_stacks)
    th__wd_signal_dump(fd);
  th__wd_list_descendants(fd);

  th__fdprintf(fd, "\nWATCHDOG: test '%s' exceeded %u s\n", name, seconds);
  th__fdprintf(2, "WATCHDOG: test '%s' exceeded %u s; thread stacks in %s\n",
               name, seconds, where);
  th__wd_kill_descendants();
  _exit(TH_WATCHDOG_EXIT);
}

/* ------------------------------------------------------------------------ */
/* Watchdog: the thread                                                     */
/* ------------------------------------------------------------------------ */

static int th__ts_reached(const struct timespec *deadline) {
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec != deadline->tv_sec)
    return now.tv_sec > deadline->tv_sec;
  return now.tv_nsec >= deadline->tv_nsec;
}

static void *th__wd_main(void *arg) {
  static char name[sizeof(th__wd.name)];
  static char dir[sizeof(th__wd.dir)];
  unsigned seconds;
  void *frames[4];
  int no_gdb;

  (void)arg;
  pthread_setname_np(pthread_self(), "th-watchdog");
  /* Load libgcc_s now, while nothing is wrong: backtrace() does it lazily
   * and that must not happen first inside a signal handler. */
  backtrace(frames, 4);

  pthread_mutex_lock(&th__wd.mu);
  atomic_store(&th__wd_tid, th__gettid());
  pthread_cond_broadcast(&th__wd.cv);

  /* Loop on the condition, not on timedwait's return value: a wakeup may be
   * spurious, and a re-arm moves the deadline while we sleep. */
  for (;;) {
    if (!th__wd.armed) {
      pthread_cond_wait(&th__wd.cv, &th__wd.mu);
      continue;
    }
    if (th__ts_reached(&th__wd.deadline))
      break;
    pthread_cond_timedwait(&th__wd.cv, &th__wd.mu, &th__wd.deadline);
  }

  /* Copy what the dump needs and let go of the mutex: the dump takes
   * seconds, and a test thread calling disarm now must not block on it
   * (it is too late anyway). */
  memcpy(name, th__wd.name, sizeof(name));
  memcpy(dir, th__wd.dir, sizeof(dir));
  seconds = th__wd.seconds;
  no_gdb = th__wd.no_gdb;
  pthread_mutex_unlock(&th__wd.mu);

  th__wd_fire(name, seconds, dir, no_gdb);
  return NULL;
}

/* In a child created by fork() the watchdog thread does not exist and the
 * mutex may have been held by a thread that does not exist either.  Start
 * over: disarmed, and a new thread on the next arm. */
static void th__wd_atfork_child(void) {
  /* The condition variable is initialised again with the new thread. */
  pthread_mutex_init(&th__wd.mu, NULL);
  th__wd.started = 0;
  th__wd.armed = 0;
  atomic_store(&th__wd_tid, 0);
}

/* Called with th__wd.mu held. */
static void th__wd_start_locked(void) {
  pthread_condattr_t ca;
  pthread_attr_t attr;
  pthread_t thread;
  sigset_t all;
  sigset_t old;
  int err;

  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&th__wd.cv, &ca);
  pthread_condattr_destroy(&ca);

  if (!th__wd.atfork_registered) {
    pthread_atfork(NULL, NULL, th__wd_atfork_child);
    th__wd.atfork_registered = 1;
  }

  /* The thread inherits the mask of its creator: block everything around
   * pthread_create so that no signal the tests (or the library) send, and
   * no process-directed signal the kernel picks a thread for, ever lands in
   * the watchdog. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  err = pthread_create(&thread, &attr, th__wd_main, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    fprintf(stderr, "harness: cannot create the watchdog thread: %s\n",
            strerror(err));
    abort();
  }

  /* Wait until it has published its tid, so the leak counters can leave it
   * out from the first snapshot on. */
  while (atomic_load(&th__wd_tid) == 0)
    pthread_cond_wait(&th__wd.cv, &th__wd.mu);
  th__wd.started = 1;
}

void th_watchdog_arm(const char *test_name, unsigned seconds) {
  const char *env;
  int v;

  /* Environment reads happen here, on the test's thread, and not in the
   * watchdog thread where they would race with setenv() in tests. */
  env = getenv("LIBACTOR_TEST_TIMEOUT");
  if (env != NULL) {
    v = th__parse_int(env);
    if (v > 0)
      seconds = (unsigned)v;
  }
  if (seconds == 0)
    seconds = TH_DEFAULT_TIMEOUT;

  pthread_mutex_lock(&th__wd.mu);
  if (!th__wd.started)
    th__wd_start_locked();
  snprintf(th__wd.name, sizeof(th__wd.name), "%s",
           test_name != NULL ? test_name : "?");
  env = getenv("LIBACTOR_TEST_DUMP_DIR");
  snprintf(th__wd.dir, sizeof(th__wd.dir), "%s",
           env != NULL && *env != '\0' ? env : ".");
  env = getenv("LIBACTOR_TEST_NO_GDB");
  th__wd.no_gdb = env != NULL && *env != '\0' && strcmp(env, "0") != 0;
  th__wd.seconds = seconds;
  clock_gettime(CLOCK_MONOTONIC, &th__wd.deadline);
  th__wd.deadline.tv_sec += seconds;
  th__wd.armed = 1;
  pthread_cond_broadcast(&th__wd.cv);
  pthread_mutex_unlock(&th__wd.mu);
}

void th_watchdog_disarm(void) {
  pthread_mutex_lock(&th__wd.mu);
  if (th__wd.armed) {
    th__wd.armed = 0;
    pthread_cond_broadcast(&th__wd.cv);
  }
  pthread_mutex_unlock(&th__wd.mu);
}

/* ------------------------------------------------------------------------ */
/* Per-test setup and teardown                                              */
/* ------------------------------------------------------------------------ */

static struct th_snap th__cur_snap;
static atomic_int th__skip_leaks;

int th_setup(void **state) {
  const struct th_test_info *info;
  const char *name;
  unsigned secs;

  info = *state;
  name = info != NULL && info->name != NULL ? info->name : "?";
  secs = info != NULL && info->timeout != 0 ? info->timeout
                                            : TH_DEFAULT_TIMEOUT;
  snprintf(th__cur_name, sizeof(th__cur_name), "%s", name);
  atomic_store(&th__skip_leaks, 0);

  /* Arm first: the snapshot must not depend on whether the watchdog thread
   * existed yet (it is left out of the counts either way). */
  th_watchdog_arm(name, secs);
  th_snap_take(&th__cur_snap);
  *state = (void *)name;
  return 0;
}

int th_teardown(void **state) {
  (void)state;
  th_watchdog_disarm();
  if (!atomic_load(&th__skip_leaks))
    th_assert_no_leaks(&th__cur_snap);
  return 0;
}

void th_skip_leak_check(void) {
  atomic_store(&th__skip_leaks, 1);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static pthread_once_t th__exe_once = PTHREAD_ONCE_INIT;
static char th__exe[PATH_MAX];

static void th__exe_init(void) {
  ssize_t n;

  n = readlink("/proc/self/exe", th__exe, sizeof(th__exe) - 1);
  if (n <= 0) {
    fprintf(stderr, "harness: readlink /proc/self/exe: %s\n", strerror(errno));
    abort();
  }
  th__exe[n] = '\0';
}

const char *th_self_exe(void) {
  pthread_once(&th__exe_once, th__exe_init);
  return th__exe;
}

static void th__list_helpers(const struct th_helper *helpers) {
  const struct th_helper *h;

  fprintf(stderr, "known helpers:");
  for (h = helpers; h != NULL && h->name != NULL; h++)
    fprintf(stderr, " %s", h->name);
  fprintf(stderr, "\n");
}

int th_main(int argc, char **argv, const struct th_helper *helpers,
            int (*run_all)(void)) {
  const struct th_helper *h;

  if (argc >= 2 && strcmp(argv[1], "--helper") == 0) {
    if (argc < 3) {
      fprintf(stderr, "%s: --helper needs a helper name\n", argv[0]);
      th__list_helpers(helpers);
      exit(2);
    }
    for (h = helpers; h != NULL && h->name != NULL; h++)
      if (strcmp(h->name, argv[2]) == 0)
        return h->fn(argc - 2, argv + 2);
    fprintf(stderr, "%s: unknown helper '%s'\n", argv[0], argv[2]);
    th__list_helpers(helpers);
    exit(2);
  }
  return run_all();
}
