#define _GNU_SOURCE
#include "support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================== */
/* Parent side                                                              */
/* ======================================================================== */

int ts_group_setup(void **state) {
  uv_loop_t loop;
  uv_process_t proc;
  uv_process_options_t po;
  char *args[] = {"/bin/true", NULL};
  (void)state;
  /* A first loop and a first spawn create libuv's process-wide signal
   * pipe and SIGCHLD handling, which live until exit by design. */
  uv_loop_init(&loop);
  memset(&po, 0, sizeof(po));
  po.file = args[0];
  po.args = args;
  if (uv_spawn(&loop, &proc, &po) == 0)
    uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&proc, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}

void ts_start(struct ts *t) {
  memset(t, 0, sizeof(*t));
  TH_OK(uv_loop_init(&t->loop));
  TH_OK(actor_rt_new(&t->rt, &t->loop));
}

static void ts__walk(uv_handle_t *h, void *arg) {
  (void)arg;
  print_message("  left open: handle type %s, active %d\n",
                uv_handle_type_name(uv_handle_get_type(h)), uv_is_active(h));
}

void ts_finish(struct ts *t) {
  int r;
  TH_OK(actor_rt_shutdown(t->rt));
  t->rt = NULL;
  uv_run(&t->loop, UV_RUN_NOWAIT);
  r = uv_loop_close(&t->loop);
  if (r) {
    uv_walk(&t->loop, ts__walk, NULL);
    fail_msg("uv_loop_close: %s — the test left handles open", uv_strerror(r));
  }
}

static void ts__timeout(uv_timer_t *h) { *(int *)h->data = 1; }

void ts_wait(struct ts *t, const int *flag, unsigned ms) {
  uv_timer_t timer;
  int expired = 0;

  if (*flag)
    return;
  uv_timer_init(&t->loop, &timer);
  timer.data = &expired;
  uv_timer_start(&timer, ts__timeout, ms, 0);
  while (!*flag && !expired)
    uv_run(&t->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&t->loop, UV_RUN_NOWAIT);
  if (!*flag)
    fail_msg("condition not reached within %u ms", ms);
}

void ts_run_for(struct ts *t, unsigned ms) {
  uv_timer_t timer;
  int expired = 0;
  uv_timer_init(&t->loop, &timer);
  timer.data = &expired;
  uv_timer_start(&timer, ts__timeout, ms, 0);
  while (!expired)
    uv_run(&t->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&t->loop, UV_RUN_NOWAIT);
}

actor_opts *ts_opts(const char *helper) {
  actor_opts *o;
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_program(o, th_self_exe()));
  TH_OK(actor_opts_add_arg(o, "--helper"));
  TH_OK(actor_opts_add_arg(o, helper));
  TH_OK(actor_opts_set_name(o, helper));
  TH_OK(actor_opts_set_deadlines(o, 5000, 1000, 1000, 1000));
  return o;
}

void ts_on_exit(actor *a, void *arg) {
  struct ts_exit *ex = arg;
  ex->exited = 1;
  ex->status = actor_exit_status(a);
  ex->signal = actor_exit_signal(a);
  ex->error = actor_exit_error(a);
  ex->pid = actor_pid(a);
  snprintf(ex->reason, sizeof(ex->reason), "%s", actor_exit_reason(a));
  assert_int_equal(actor_state(a), ACTOR_STATE_EXITED);
}

void ts_on_hello(actor *a, int status, void *arg) {
  struct ts_exit *ex = arg;
  (void)a;
  ex->hello = status == 0 ? 1 : status;
}

actor *ts_spawn(struct ts *t, const char *helper, struct ts_exit *ex) {
  return ts_spawn_opts(t, ts_opts(helper), ex);
}

actor *ts_spawn_opts(struct ts *t, actor_opts *o, struct ts_exit *ex) {
  actor *a;
  memset(ex, 0, sizeof(*ex));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, ex));
  TH_OK(actor_opts_on_hello(o, ts_on_hello, ex));
  TH_OK(actor_spawn(t->rt, o, &a));
  actor_opts_free(o);
  return a;
}

