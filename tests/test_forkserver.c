/* The forkserver backend (issue 9): actors forked by a fork server, a
 * helper process per runtime.  C entries come from a test shared object
 * (tests/fs/fs_entries.c, $LIBACTOR_TEST_FS_ENTRIES); Python ones from
 * tests/py/fsactors.py, in the Python build only. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"

extern char **environ;

/* ThreadSanitizer does not support threads in a child forked from a
 * multi-threaded process (the server forks from its worker thread), and
 * in such a child it never runs CPython's SIGINT handler (traced: the
 * signal arrives, TSan's handler takes it, the Python one never runs).
 * The two tests that need that handler in a forked main interpreter are
 * skipped there; every other lane runs them. */
#if defined(__SANITIZE_THREAD__)
#define FS_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FS_UNDER_TSAN 1
#endif
#endif
#ifndef FS_UNDER_TSAN
#define FS_UNDER_TSAN 0
#endif
/* A sanitizer's allocator holds freed memory back (ASan's quarantine), so
 * a process's resident size says nothing about leaks there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FS_RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FS_RSS_MEANINGFUL 0
#endif
#endif
#ifndef FS_RSS_MEANINGFUL
#define FS_RSS_MEANINGFUL 1
#endif
#define FS_SKIP_UNDER_TSAN()                                                   \
  do {                                                                         \
    if (FS_UNDER_TSAN) {                                                       \
      print_message("  skipped under ThreadSanitizer (see the top of the "    \
                    "file)\n");                                                \
      skip();                                                                  \
    }                                                                          \
  } while (0)

static const char *entries_so(void) {
  const char *p = getenv("LIBACTOR_TEST_FS_ENTRIES");
  if (p == NULL)
    fail_msg("LIBACTOR_TEST_FS_ENTRIES is not set (run through ctest)");
  return p;
}

static actor_opts *fs_opts_c(const char *entry) {
  char spec[4096];
  actor_opts *o;
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_backend(o, "forkserver"));
  snprintf(spec, sizeof(spec), "%s:%s", entries_so(), entry);
  TH_OK(actor_opts_set_c_entry(o, spec));
  TH_OK(actor_opts_set_name(o, entry));
  TH_OK(actor_opts_set_deadlines(o, 5000, 1000, 1000, 1000));
  return o;
}

static actor *fs_spawn_c(struct ts *t, struct ts_exit *ex) {
  return ts_spawn_opts(t, fs_opts_c("fs_entry"), ex);
}

/* Call fn with ints and wait for its answer. */
static int64_t fs_call(struct ts *t, actor *a, const char *fn,
                       const int64_t *v, int n, int want) {
  struct ts_call r;
  int64_t val;
  TH_OK(ts_call_ints(a, fn, v, n, &r, NULL));
  ts_wait(t, &r.done, 10000);
  assert_true(r.done);
  if (r.status != want)
    fail_msg("%s: status %s (%s), wanted %s", fn, actor_err_name(r.status),
             r.emsg, actor_err_name(want));
  val = r.value;
  ts_call_fini(&r);
  return val;
}

/* A process that is not ours: gone, or a zombie nobody has reaped yet. */
static int pid_gone(int pid) {
  char p[64], buf[256], *s;
  FILE *f;
  int gone = 1;
  if (kill(pid, 0) != 0)
    return errno == ESRCH;
  snprintf(p, sizeof(p), "/proc/%d/stat", pid);
  f = fopen(p, "r");
  if (f == NULL)
    return 1;
  if (fgets(buf, sizeof(buf), f) != NULL && (s = strrchr(buf, ')')) != NULL)
    gone = s[1] == ' ' && s[2] == 'Z';
  fclose(f);
  return gone;
}

/* A process that should have ended and has not: its threads (for the
 * report), then SIGKILL, so that it cannot outlive the test and hold the
 * test's output pipes open. */
static void kill_survivor(int pid) {
  ts_print_threads(pid, "survivor");
  kill(pid, SIGKILL);
}

static void wait_gone(int pid, unsigned ms) {
  uint64_t end = th_now_ms() + ms;
  while (!pid_gone(pid)) {
    if (th_now_ms() > end) {
      kill_survivor(pid);
      fail_msg("process %d is still alive after %u ms", pid, ms);
    }
    usleep(2000);
  }
}

/* ======================================================================== */
/* C entries                                                                */
/* ======================================================================== */

static void forkserver_c_entry(void **state) {
  struct ts t;
  struct ts_exit ex;
  int64_t v[2] = {40, 2};
  actor *a;
  int spid;
  (void)state;

  ts_start(&t);
  a = fs_spawn_c(&t, &ex);
  assert_int_equal(fs_call(&t, a, "add", v, 2, 0), 42);
  assert_int_equal(ex.hello, 1);
  assert_string_equal(actor_backend(a), "forkserver");
  /* The server is not an actor; the child is the server's, not ours. */
  assert_int_equal(actor_rt_actor_count(t.rt), 1);
  spid = actor_rt_forkserver_pid(t.rt);
  assert_true(spid > 0);
  assert_int_equal(actor_pid(a), (int)fs_call(&t, a, "pid", NULL, 0, 0));
  assert_int_not_equal(actor_pid(a), spid);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.status, 0);
  assert_int_equal(ex.error, 0);
  ts_finish(&t);
  /* Closing the runtime ended the server. */
  wait_gone(spid, 5000);
}

