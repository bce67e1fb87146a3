/* C entries for tests/test_forkserver.c: a shared object the fork server
 * loads (actor_opts_set_c_entry(o, "libfs_entries.so:fs_entry")).  It does
 * not link libactor: the actor_* functions are the server's own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <libactor/actor.h>

/* Exported: the server looks it up with dlsym (the build hides symbols
 * by default). */
__attribute__((visibility("default"))) int fs_entry(actor_child *c);
__attribute__((visibility("default"))) int fs_entry_no_hello(actor_child *c);

static int ret_int(actor_ctx *x, int64_t v) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int r;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_int64(&pk, v);
  r = actor_ctx_return(x, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return r;
}

/* The ints of an array argument, at most n; returns how many. */
static int args_ints(const char *args, size_t len, int64_t *v, int n) {
  msgpack_unpacked u;
  size_t off = 0;
  int k = 0;
  uint32_t i;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY)
    for (i = 0; i < u.data.via.array.size && k < n; i++) {
      msgpack_object *o = &u.data.via.array.ptr[i];
      if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
          o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        v[k++] = o->via.i64;
    }
  msgpack_unpacked_destroy(&u);
  return k;
}

static int fn_add(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t v[2] = {0, 0};
  (void)arg;
  args_ints(args, len, v, 2);
  return ret_int(x, v[0] + v[1]);
}

static int fn_pid(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)args, (void)len, (void)arg;
  return ret_int(x, getpid());
}

/* [code]: end the process now with that status. */
static int fn_exit(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t v = 0;
  (void)x, (void)arg;
  args_ints(args, len, &v, 1);
  _exit((int)v);
  return 0;
}

/* [sig]: die of that signal. */
static int fn_raise(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t v = SIGKILL;
  (void)x, (void)arg;
  args_ints(args, len, &v, 1);
  signal((int)v, SIG_DFL);
  raise((int)v);
  return -EINVAL;
}

static void block_forever(uv_timer_t *t) {
  (void)t;
  for (;;)
    pause();
}

/* Ignore SIGTERM, answer, then block the loop for ever (from a timer, once
 * the answer is out): neither STOP nor SIGTERM ends it, SIGKILL does. */
static int fn_stubborn(actor_ctx *x, const char *args, size_t len, void *arg) {
  static uv_timer_t t;
  (void)args, (void)len, (void)arg;
  signal(SIGTERM, SIG_IGN);
  uv_timer_init(actor_child_loop(actor_ctx_child(x)), &t);
  uv_timer_start(&t, block_forever, 0, 0);
  return ret_int(x, 1);
}

/* The working directory, a str. */
static int fn_cwd(actor_ctx *x, const char *args, size_t len, void *arg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char buf[4096];
  int r;
  (void)args, (void)len, (void)arg;
  if (getcwd(buf, sizeof(buf)) == NULL)
    buf[0] = '\0';
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_str(&pk, strlen(buf));
  msgpack_pack_str_body(&pk, buf, strlen(buf));
  r = actor_ctx_return(x, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return r;
}

/* [ms]: block the loop that long, then answer ms (tests/support.c's
 * "block"). */
static int fn_block(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t ms = 0;
  (void)arg;
  args_ints(args, len, &ms, 1);
  usleep((useconds_t)ms * 1000);
  return ret_int(x, ms);
}

/* [n]: stream 0..n-1, then answer how many went out ("count"). */
static int fn_count(actor_ctx *x, const char *args, size_t len, void *arg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int64_t n = 0, i;
  (void)arg;
  args_ints(args, len, &n, 1);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  for (i = 0; i < n; i++) {
    sb.size = 0;
    msgpack_pack_int64(&pk, i);
    if (actor_ctx_yield(x, sb.data, sb.size))
      break;
  }
  msgpack_sbuffer_destroy(&sb);
  actor_ctx_end(x);
  return ret_int(x, i);
}

/* [ms]: answer 0 after ms without blocking the loop; a CANCEL ends it
 * early with libactor.Cancelled ("nap"). */
struct nap {
  uv_timer_t t;
  actor_ctx *x;
};
static void nap_closed(uv_handle_t *h) { free(h->data); }
static void nap_fire(uv_timer_t *t) {
  struct nap *s = t->data;
  ret_int(s->x, 0);
  uv_close((uv_handle_t *)t, nap_closed);
}
static void nap_cancel(actor_ctx *x, void *arg) {
  struct nap *s = arg;
  actor_ctx_error(x, "libactor.Cancelled", "nap cancelled", "");
  uv_close((uv_handle_t *)&s->t, nap_closed);
}
static int fn_nap(actor_ctx *x, const char *args, size_t len, void *arg) {
  struct nap *s = calloc(1, sizeof(*s));
  int64_t ms = 0;
  (void)arg;
  if (s == NULL)
    return -ENOMEM;
  args_ints(args, len, &ms, 1);
  s->x = x;
  uv_timer_init(actor_child_loop(actor_ctx_child(x)), &s->t);
  s->t.data = s;
  uv_timer_start(&s->t, nap_fire, (uint64_t)ms, 0);
  actor_ctx_on_cancel(x, nap_cancel, s);
  return 0;
}

/* [n]: n lines on stdout ("out I"), one on stderr, and one unterminated
 * line on stdout; then answer n. */
static int fn_say(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t n = 0, i;
  (void)arg;
  args_ints(args, len, &n, 1);
  for (i = 0; i < n; i++)
    printf("out %d\n", (int)i);
  printf("tail");
  fflush(stdout);
  fprintf(stderr, "err line\n");
  return ret_int(x, n);
}

/* Never answers (the call stays pending; the loop is free). */
static int fn_hang(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)x, (void)args, (void)len, (void)arg;
  return 0;
}

int fs_entry(actor_child *c) {
  actor_child_register(c, "hang", fn_hang, NULL);
  actor_child_register(c, "cwd", fn_cwd, NULL);
  actor_child_register(c, "block", fn_block, NULL);
  actor_child_register(c, "count", fn_count, NULL);
  actor_child_register(c, "nap", fn_nap, NULL);
  actor_child_register(c, "say", fn_say, NULL);
  actor_child_register(c, "add", fn_add, NULL);
  actor_child_register(c, "pid", fn_pid, NULL);
  actor_child_register(c, "exit", fn_exit, NULL);
  actor_child_register(c, "raise", fn_raise, NULL);
  actor_child_register(c, "stubborn", fn_stubborn, NULL);
  return actor_child_run(c);
}

/* Never says HELLO (tests/support.c's "rogue_no_hello"). */
int fs_entry_no_hello(actor_child *c) {
  (void)c;
  for (;;)
    pause();
}