/* One line of /proc/PID/task/TID/<name>, newline dropped ("" if none). */
static void ts_task_line(int pid, const char *tid, const char *name,
                         char *buf, size_t len) {
  char p[320];
  FILE *f;
  buf[0] = '\0';
  if (pid > 0)
    snprintf(p, sizeof(p), "/proc/%d/task/%s/%s", pid, tid, name);
  else
    snprintf(p, sizeof(p), "/proc/self/task/%s/%s", tid, name);
  if ((f = fopen(p, "r")) != NULL) {
    if (fgets(buf, (int)len, f) == NULL)
      buf[0] = '\0';
    fclose(f);
  }
  buf[strcspn(buf, "\n")] = '\0';
}

void ts_print_threads(int pid, const char *who) {
  char p[64], stat[512], wchan[64];
  struct dirent *e;
  DIR *d;

  if (pid > 0)
    snprintf(p, sizeof(p), "/proc/%d/task", pid);
  else
    snprintf(p, sizeof(p), "/proc/self/task");
  d = opendir(p);
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    ts_task_line(pid, e->d_name, "stat", stat, sizeof(stat));
    ts_task_line(pid, e->d_name, "wchan", wchan, sizeof(wchan));
    fprintf(stderr, "%s: thread %s: %s; waits in %s\n", who, e->d_name, stat,
            wchan);
  }
  if (d != NULL)
    closedir(d);
}

size_t ts_pack_int(char *buf, size_t cap, int64_t v) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_int64(&pk, v);
  n = sb.size <= cap ? sb.size : 0;
  memcpy(buf, sb.data, n);
  msgpack_sbuffer_destroy(&sb);
  return n;
}

int64_t ts_unpack_int(const char *data, size_t len) {
  msgpack_unpacked u;
  size_t off = 0;
  int64_t v = INT64_MIN;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
    if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      v = (int64_t)u.data.via.u64;
    else if (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
      v = u.data.via.i64;
  }
  msgpack_unpacked_destroy(&u);
  return v;
}

void ts_call_init(struct ts_call *r) {
  memset(r, 0, sizeof(*r));
  r->order_ok = 1;
}

void ts_call_fini(struct ts_call *r) {
  free(r->items);
  r->items = NULL;
}

void ts_call_cb(actor_call *c, int ev, int status, const char *data,
                size_t len, void *arg) {
  struct ts_call *r = arg;
  msgpack_unpacked u;
  size_t off = 0;

  if (r->done)
    r->order_ok = 0; /* anything after DONE is a bug */
  if (ev == ACTOR_EV_ITEM) {
    if (r->items == NULL)
      r->items = malloc(TS_MAX_ITEMS * sizeof(*r->items));
    if (r->nitems < TS_MAX_ITEMS)
      r->items[r->nitems] = ts_unpack_int(data, len);
    r->nitems++;
    return;
  }
  if (ev == ACTOR_EV_END) {
    r->ends++;
    return;
  }
  r->done = 1;
  r->status = status;
  if (status == 0) {
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
      if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
          u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        r->value = ts_unpack_int(data, len);
        r->has_value = 1;
      } else if (u.data.type == MSGPACK_OBJECT_STR) {
        snprintf(r->str, sizeof(r->str), "%.*s", (int)u.data.via.str.size,
                 u.data.via.str.ptr);
      } else if (u.data.type == MSGPACK_OBJECT_BIN) {
        r->bin_len = u.data.via.bin.size;
      }
    }
    msgpack_unpacked_destroy(&u);
  } else {
    snprintf(r->etype, sizeof(r->etype), "%s", actor_call_error_type(c));
    snprintf(r->emsg, sizeof(r->emsg), "%s", actor_call_error_message(c));
    snprintf(r->etb, sizeof(r->etb), "%s", actor_call_traceback(c));
  }
}