/* A signal set of /proc/PID/status, e.g. "SigBlk:"; glibc's two
 * internal signals (32, 33) aside. */
static unsigned long long proc_sigmask(int pid, const char *field) {
  char path[64], line[256];
  unsigned long long v = ~0ull;
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return v;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, field, strlen(field)) == 0)
      v = strtoull(line + strlen(field), NULL, 16);
  fclose(f);
  return v & ~(3ull << 31);
}

static void forkserver_c_child_inherits_only_stdio_and_channel(void **state) {
  struct ts t;
  struct ts_exit ex;
  char tmpl[] = "/tmp/libactor-fs-inherit-XXXXXX", path[64], lp[400],
       tgt[256];
  struct dirent *e;
  actor *a;
  DIR *d;
  int fd, sockets = 0, leaked = 0;
  ssize_t k;
  (void)state;

  /* A descriptor of the host's, inheritable: it must reach neither the
   * server nor the child. */
  fd = mkstemp(tmpl);
  assert_true(fd >= 0);
  ts_start(&t);
  a = fs_spawn_c(&t, &ex);
  fs_call(&t, a, "pid", NULL, 0, 0);
  snprintf(path, sizeof(path), "/proc/%d/fd", actor_pid(a));
  d = opendir(path);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(lp, sizeof(lp), "%s/%s", path, e->d_name);
    k = readlink(lp, tgt, sizeof(tgt) - 1);
    if (k <= 0)
      continue;
    tgt[k] = '\0';
    /* Beyond 0-3 only what the child's own loop made (libuv's epoll,
     * eventfd and pipes); no socket but the channel. */
    if (strncmp(tgt, "socket:", 7) == 0)
      sockets++, assert_string_equal(e->d_name, "3");
    if (strcmp(tgt, tmpl) == 0)
      leaked++;
  }
  closedir(d);
  assert_int_equal(sockets, 1);
  assert_int_equal(leaked, 0);
  assert_int_equal(getpgid(actor_pid(a)), actor_pid(a));
  /* Nothing blocked, nothing ignored. */
  assert_int_equal(proc_sigmask(actor_pid(a), "SigBlk:"), 0);
  assert_int_equal(proc_sigmask(actor_pid(a), "SigIgn:"), 0);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  ts_finish(&t);
  close(fd);
  unlink(tmpl);
}

/* The working directory: the spawn's, checked in the host first. */
static void forkserver_cwd_is_the_spawns_and_checked_first(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor_opts *o;
  actor *a;
  (void)state;

  ts_start(&t);
  o = fs_opts_c("fs_entry");
  TH_OK(actor_opts_set_cwd(o, "/tmp/no-such-dir-for-libactor"));
  TH_ERR(actor_spawn(t.rt, o, &a), -ENOENT);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "working directory"));
  TH_OK(actor_opts_set_cwd(o, "/"));
  a = ts_spawn_opts(&t, o, &ex);
  TH_OK(ts_call_str(a, "cwd", "", &r));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  assert_string_equal(r.str, "/");
  ts_call_fini(&r);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  ts_finish(&t);
}

/* Captured output, line by line, the last unterminated line too, all of it
 * before the exit callback. */
struct fs_out {
  int out_lines, err_lines, tail;
  int after_exit;
  struct ts_exit *ex;
};

static void fs_on_output(actor *a, int fd, const char *line, size_t len,
                         void *arg) {
  struct fs_out *o = arg;
  (void)a;
  if (o->ex->exited)
    o->after_exit++;
  if (fd == 2 && len == 8 && memcmp(line, "err line", 8) == 0)
    o->err_lines++;
  else if (fd == 1 && len == 4 && memcmp(line, "tail", 4) == 0)
    o->tail++;
  else if (fd == 1 && len > 4 && memcmp(line, "out ", 4) == 0)
    o->out_lines++;
}

static void forkserver_stdio_capture_c_entry(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct fs_out out = {0, 0, 0, 0, &ex};
  int64_t n = 1000;
  actor_opts *o;
  actor *a;
  (void)state;

  ts_start(&t);
  o = fs_opts_c("fs_entry");
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_on_output(o, fs_on_output, &out));
  a = ts_spawn_opts(&t, o, &ex);
  assert_int_equal(fs_call(&t, a, "say", &n, 1, 0), 1000);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(out.out_lines, 1000);
  assert_int_equal(out.err_lines, 1);
  assert_int_equal(out.tail, 1);
  assert_int_equal(out.after_exit, 0);
  ts_finish(&t);
}

