/* worker — an actor program written in C.
 *
 * It serves four functions to its parent:
 *   add(a, b)        -> a + b
 *   count(n)         -> streams 0..n-1, returns n
 *   echo()           -> two-way: sends back every item it receives (times
 *                       two), returns how many it saw when the parent ends
 *   nap(ms)          -> answers after `ms` milliseconds, unless cancelled
 *
 * Build it against libactor, run it only through a parent (actor_spawn);
 * started by hand it says it is not an actor and exits with status 2. */
#include <libactor/actor.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Encode one integer as msgpack into `buf`; returns its length. */
static size_t pack_int(char *buf, size_t cap, int64_t v) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t n;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_int64(&pk, v);
  n = sb.size < cap ? sb.size : 0;
  if (n)
    memcpy(buf, sb.data, n);
  msgpack_sbuffer_destroy(&sb);
  return n;
}

/* Decode `args` as an array of integers into out[0..max). */
static int unpack_ints(const char *args, size_t len, int64_t *out, int max) {
  msgpack_unpacked u;
  size_t off = 0;
  int n = -1, i;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY && (int)u.data.via.array.size <= max) {
    n = (int)u.data.via.array.size;
    for (i = 0; i < n; i++) {
      msgpack_object *o = &u.data.via.array.ptr[i];
      if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        out[i] = (int64_t)o->via.u64;
      else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        out[i] = o->via.i64;
      else
        n = -1;
      if (n < 0)
        break;
    }
  }
  msgpack_unpacked_destroy(&u);
  return n;
}

static int fn_add(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t v[2];
  char out[16];
  if (unpack_ints(args, len, v, 2) != 2)
    return actor_ctx_error(x, "TypeError", "add takes two integers", "");
  return actor_ctx_return(x, out, pack_int(out, sizeof(out), v[0] + v[1]));
}

static int fn_count(actor_ctx *x, const char *args, size_t len, void *arg) {
  int64_t n, i;
  char out[16];
  if (unpack_ints(args, len, &n, 1) != 1 || n < 0)
    return actor_ctx_error(x, "TypeError", "count takes one integer >= 0", "");
  for (i = 0; i < n; i++)
    if (actor_ctx_yield(x, out, pack_int(out, sizeof(out), i)))
      break; /* cancelled, or the parent is gone */
  return actor_ctx_return(x, out, pack_int(out, sizeof(out), i));
}

struct echo_state {
  int64_t seen;
};

static void echo_item(actor_ctx *x, const char *data, size_t len, void *arg) {
  struct echo_state *st = arg;
  int64_t v;
  char out[16];
  msgpack_unpacked u;
  size_t off = 0;

  if (data == NULL) { /* the parent ended its side */
    actor_ctx_return(x, out, pack_int(out, sizeof(out), st->seen));
    free(st);
    return;
  }
  msgpack_unpacked_init(&u);
  v = 0;
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    v = (int64_t)u.data.via.u64;
  msgpack_unpacked_destroy(&u);
  st->seen++;
  actor_ctx_yield(x, out, pack_int(out, sizeof(out), v * 2));
}

static void echo_cancel(actor_ctx *x, void *arg) {
  free(arg);
  actor_ctx_error(x, "libactor.Cancelled", "echo cancelled", "");
}

static int fn_echo(actor_ctx *x, const char *args, size_t len, void *arg) {
  struct echo_state *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return -12;
  actor_ctx_on_item(x, echo_item, st);
  actor_ctx_on_cancel(x, echo_cancel, st);
  return 0; /* answered later, from echo_item */
}

struct nap {
  uv_timer_t timer;
  actor_ctx *x;
};

static void nap_closed(uv_handle_t *h) { free(h->data); }

static void nap_done(uv_timer_t *t) {
  struct nap *n = t->data;
  char out[4];
  actor_ctx_return(n->x, out, pack_int(out, sizeof(out), 0));
  uv_close((uv_handle_t *)&n->timer, nap_closed);
}

static void nap_cancel(actor_ctx *x, void *arg) {
  struct nap *n = arg;
  uv_timer_stop(&n->timer);
  actor_ctx_error(x, "libactor.Cancelled", "nap cancelled", "");
  uv_close((uv_handle_t *)&n->timer, nap_closed);
}

static int fn_nap(actor_ctx *x, const char *args, size_t len, void *arg) {
  actor_child *c = actor_ctx_child(x);
  int64_t ms;
  struct nap *n;
  if (unpack_ints(args, len, &ms, 1) != 1 || ms < 0)
    return actor_ctx_error(x, "TypeError", "nap takes one integer >= 0", "");
  n = calloc(1, sizeof(*n));
  if (n == NULL)
    return -12;
  n->x = x;
  uv_timer_init(actor_child_loop(c), &n->timer);
  n->timer.data = n;
  uv_timer_start(&n->timer, nap_done, (uint64_t)ms, 0);
  actor_ctx_on_cancel(x, nap_cancel, n);
  return 0;
}

int main(void) {
  actor_child *c;
  int r = actor_child_new(&c, NULL);
  if (r) {
    fprintf(stderr, "worker: %s — start me with actor_spawn()\n",
            actor_strerror(r));
    return 2;
  }
  actor_child_register(c, "add", fn_add, NULL);
  actor_child_register(c, "count", fn_count, NULL);
  actor_child_register(c, "echo", fn_echo, NULL);
  actor_child_register(c, "nap", fn_nap, NULL);
  r = actor_child_run(c);
  actor_child_free(c);
  return r;
}