int ts_call_ints(actor *a, const char *fn, const int64_t *v, int n,
                 struct ts_call *r, actor_call **cp) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int i, rc;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, (size_t)n);
  for (i = 0; i < n; i++)
    msgpack_pack_int64(&pk, v[i]);
  ts_call_init(r);
  rc = actor_call_start(a, fn, sb.data, sb.size, ts_call_cb, r, cp);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int ts_call_str(actor *a, const char *fn, const char *s, struct ts_call *r) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int rc;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_str(&pk, strlen(s));
  msgpack_pack_str_body(&pk, s, strlen(s));
  ts_call_init(r);
  rc = actor_call_start(a, fn, sb.data, sb.size, ts_call_cb, r, NULL);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

/* ======================================================================== */
/* Child side: the well-behaved test actor                                  */
/* ======================================================================== */

/* args as an array of ints; returns the count, or -1 */
static int args_ints(const char *args, size_t len, int64_t *out, int max) {
  msgpack_unpacked u;
  size_t off = 0;
  int n = -1, i;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY &&
      (int)u.data.via.array.size <= max) {
    n = (int)u.data.via.array.size;
    for (i = 0; i < n && n >= 0; i++) {
      msgpack_object *o = &u.data.via.array.ptr[i];
      if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        out[i] = (int64_t)o->via.u64;
      else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        out[i] = o->via.i64;
      else
        n = -1;
    }
  }
  msgpack_unpacked_destroy(&u);
  return n;
}

/* args as [str]; copies into out */
static int args_str(const char *args, size_t len, char *out, size_t cap) {
  msgpack_unpacked u;
  size_t off = 0;
  int ok = -1;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 1 &&
      u.data.via.array.ptr[0].type == MSGPACK_OBJECT_STR) {
    snprintf(out, cap, "%.*s", (int)u.data.via.array.ptr[0].via.str.size,
             u.data.via.array.ptr[0].via.str.ptr);
    ok = 0;
  }
  msgpack_unpacked_destroy(&u);
  return ok;
}

int ts_ret_int(actor_ctx *x, int64_t v) {
  char b[16];
  return actor_ctx_return(x, b, ts_pack_int(b, sizeof(b), v));
}

int ts_ret_str(actor_ctx *x, const char *s) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int r;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_str(&pk, strlen(s));
  msgpack_pack_str_body(&pk, s, strlen(s));
  r = actor_ctx_return(x, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return r;
}

static int fn_add(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t v[2];
  if (args_ints(a, n, v, 2) != 2)
    return actor_ctx_error(x, "TypeError", "add takes two ints", "");
  return ts_ret_int(x, v[0] + v[1]);
}

static int fn_count(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t v, i;
  char b[16];
  if (args_ints(a, n, &v, 1) != 1)
    return actor_ctx_error(x, "TypeError", "count takes one int", "");
  for (i = 0; i < v; i++)
    if (actor_ctx_yield(x, b, ts_pack_int(b, sizeof(b), i)))
      break;
  actor_ctx_end(x);
  return ts_ret_int(x, i);
}

static void echo_item(actor_ctx *x, const char *d, size_t n, void *arg) {
  int64_t *seen = arg;
  char b[16];
  if (d == NULL) {
    ts_ret_int(x, *seen);
    free(seen);
    return;
  }
  (*seen)++;
  actor_ctx_yield(x, b, ts_pack_int(b, sizeof(b), ts_unpack_int(d, n) + 1));
}

static void echo_cancel(actor_ctx *x, void *arg) {
  free(arg);
  actor_ctx_error(x, "libactor.Cancelled", "echo cancelled", "");
}

static int fn_echo(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t *seen = calloc(1, sizeof(*seen));
  char b[16];
  actor_ctx_on_item(x, echo_item, seen);
  actor_ctx_on_cancel(x, echo_cancel, seen);
  /* First answer: the stream is open. */
  return actor_ctx_yield(x, b, ts_pack_int(b, sizeof(b), -1));
}