static void forkserver_exit_codes_and_signals_relayed(void **state) {
  struct ts t;
  struct ts_exit ex1, ex2;
  struct ts_call r1, r2;
  int64_t code = 7, sig = SIGUSR1;
  actor *a, *b;
  (void)state;

  ts_start(&t);
  a = fs_spawn_c(&t, &ex1);
  b = fs_spawn_c(&t, &ex2);
  TH_OK(ts_call_ints(a, "exit", &code, 1, &r1, NULL));
  TH_OK(ts_call_ints(b, "raise", &sig, 1, &r2, NULL));
  ts_wait(&t, &ex1.exited, 5000);
  ts_wait(&t, &ex2.exited, 5000);
  assert_int_equal(ex1.status, 7);
  assert_int_equal(ex1.signal, 0);
  assert_int_equal(ex2.status, -1);
  assert_int_equal(ex2.signal, SIGUSR1);
  /* The calls in flight failed cleanly. */
  assert_true(r1.done && r2.done);
  TH_ERR(r1.status, ACTOR_ECLOSED);
  TH_ERR(r2.status, ACTOR_ECLOSED);
  ts_call_fini(&r1);
  ts_call_fini(&r2);
  print_message("  exit: %s\n  signal: %s\n", ex1.reason, ex2.reason);
  ts_finish(&t);
}

static void forkserver_cancel_escalation_on_child_ignoring_sigterm(
    void **state) {
  struct ts t;
  struct ts_exit ex;
  actor *a;
  uint64_t t0;
  (void)state;

  ts_start(&t);
  a = ts_spawn_opts(&t, fs_opts_c("fs_entry"), &ex);
  /* It answers, then blocks its loop with SIGTERM ignored. */
  assert_int_equal(fs_call(&t, a, "stubborn", NULL, 0, 0), 1);
  t0 = th_now_ms();
  actor_stop(a);
  ts_wait(&t, &ex.exited, 10000);
  assert_true(ex.exited);
  assert_int_equal(ex.signal, SIGKILL);
  TH_ERR(ex.error, ACTOR_EKILLED);
  print_message("  %s\n", ex.reason);
  assert_non_null(strstr(ex.reason, "SIGKILL"));
  /* graceful 1 s + term 1 s, then SIGKILL: generous bound. */
  print_message("  stop -> exit %llu ms (graceful 1000 + term 1000)\n",
                (unsigned long long)(th_now_ms() - t0));
  assert_true(th_now_ms() - t0 < 9000);
  ts_finish(&t);
}

static void forkserver_server_killed_mid_call_then_restart(void **state) {
  struct ts t;
  struct ts_exit ex, ex2, bx;
  struct ts_call r;
  int64_t v[2] = {1, 2};
  actor *a, *b, *c;
  int spid, cpid;
  (void)state;

  ts_start(&t);
  a = fs_spawn_c(&t, &ex);
  cpid = (int)fs_call(&t, a, "pid", NULL, 0, 0);
  /* A bystander of another backend is not touched. */
  b = ts_spawn(&t, "actor", &bx);
  spid = actor_rt_forkserver_pid(t.rt);
  TH_OK(ts_call_ints(a, "hang", NULL, 0, &r, NULL));
  ts_run_for(&t, 20);
  assert_int_equal(kill(spid, SIGKILL), 0);
  ts_wait(&t, &ex.exited, 5000);
  assert_true(r.done);
  TH_ERR(r.status, ACTOR_ECLOSED);
  TH_ERR(ex.error, ACTOR_ECLOSED);
  assert_non_null(strstr(ex.reason, "fork server"));
  print_message("  %s\n", ex.reason);
  ts_call_fini(&r);
  /* The orphan ended with its server (parent-death signal). */
  wait_gone(cpid, 5000);
  /* The next spawn starts a new server. */
  assert_int_equal(actor_rt_forkserver_pid(t.rt), 0);
  c = fs_spawn_c(&t, &ex2);
  assert_int_equal(fs_call(&t, c, "add", v, 2, 0), 3);
  assert_true(actor_rt_forkserver_pid(t.rt) > 0);
  assert_int_not_equal(actor_rt_forkserver_pid(t.rt), spid);
  assert_int_equal(actor_state(b), ACTOR_STATE_RUNNING);
  actor_stop(b);
  actor_stop(c);
  ts_wait(&t, &ex2.exited, 5000);
  ts_wait(&t, &bx.exited, 5000);
  ts_finish(&t);
}

/* The server is the runtime's: actor_rt_free refuses while it runs, and
 * closing ends it within the close's bound even when it does not answer
 * (stopped: it cannot see the end of its channel; SIGKILL after 2 s). */
static void forkserver_close_is_bounded_when_the_server_hangs(void **state) {
  struct ts t;
  uint64_t t0, ms;
  int spid;
  (void)state;

  ts_start(&t);
  TH_OK(actor_rt_forkserver_start(t.rt, 0));
  spid = actor_rt_forkserver_pid(t.rt);
  assert_true(spid > 0);
  TH_ERR(actor_rt_free(t.rt), ACTOR_ESTATE);
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  assert_int_equal(kill(spid, SIGSTOP), 0);
  t0 = th_now_ms();
  ts_finish(&t);
  ms = th_now_ms() - t0;
  print_message("  close with a stopped server: %llu ms (bound 2000)\n",
                (unsigned long long)ms);
  assert_true(ms >= 1500 && ms < 10000);
  wait_gone(spid, 5000);
}

/* A host that spawns two forkserver actors, prints the server's pid and
 * the children's, and waits to be killed. */