struct nap {
  uv_timer_t t;
  actor_ctx *x;
};
static void nap_closed(uv_handle_t *h) { free(h->data); }
static void nap_fire(uv_timer_t *t) {
  struct nap *s = t->data;
  ts_ret_int(s->x, 0);
  uv_close((uv_handle_t *)t, nap_closed);
}
static void nap_cancel(actor_ctx *x, void *arg) {
  struct nap *s = arg;
  actor_ctx_error(x, "libactor.Cancelled", "nap cancelled", "");
  uv_close((uv_handle_t *)&s->t, nap_closed);
}
static int nap_start(actor_ctx *x, const char *a, size_t n, int listen) {
  int64_t ms;
  struct nap *s;
  if (args_ints(a, n, &ms, 1) != 1)
    return actor_ctx_error(x, "TypeError", "nap takes one int", "");
  s = calloc(1, sizeof(*s));
  s->x = x;
  uv_timer_init(actor_child_loop(actor_ctx_child(x)), &s->t);
  s->t.data = s;
  uv_timer_start(&s->t, nap_fire, (uint64_t)ms, 0);
  if (listen)
    actor_ctx_on_cancel(x, nap_cancel, s);
  return 0;
}
static int fn_nap(actor_ctx *x, const char *a, size_t n, void *arg) {
  return nap_start(x, a, n, 1);
}
/* Does not listen for cancellation: the runtime answers for it. */
static int fn_nap_deaf(actor_ctx *x, const char *a, size_t n, void *arg) {
  return nap_start(x, a, n, 0);
}

/* Gives up without answering: the runtime answers with the code. */
static int fn_give_up(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t which = 0;
  args_ints(a, n, &which, 1);
  return which == 1 ? ACTOR_ECANCELED : -EIO;
}

static int fn_fail(actor_ctx *x, const char *a, size_t n, void *arg) {
  return actor_ctx_error(x, "ValueError", "bad value: 42",
                         "Traceback (most recent call last):\n"
                         "  File \"worker.c\", line 1, in fn_fail\n"
                         "ValueError: bad value: 42\n");
}

/* An error whose message alone is larger than any frame. */
static int fn_fail_huge(actor_ctx *x, const char *a, size_t n, void *arg) {
  size_t len = 200 * 1024;
  char *msg = malloc(len + 1);
  int r;
  memset(msg, 'm', len);
  msg[len] = '\0';
  r = actor_ctx_error(x, "HugeError", msg, msg);
  free(msg);
  return r;
}

static int fn_exit_now(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t code = 0;
  args_ints(a, n, &code, 1);
  _exit((int)code);
}

static int fn_crash(actor_ctx *x, const char *a, size_t n, void *arg) {
  signal(SIGABRT, SIG_DFL);
  abort();
}

/* Blocks the actor's loop: STOP is not read while it sleeps. */
static int fn_block(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t ms = 0;
  args_ints(a, n, &ms, 1);
  usleep((useconds_t)ms * 1000);
  return ts_ret_int(x, ms);
}

static int fn_ignore_term(actor_ctx *x, const char *a, size_t n, void *arg) {
  signal(SIGTERM, SIG_IGN);
  return ts_ret_int(x, 1);
}