static int helper_fs_host(int argc, char **argv) {
  struct ts t;
  struct ts_exit ex[2];
  actor *a[2];
  int i;
  (void)argc, (void)argv;
  ts_start(&t);
  for (i = 0; i < 2; i++) {
    a[i] = fs_spawn_c(&t, &ex[i]);
    fs_call(&t, a[i], "pid", NULL, 0, 0);
  }
  printf("%d %d %d\n", actor_rt_forkserver_pid(t.rt), actor_pid(a[0]),
         actor_pid(a[1]));
  fflush(stdout);
  for (;;)
    uv_run(&t.loop, UV_RUN_ONCE);
  return 0;
}

static void forkserver_host_death_takes_server_and_children(void **state) {
  posix_spawn_file_actions_t fa;
  char *argv[] = {(char *)th_self_exe(), "--helper", "fs_host", NULL};
  char line[128];
  int p[2], pids[3], i, st;
  pid_t host;
  FILE *f;
  (void)state;

  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  assert_int_equal(posix_spawn(&host, argv[0], &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  f = fdopen(p[0], "r");
  assert_non_null(fgets(line, sizeof(line), f));
  fclose(f);
  assert_int_equal(sscanf(line, "%d %d %d", &pids[0], &pids[1], &pids[2]),
                   3);
  for (i = 0; i < 3; i++)
    assert_true(pids[i] > 0 && !pid_gone(pids[i]));
  kill(host, SIGKILL);
  while (waitpid(host, &st, 0) < 0 && errno == EINTR)
    ;
  for (i = 0; i < 3; i++)
    wait_gone(pids[i], 5000);
}

/* Counts in another process: fds, threads, unreaped children. */
static int proc_count(int pid, const char *what) {
  char path[64];
  struct dirent *e;
  DIR *d;
  int n = 0;
  snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
  d = opendir(path);
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static int proc_children(int pid) {
  char path[300], buf[512];
  struct dirent *e;
  DIR *d = opendir("/proc");
  int n = 0, ppid;
  FILE *f;
  char *s;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    if (fgets(buf, sizeof(buf), f) != NULL && (s = strrchr(buf, ')')) != NULL &&
        sscanf(s + 2, "%*c %d", &ppid) == 1 && ppid == pid)
      n++;
    fclose(f);
  }
  if (d != NULL)
    closedir(d);
  return n;
}

static void fs_py_server_setup(struct ts *t);

/* Resident memory of a process, KiB (VmRSS), or -1. */
static long proc_rss_kib(int pid) {
  char path[64], line[256];
  long v = -1;
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0)
      v = strtol(line + 6, NULL, 10);
  fclose(f);
  return v;
}

/* n spawn/call/stop cycles of actors made by `mk`; the server's fds,
 * threads, children and memory stay as they were, and the host's are the
 * harness's to check. */
static void fs_cycles(int n, actor_opts *(*mk)(void), int python) {
  struct ts t;
  struct ts_exit ex;
  int64_t v[2] = {1, 1};
  actor *a;
  int i, spid, fds0, thr0;
  long rss0, rss1;
  uint64_t t0;

  ts_start(&t);
  if (python)
    fs_py_server_setup(&t);
  a = ts_spawn_opts(&t, mk(), &ex);
  fs_call(&t, a, "add", v, 2, 0);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  spid = actor_rt_forkserver_pid(t.rt);
  fds0 = proc_count(spid, "fd");
  thr0 = proc_count(spid, "task");
  rss0 = proc_rss_kib(spid);
  t0 = th_now_ms();
  for (i = 0; i < n; i++) {
    a = ts_spawn_opts(&t, mk(), &ex);
    v[0] = i;
    assert_int_equal(fs_call(&t, a, "add", v, 2, 0), i + 1);
    actor_stop(a);
    ts_wait(&t, &ex.exited, 5000);
    assert_true(ex.exited);
    assert_int_equal(ex.status, 0);
  }
  rss1 = proc_rss_kib(spid);
  print_message("  %d spawn/call/stop cycles: %llu ms; server RSS %ld -> %ld "
                "KiB\n",
                n, (unsigned long long)(th_now_ms() - t0), rss0, rss1);
  assert_int_equal(actor_rt_forkserver_pid(t.rt), spid); /* one server */
  assert_int_equal(proc_count(spid, "fd"), fds0);
  assert_int_equal(proc_count(spid, "task"), thr0);
  assert_int_equal(proc_children(spid), 0);
  if (FS_RSS_MEANINGFUL)
    assert_true(rss1 - rss0 < 4096); /* flat, with room for the allocator */
  /* The host's own fds, threads and children: the harness's leak check. */
  ts_finish(&t);
}

static actor_opts *fs_mk_c(void) { return fs_opts_c("fs_entry"); }

static void forkserver_500_cycles_leak_nothing(void **state) {
  (void)state;
  fs_cycles(500, fs_mk_c, 0);
}

/* issue 7's SIGKILL faults (tests/faults.c), on this backend: the actors
 * are C entries, the bystander one too. */
static actor *fs_fault_spawn(struct ts *t, const char *kind,
                             struct ts_exit *ex) {
  return ts_spawn_opts(t,
                    fs_opts_c(strcmp(kind, "rogue_no_hello") == 0
                                  ? "fs_entry_no_hello"
                                  : "fs_entry"),
                    ex);
}

static void forkserver_fault_sigkill_before_hello(void **state) {
  (void)state;
  fault_sigkill_before_hello(fs_fault_spawn);
}

static void forkserver_fault_sigkill_mid_call(void **state) {
  (void)state;
  fault_sigkill_mid_call(fs_fault_spawn);
}

static void forkserver_fault_sigkill_mid_stream(void **state) {
  (void)state;
  fault_sigkill_mid_stream(fs_fault_spawn);
}

static void forkserver_fault_sigkill_while_handling_cancel(void **state) {
  (void)state;
  fault_sigkill_while_handling_cancel(fs_fault_spawn);
}

static void forkserver_bad_c_entry_fails_cleanly(void **state) {
  struct ts t;
  struct ts_exit ex;
  (void)state;

  ts_start(&t);
  ts_spawn_opts(&t, fs_opts_c("no_such_function"), &ex);
  ts_wait(&t, &ex.exited, 5000);
  assert_true(ex.hello < 0);
  assert_non_null(strstr(ex.reason, "no_such_function"));
  print_message("  %s\n", ex.reason);
  ts_finish(&t);
}

/* ======================================================================== */
/* Python entries                                                           */
/* ======================================================================== */

#ifndef ACTOR_TEST_WITH_PYTHON
static void fs_py_server_setup(struct ts *t) { (void)t; }

/* The core's server has no Python: a Python entry ends before HELLO with
 * the reason, and the server goes on serving C entries. */
static void forkserver_python_entry_without_python_fails_cleanly(
    void **state) {
  struct ts t;
  struct ts_exit ex, cx;
  int64_t v[2] = {1, 2};
  actor_opts *o;
  actor *c;
  (void)state;

  ts_start(&t);
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_backend(o, "forkserver"));
  TH_OK(actor_opts_set_entry(o, "nope:main"));
  ts_spawn_opts(&t, o, &ex);
  ts_wait(&t, &ex.exited, 5000);
  assert_true(ex.hello < 0);
  assert_non_null(strstr(ex.reason, "without Python"));
  print_message("  %s\n", ex.reason);
  c = fs_spawn_c(&t, &cx);
  assert_int_equal(fs_call(&t, c, "add", v, 2, 0), 3);
  actor_stop(c);
  ts_wait(&t, &cx.exited, 5000);
  ts_finish(&t);
}
#endif

#ifdef ACTOR_TEST_WITH_PYTHON
static void fs_py_server(struct ts *t);
static void fs_py_server_setup(struct ts *t) { fs_py_server(t); }
static actor_opts *fs_opts_py(int subint, int mode) {
  actor_opts *o;
  const char *dir = getenv("LIBACTOR_TEST_PYDIR");
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_backend(o, "forkserver"));
  TH_OK(actor_opts_set_entry(o, "fsactors:main"));
  if (dir != NULL)
    TH_OK(actor_opts_add_path(o, dir));
  TH_OK(actor_opts_set_fork_subint(o, subint));
  TH_OK(actor_opts_set_subint_mode(o, mode));
  TH_OK(actor_opts_set_deadlines(o, 10000, 1000, 1000, 1000));
  return o;
}

static void fs_py_server(struct ts *t) {
  const char *dir = getenv("LIBACTOR_TEST_PYDIR");
  if (dir != NULL)
    TH_OK(actor_rt_forkserver_add_path(t->rt, dir));
  TH_OK(actor_rt_forkserver_preload(t->rt, "fspreload"));
}

static actor_opts *fs_mk_py(void) { return fs_opts_py(0, 0); }

/* The same for Python children of the main interpreter: the server's
 * side of each fork (PyOS_BeforeFork / AfterFork_Parent) leaves nothing. */
static void forkserver_python_200_cycles_leak_nothing(void **state) {
  (void)state;
  fs_cycles(200, fs_mk_py, 1);
}

static void fs_py_kind(int subint, int mode) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {40, 2};
  actor_opts *o;
  actor *a;

  ts_start(&t);
  fs_py_server(&t);
  o = fs_opts_py(subint, mode);
  TH_OK(actor_opts_add_env(o, "FS_TEST_VAR=hello"));
  a = ts_spawn_opts(&t, o, &ex);
  assert_int_equal(fs_call(&t, a, "add", v, 2, 0), 42);
  assert_int_equal(actor_pid(a), (int)fs_call(&t, a, "pid", NULL, 0, 0));
  /* Inherited from the server: the module it imported ahead of time, in
   * the main interpreter (a fresh sub-interpreter has its own modules). */
  assert_int_equal(fs_call(&t, a, "preloaded", NULL, 0, 0), subint ? 0 : 1);
  if (subint) {
    assert_true(fs_call(&t, a, "interp", NULL, 0, 0) > 0);
  } else {
    assert_int_equal(fs_call(&t, a, "interp", NULL, 0, 0), 0);
    /* Forked from a worker thread, it is the main thread now. */
    assert_int_equal(fs_call(&t, a, "is_main", NULL, 0, 0), 1);
  }
  TH_OK(ts_call_str(a, "env", "FS_TEST_VAR", &r));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  assert_string_equal(r.str, "hello");
  ts_call_fini(&r);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.status, 0);
  assert_int_equal(ex.error, 0);
  ts_finish(&t);
}

static void forkserver_python_main_interp(void **state) {
  (void)state;
  fs_py_kind(0, 0);
}

static void forkserver_python_fresh_subint_isolated(void **state) {
  (void)state;
  fs_py_kind(1, ACTOR_SUBINT_ISOLATED);
}