static int fn_big(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t size;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char *blob;
  int r;
  if (args_ints(a, n, &size, 1) != 1 || size < 0)
    return actor_ctx_error(x, "TypeError", "big takes one int", "");
  blob = calloc(1, (size_t)size + 1);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_bin(&pk, (size_t)size);
  msgpack_pack_bin_body(&pk, blob, (size_t)size);
  r = actor_ctx_return(x, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  free(blob);
  /* E2BIG is expected for an oversized value: the runtime answered with a
   * FrameTooBig error for us. */
  return r == ACTOR_E2BIG ? 0 : r;
}

static int fn_getenv(actor_ctx *x, const char *a, size_t n, void *arg) {
  char name[128];
  const char *v;
  if (args_str(a, n, name, sizeof(name)))
    return actor_ctx_error(x, "TypeError", "getenv takes one str", "");
  v = getenv(name);
  return ts_ret_str(x, v ? v : "<unset>");
}

static int fn_cwd(actor_ctx *x, const char *a, size_t n, void *arg) {
  char buf[512];
  return ts_ret_str(x, getcwd(buf, sizeof(buf)) ? buf : "<error>");
}

static int g_argc;
static char **g_argv;
static int fn_argv(actor_ctx *x, const char *a, size_t n, void *arg) {
  char buf[256] = "";
  int i;
  for (i = 0; i < g_argc; i++) {
    strncat(buf, g_argv[i], sizeof(buf) - strlen(buf) - 2);
    strcat(buf, "|");
  }
  return ts_ret_str(x, buf);
}

/* Writes "line 1".."line 3" to stdout, an unterminated tail, and one line
 * to stderr. */
static int fn_say(actor_ctx *x, const char *a, size_t n, void *arg) {
  fprintf(stdout, "line 1\nline 2\nline 3\ntail without newline");
  fflush(stdout);
  fprintf(stderr, "an error line\n");
  fflush(stderr);
  return ts_ret_int(x, 0);
}

static int fn_pid(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_int(x, getpid());
}

/* ---- actor trees: a child with a child of its own ----------------------- */

struct tree {
  actor_rt *rt;
  actor *grandchild;
  int gc_pid;
};
static struct tree g_tree;

static void tree_reply(actor_call *c, int ev, int status, const char *d,
                       size_t n, void *arg) {
  actor_ctx *x = arg;
  char b[16];
  if (ev != ACTOR_EV_DONE)
    return;
  if (status != 0) {
    actor_ctx_error(x, actor_err_name(status), actor_call_error_message(c),
                    "");
    return;
  }
  /* Return the grandchild's answer times 1000 plus nothing else: the
   * parent checks the arithmetic went through two hops. */
  actor_ctx_return(x, b, ts_pack_int(b, sizeof(b), ts_unpack_int(d, n) * 1000));
}

static void tree_gc_exit(actor *a, void *arg) { g_tree.grandchild = NULL; }

/* spawn_grandchild(a, b): spawns the test actor as our own child, calls
 * add(a, b) on it, returns the sum * 1000. */
static int fn_tree_add(actor_ctx *x, const char *a, size_t n, void *arg) {
  actor_opts *o;
  int r;
  if (g_tree.rt == NULL) {
    r = actor_rt_new(&g_tree.rt, actor_child_loop(actor_ctx_child(x)));
    if (r)
      return r;
  }
  if (g_tree.grandchild == NULL) {
    actor_opts_new(&o);
    actor_opts_set_program(o, th_self_exe());
    actor_opts_add_arg(o, "--helper");
    actor_opts_add_arg(o, "actor");
    actor_opts_set_name(o, "grandchild");
    actor_opts_on_exit(o, tree_gc_exit, NULL);
    actor_opts_set_deadlines(o, 5000, 1000, 1000, 1000);
    r = actor_spawn(g_tree.rt, o, &g_tree.grandchild);
    actor_opts_free(o);
    if (r)
      return r;
  }
  return actor_call_start(g_tree.grandchild, "add", a, n, tree_reply, x, NULL);
}

static int fn_tree_pid(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_int(x, g_tree.grandchild ? actor_pid(g_tree.grandchild) : -1);
}

static void tree_stop(actor_child *c, void *arg) {
  /* Stopping this actor stops its children first. */
  if (g_tree.rt != NULL)
    actor_rt_close(g_tree.rt, NULL, NULL);
}

static int helper_actor(int argc, char **argv) {
  actor_child *c;
  int r;
  g_argc = argc;
  g_argv = argv;
  r = actor_child_new(&c, NULL);
  if (r) {
    fprintf(stderr, "helper: %s\n", actor_strerror(r));
    return 2;
  }
  actor_child_register(c, "add", fn_add, NULL);
  actor_child_register(c, "count", fn_count, NULL);
  actor_child_register(c, "echo", fn_echo, NULL);
  actor_child_register(c, "nap", fn_nap, NULL);
  actor_child_register(c, "nap_deaf", fn_nap_deaf, NULL);
  actor_child_register(c, "fail", fn_fail, NULL);
  actor_child_register(c, "give_up", fn_give_up, NULL);
  actor_child_register(c, "exit_now", fn_exit_now, NULL);
  actor_child_register(c, "fail_huge", fn_fail_huge, NULL);
  actor_child_register(c, "crash", fn_crash, NULL);
  actor_child_register(c, "block", fn_block, NULL);
  actor_child_register(c, "ignore_term", fn_ignore_term, NULL);
  actor_child_register(c, "big", fn_big, NULL);
  actor_child_register(c, "getenv", fn_getenv, NULL);
  actor_child_register(c, "cwd", fn_cwd, NULL);
  actor_child_register(c, "argv", fn_argv, NULL);
  actor_child_register(c, "say", fn_say, NULL);
  actor_child_register(c, "pid", fn_pid, NULL);
  actor_child_register(c, "tree_add", fn_tree_add, NULL);
  actor_child_register(c, "tree_pid", fn_tree_pid, NULL);
  actor_child_on_stop(c, tree_stop, NULL);
  r = actor_child_run(c);
  if (g_tree.rt != NULL) {
    /* The loop ran dry, so the runtime's close has completed. */
    actor_rt_free(g_tree.rt);
  }
  actor_child_free(c);
  return r;
}

/* ======================================================================== */
/* Child side: rogue actors that break the protocol on purpose              */
/* ======================================================================== */

static int rogue_fd(void) {
  const char *s = getenv("LIBACTOR_FD");
  return s ? atoi(s) : -1;
}

static void rogue_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      _exit(9);
    }
    c += w;
    n -= (size_t)w;
  }
}

static void rogue_frame(int fd, const msgpack_sbuffer *sb) {
  uint32_t be = htonl((uint32_t)sb->size);
  rogue_write_all(fd, &be, 4);
  rogue_write_all(fd, sb->data, sb->size);
}

static void rogue_hello(int fd, uint64_t version) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 6);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_uint64(&pk, version);
  msgpack_pack_int(&pk, getpid());
  msgpack_pack_str(&pk, 7);
  msgpack_pack_str_body(&pk, "subproc", 7);
  msgpack_pack_str(&pk, 5);
  msgpack_pack_str_body(&pk, "rogue", 5);
  rogue_frame(fd, &sb);
  msgpack_sbuffer_destroy(&sb);
}

/* Read one frame; returns its call id (element 1) or -1 at EOF. */
static int64_t rogue_read_call(int fd) {
  uint32_t be;
  char *body;
  size_t got = 0, n;
  int64_t id = -1;
  msgpack_unpacked u;
  size_t off = 0;
  while (got < 4) {
    ssize_t r = read(fd, (char *)&be + got, 4 - got);
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  n = ntohl(be);
  body = malloc(n ? n : 1);
  for (got = 0; got < n;) {
    ssize_t r = read(fd, body + got, n - got);
    if (r <= 0) {
      free(body);
      return -1;
    }
    got += (size_t)r;
  }
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, body, n, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size >= 2)
    id = (int64_t)u.data.via.array.ptr[1].via.u64;
  msgpack_unpacked_destroy(&u);
  free(body);
  return id;
}

static void rogue_linger(int fd) {
  /* Wait for the parent to hang up (or to kill us). */
  while (rogue_read_call(fd) >= 0)
    ;
}