static void forkserver_python_fresh_subint_legacy(void **state) {
  (void)state;
  fs_py_kind(1, ACTOR_SUBINT_LEGACY);
}

/* A Python child's print() reaches the host's output callback. */
/* A Python actor of the main interpreter whose stdout is captured into
 * `out` (on a runtime just started, its server preloaded). */
static actor *fs_spawn_py_captured(struct ts *t, struct fs_out *out,
                                   struct ts_exit *ex) {
  actor_opts *o;
  ts_start(t);
  fs_py_server(t);
  o = fs_opts_py(0, 0);
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_on_output(o, fs_on_output, out));
  return ts_spawn_opts(t, o, ex);
}

static void forkserver_python_stdout_captured(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct fs_out out = {0, 0, 0, 0, &ex};
  struct ts_call r;
  actor *a;
  (void)state;

  a = fs_spawn_py_captured(&t, &out, &ex);
  TH_OK(ts_call_str(a, "say", "out from python", &r));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  ts_call_fini(&r);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(out.out_lines, 1);
  ts_finish(&t);
}

/* A Python child ends as multiprocessing's do — atexit functions, then
 * the streams flushed, then _exit: an atexit function's unflushed print
 * reaches the captured stdout before the exit callback. */
static void forkserver_python_child_runs_atexit_and_flushes_at_exit(
    void **state) {
  struct ts t;
  struct ts_exit ex;
  struct fs_out out = {0, 0, 0, 0, &ex};
  actor *a;
  (void)state;

  a = fs_spawn_py_captured(&t, &out, &ex);
  assert_int_equal(fs_call(&t, a, "tail_at_exit", NULL, 0, 0), 1);
  actor_stop(a);
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.status, 0);
  assert_int_equal(out.tail, 1);
  assert_int_equal(out.after_exit, 0);
  ts_finish(&t);
}

/* A server started for C entries starts CPython at its first Python
 * spawn (on its main thread) and forks Python children from then on. */
static void forkserver_python_after_c_starts_cpython_in_the_server(
    void **state) {
  struct ts t;
  struct ts_exit cx, px;
  int64_t v[2] = {40, 2};
  actor *c, *p;
  int spid;
  (void)state;

  ts_start(&t);
  c = fs_spawn_c(&t, &cx);
  assert_int_equal(fs_call(&t, c, "add", v, 2, 0), 42);
  spid = actor_rt_forkserver_pid(t.rt);
  p = ts_spawn_opts(&t, fs_opts_py(0, 0), &px);
  assert_int_equal(fs_call(&t, p, "add", v, 2, 0), 42);
  assert_int_equal(fs_call(&t, p, "is_main", NULL, 0, 0), 1);
  assert_int_equal(actor_rt_forkserver_pid(t.rt), spid); /* the same one */
  actor_stop(c);
  actor_stop(p);
  ts_wait(&t, &cx.exited, 5000);
  ts_wait(&t, &px.exited, 5000);
  assert_int_equal(px.status, 0);
  ts_finish(&t);
}

/* When CPython's lazy start in the server fails (here: PYTHONHOME names
 * no directory, in the environment the server inherited), that spawn and
 * every Python spawn after it fail with that start's reason — CPython is
 * not started a second time over the remains of the first — and C entries
 * go on working. */
static void fs_expect_py_start_failure(struct ts *t, char *reason,
                                       size_t len) {
  struct ts_exit px;
  ts_spawn_opts(t, fs_opts_py(0, 0), &px);
  ts_wait(t, &px.exited, 10000);
  assert_true(px.exited);
  assert_true(px.hello < 0);
  assert_non_null(strstr(px.reason, "CPython failed to start"));
  print_message("  %s\n", px.reason);
  snprintf(reason, len, "%s", px.reason);
}

static void forkserver_failed_python_start_fails_every_later_python_spawn(
    void **state) {
  struct ts t;
  struct ts_exit cx;
  int64_t v[2] = {40, 2};
  char first[512], again[512];
  actor *c;
  (void)state;

  setenv("PYTHONHOME", "/nonexistent/libactor-test", 1);
  ts_start(&t);
  c = fs_spawn_c(&t, &cx); /* the server starts now, with that environment */
  assert_int_equal(fs_call(&t, c, "add", v, 2, 0), 42);
  unsetenv("PYTHONHOME");
  fs_expect_py_start_failure(&t, first, sizeof(first));
  fs_expect_py_start_failure(&t, again, sizeof(again));
  assert_string_equal(again, first);
  assert_int_equal(fs_call(&t, c, "add", v, 2, 0), 42);
  actor_stop(c);
  ts_wait(&t, &cx.exited, 5000);
  ts_finish(&t);
}

/* SIGINT to an idle Python actor (waiting in serve() for the next call):
 * KeyboardInterrupt, and the actor ends through its normal path. */
static void fs_py_sigint_idle(int subint, int mode) {
  struct ts t;
  struct ts_exit ex;
  actor *a;

  ts_start(&t);
  fs_py_server(&t);
  a = ts_spawn_opts(&t, fs_opts_py(subint, mode), &ex);
  fs_call(&t, a, "pid", NULL, 0, 0);
  ts_run_for(&t, 50); /* idle in serve() */
  assert_int_equal(kill(actor_pid(a), SIGINT), 0);
  ts_wait(&t, &ex.exited, 5000);
  assert_true(ex.exited);
  assert_int_equal(ex.signal, 0);
  assert_int_equal(ex.status, 1);
  print_message("  %s\n", ex.reason);
  ts_finish(&t);
}

static void forkserver_python_sigint_idle_is_keyboard_interrupt(void **state) {
  (void)state;
  FS_SKIP_UNDER_TSAN();
  fs_py_sigint_idle(0, 0);
}

static void forkserver_python_subint_sigint_is_keyboard_interrupt(
    void **state) {
  (void)state;
  fs_py_sigint_idle(1, ACTOR_SUBINT_ISOLATED);
}

/* A thread of process pid other than its main one whose signal mask lets
 * SIGINT in (from /proc: SigBlk), or 0. */
static int sigint_taker(int pid) {
  char p[320], line[256];
  DIR *d;
  struct dirent *e;
  int tid = 0;

  snprintf(p, sizeof(p), "/proc/%d/task", pid);
  d = opendir(p);
  while (d != NULL && tid == 0 && (e = readdir(d)) != NULL) {
    FILE *f;
    int t = atoi(e->d_name);
    if (t <= 0 || t == pid)
      continue;
    snprintf(p, sizeof(p), "/proc/%d/task/%d/status", pid, t);
    if ((f = fopen(p, "r")) == NULL)
      continue;
    while (fgets(line, sizeof(line), f) != NULL)
      if (strncmp(line, "SigBlk:", 7) == 0 &&
          (strtoull(line + 7, NULL, 16) & (1ull << (SIGINT - 1))) == 0)
        tid = t;
    fclose(f);
  }
  if (d != NULL)
    closedir(d);
  return tid;
}

/* CPython sends every signal to _PyRuntime.main_tstate, which its fork
 * handling leaves on the server's main thread when the fork was made from
 * the worker (tools/fs_afterfork.c).  A child busy in bytecode, with the
 * SIGINT taken by another of its threads, must still raise
 * KeyboardInterrupt: before the fix it spun on, the signal never seen. */
static void forkserver_python_child_busy_in_bytecode_ends_on_sigint(
    void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call s;
  uint64_t t0;
  int pid, tid;
  (void)state;

  FS_SKIP_UNDER_TSAN();
  ts_start(&t);
  fs_py_server(&t);
  actor *a = ts_spawn_opts(&t, fs_opts_py(0, 0), &ex);
  pid = (int)fs_call(&t, a, "pid", NULL, 0, 0);
  TH_OK(ts_call_ints(a, "spin", NULL, 0, &s, NULL));
  ts_run_for(&t, 100); /* spinning */
  tid = sigint_taker(pid);
  assert_true(tid > 0);
  t0 = th_now_ms();
  assert_int_equal(syscall(SYS_tgkill, pid, tid, SIGINT), 0);
  ts_wait(&t, &ex.exited, 5000);
  if (!ex.exited)
    kill_survivor(pid);
  assert_true(ex.exited);
  print_message("  KeyboardInterrupt, exit %llu ms after the SIGINT to "
                "thread %d: %s\n", (unsigned long long)(th_now_ms() - t0),
                tid, ex.reason);
  assert_int_equal(ex.signal, 0);
  assert_int_equal(ex.status, 1);
  ts_wait(&t, &s.done, 5000);
  ts_call_fini(&s);
  ts_finish(&t);
}

/* An actor that outlives its fork server (it cleared its parent-death
 * signal), its parent gone, busy in a call that swallows Cancelled: SIGINT
 * still ends it, through KeyboardInterrupt. */
static void forkserver_orphaned_python_child_ends_on_sigint(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r, h;
  char marker[256], buf[64];
  int pid, fd;
  ssize_t n;
  (void)state;

  FS_SKIP_UNDER_TSAN();
  snprintf(marker, sizeof(marker), "/tmp/libactor-fs-orphan-%d", getpid());
  unlink(marker);
  ts_start(&t);
  fs_py_server(&t);
  actor *a = ts_spawn_opts(&t, fs_opts_py(0, 0), &ex);
  TH_OK(ts_call_str(a, "orphan_me", marker, &r));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  pid = (int)r.value;
  ts_call_fini(&r);
  TH_OK(ts_call_ints(a, "hang", NULL, 0, &h, NULL));
  ts_run_for(&t, 50);
  kill(actor_rt_forkserver_pid(t.rt), SIGKILL);
  ts_wait(&t, &ex.exited, 5000);
  ts_wait(&t, &h.done, 5000);
  TH_ERR(h.status, ACTOR_ECLOSED);
  ts_call_fini(&h);
  ts_run_for(&t, 100);
  assert_false(pid_gone(pid)); /* an orphan now, still running */
  kill(pid, SIGINT);
  wait_gone(pid, 5000);
  fd = open(marker, O_RDONLY);
  assert_true(fd >= 0);
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  unlink(marker);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_string_equal(buf, "KeyboardInterrupt");
  ts_finish(&t);
}

/* Forking beside live subint actors of the host: the fork happens in the
 * server, which has none. */