static int helper_rogue_garbage(int argc, char **argv) {
  int fd = rogue_fd();
  static const unsigned char bad[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
  rogue_hello(fd, ACTOR_PROTOCOL_VERSION);
  if (rogue_read_call(fd) < 0)
    return 1;
  rogue_write_all(fd, bad, sizeof(bad));
  rogue_linger(fd);
  return 0;
}

/* Sends garbage and exits at once, while the parent still has output
 * queued for it: the parent's last flush then fails with EPIPE inside its
 * own close path. */
static int helper_rogue_garbage_exit(int argc, char **argv) {
  int fd = rogue_fd();
  static const unsigned char bad[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
  rogue_hello(fd, ACTOR_PROTOCOL_VERSION);
  if (rogue_read_call(fd) < 0)
    return 1;
  rogue_write_all(fd, bad, sizeof(bad));
  _exit(0);
}

static int helper_rogue_unknown_kind(int argc, char **argv) {
  int fd = rogue_fd();
  int64_t id;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  rogue_hello(fd, ACTOR_PROTOCOL_VERSION);
  id = rogue_read_call(fd);
  if (id < 0)
    return 1;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, 99);
  msgpack_pack_int64(&pk, id);
  rogue_frame(fd, &sb);
  msgpack_sbuffer_destroy(&sb);
  rogue_linger(fd);
  return 0;
}

static int helper_rogue_wrong_direction(int argc, char **argv) {
  int fd = rogue_fd();
  msgpack_sbuffer sb;
  msgpack_packer pk;
  rogue_hello(fd, ACTOR_PROTOCOL_VERSION);
  if (rogue_read_call(fd) < 0)
    return 1;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4); /* a CALL, which only a parent may send */
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 5);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, "x", 1);
  msgpack_pack_nil(&pk);
  rogue_frame(fd, &sb);
  msgpack_sbuffer_destroy(&sb);
  rogue_linger(fd);
  return 0;
}

static int helper_rogue_bad_version(int argc, char **argv) {
  int fd = rogue_fd();
  rogue_hello(fd, 999);
  rogue_linger(fd);
  return 0;
}

static int helper_rogue_no_hello(int argc, char **argv) {
  /* Holds the channel open, says nothing, and ends only when killed. */
  for (;;)
    pause();
  return 0;
}

/* Announces a frame far over any maximum, with garbage where kind and id
 * would be: it cannot be attributed to a call. */
static int helper_rogue_huge_unattributed(int argc, char **argv) {
  int fd = rogue_fd();
  unsigned char junk[4 + 64];
  rogue_hello(fd, ACTOR_PROTOCOL_VERSION);
  if (rogue_read_call(fd) < 0)
    return 1;
  memset(junk, 0xc1, sizeof(junk));
  junk[0] = 0x7f;
  junk[1] = junk[2] = junk[3] = 0xff;
  rogue_write_all(fd, junk, sizeof(junk));
  rogue_linger(fd);
  return 0;
}

/* Answers its first call with a well-formed RETURN larger than the
 * parent's maximum (set to 64 KiB by the test), then answers every later
 * call properly with 7. */
static int helper_rogue_big_reply(int argc, char **argv) {
  int fd = rogue_fd();
  int64_t id;
  int first = 1;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  static char blob[200 * 1024];
  rogue_hello(fd, ACTOR_PROTOCOL_VERSION);
  while ((id = rogue_read_call(fd)) >= 0) {
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_int64(&pk, id);
    if (first) {
      msgpack_pack_bin(&pk, sizeof(blob));
      msgpack_pack_bin_body(&pk, blob, sizeof(blob));
      first = 0;
    } else {
      msgpack_pack_int(&pk, 7);
    }
    rogue_frame(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
  }
  return 0;
}

const struct th_helper ts_helpers[] = {
    {"actor", helper_actor},
    {"rogue_garbage", helper_rogue_garbage},
    {"rogue_garbage_exit", helper_rogue_garbage_exit},
    {"rogue_unknown_kind", helper_rogue_unknown_kind},
    {"rogue_wrong_direction", helper_rogue_wrong_direction},
    {"rogue_bad_version", helper_rogue_bad_version},
    {"rogue_no_hello", helper_rogue_no_hello},
    {"rogue_huge_unattributed", helper_rogue_huge_unattributed},
    {"rogue_big_reply", helper_rogue_big_reply},
    {NULL, NULL},
};