static void forkserver_spawn_while_subint_actors_alive(void **state) {
  struct ts t;
  struct ts_exit sx[2], fx[3];
  int64_t v[2] = {1, 2};
  actor *s[2], *f[3];
  actor_opts *o;
  int i;
  (void)state;

  ts_start(&t);
  fs_py_server(&t);
  for (i = 0; i < 2; i++) {
    TH_OK(actor_opts_new(&o));
    TH_OK(actor_opts_set_backend(o, "subint"));
    TH_OK(actor_opts_set_entry(o, "fsactors:main"));
    TH_OK(actor_opts_add_path(o, getenv("LIBACTOR_TEST_PYDIR")));
    TH_OK(actor_opts_set_deadlines(o, 20000, 2000, 2000, 2000));
    s[i] = ts_spawn_opts(&t, o, &sx[i]);
    assert_int_equal(fs_call(&t, s[i], "add", v, 2, 0), 3);
  }
  for (i = 0; i < 3; i++) {
    f[i] = ts_spawn_opts(&t, i == 2 ? fs_opts_c("fs_entry")
                                 : fs_opts_py(i, ACTOR_SUBINT_ISOLATED),
                      &fx[i]);
    assert_int_equal(fs_call(&t, f[i], "add", v, 2, 0), 3);
  }
  for (i = 0; i < 3; i++) {
    actor_stop(f[i]);
    ts_wait(&t, &fx[i].exited, 5000);
    assert_int_equal(fx[i].status, 0);
  }
  for (i = 0; i < 2; i++) {
    actor_stop(s[i]);
    ts_wait(&t, &sx[i].exited, 10000);
  }
  ts_finish(&t);
}
#endif

static const struct th_helper fs_helpers[] = {
    {"fs_host", helper_fs_host},
    {NULL, NULL},
};

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(forkserver_c_entry),
      TH_TEST(forkserver_c_child_inherits_only_stdio_and_channel),
      TH_TEST(forkserver_cwd_is_the_spawns_and_checked_first),
      TH_TEST(forkserver_stdio_capture_c_entry),
      TH_TEST(forkserver_exit_codes_and_signals_relayed),
      TH_TEST(forkserver_cancel_escalation_on_child_ignoring_sigterm),
      TH_TEST(forkserver_server_killed_mid_call_then_restart),
      TH_TEST(forkserver_host_death_takes_server_and_children),
      TH_TEST(forkserver_close_is_bounded_when_the_server_hangs),
      TH_TEST_T(forkserver_500_cycles_leak_nothing, 120),
      TH_TEST(forkserver_fault_sigkill_before_hello),
      TH_TEST(forkserver_fault_sigkill_mid_call),
      TH_TEST(forkserver_fault_sigkill_mid_stream),
      TH_TEST(forkserver_fault_sigkill_while_handling_cancel),
      TH_TEST(forkserver_bad_c_entry_fails_cleanly),
#ifndef ACTOR_TEST_WITH_PYTHON
      TH_TEST(forkserver_python_entry_without_python_fails_cleanly),
#endif
#ifdef ACTOR_TEST_WITH_PYTHON
      TH_TEST(forkserver_python_main_interp),
      TH_TEST(forkserver_python_fresh_subint_isolated),
      TH_TEST(forkserver_python_fresh_subint_legacy),
      TH_TEST(forkserver_python_after_c_starts_cpython_in_the_server),
      TH_TEST(forkserver_failed_python_start_fails_every_later_python_spawn),
      TH_TEST(forkserver_python_stdout_captured),
      TH_TEST(forkserver_python_child_runs_atexit_and_flushes_at_exit),
      TH_TEST_T(forkserver_python_200_cycles_leak_nothing, 120),
      TH_TEST(forkserver_python_sigint_idle_is_keyboard_interrupt),
      TH_TEST(forkserver_python_subint_sigint_is_keyboard_interrupt),
      TH_TEST(forkserver_orphaned_python_child_ends_on_sigint),
      TH_TEST(forkserver_python_child_busy_in_bytecode_ends_on_sigint),
      TH_TEST(forkserver_spawn_while_subint_actors_alive),
#endif
  };
  /* LIBACTOR_TEST_FILTER=forkserver_python_* runs some (cmocka's glob). */
  if (getenv("LIBACTOR_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("LIBACTOR_TEST_FILTER"));
  return cmocka_run_group_tests_name("forkserver", tests, ts_group_setup,
                                     NULL);
}

int main(int argc, char **argv) {
  const char *tsan = getenv("TSAN_OPTIONS");
  /* ThreadSanitizer cannot follow threads started after a fork of a
   * multi-threaded process, and by default kills such a child: the fork
   * server's Python children are exactly that (forked from its worker
   * thread; they start the inbox's threads).  The server and its children
   * inherit this environment. */
  if (tsan != NULL && strstr(tsan, "die_after_fork") == NULL) {
    char opt[1024];
    snprintf(opt, sizeof(opt), "%s:die_after_fork=0", tsan);
    setenv("TSAN_OPTIONS", opt, 1);
  }
  /* This binary's helpers, then the shared ones. */
  if (argc >= 3 && strcmp(argv[1], "--helper") == 0 &&
      strcmp(argv[2], "fs_host") == 0)
    return th_main(argc, argv, fs_helpers, run_all);
  return th_main(argc, argv, ts_helpers, run_all);
}
