/* See peer.h. */
#define _GNU_SOURCE
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/backend.h"

/* ======================================================================== */
/* The peer backend                                                         */
/* ======================================================================== */

struct peer {
  actor *a;
  uv_timer_t exit_timer; /* reports a signalled "death" on a fresh stack */
  int timer_init;
  int closing;
};

int g_peer_fd = -1;
int g_peer_deaf;
int g_peer_signals;

static int peer_available(const char **why) {
  (void)why;
  return 0;
}

static void peer_exit_cb(uv_timer_t *t) {
  struct peer *p = t->data;
  actor__backend_exited(p->a, -1, SIGKILL, 0);
}

static int peer_start(void *st, actor *a, const actor_opts *o) {
  struct peer *p = st;
  int sv[2];
  (void)o;
  p->a = a;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
    return -errno;
  g_peer_fd = sv[1];
  uv_timer_init(a->rt->loop, &p->exit_timer);
  p->exit_timer.data = p;
  p->timer_init = 1;
  a->pid = 0;
  return actor__stream_open(&a->chan, a->rt->loop, sv[0], a->rt->max_frame,
                            &actor__parent_chan_cbs, a);
}

static int peer_signal(void *st, int how) {
  struct peer *p = st;
  (void)how;
  g_peer_signals++;
  if (!g_peer_deaf && !uv_is_active((uv_handle_t *)&p->exit_timer))
    uv_timer_start(&p->exit_timer, peer_exit_cb, 0, 0);
  return 0;
}

static void peer_timer_closed(uv_handle_t *h) {
  struct peer *p = h->data;
  actor__backend_closed(p->a);
}

static void peer_close(void *st) {
  struct peer *p = st;
  if (p->closing)
    return;
  p->closing = 1;
  if (p->timer_init)
    uv_close((uv_handle_t *)&p->exit_timer, peer_timer_closed);
  else
    actor__backend_closed(p->a);
}

static const struct actor__backend peer_backend = {
    1, "peer", sizeof(struct peer), peer_available, peer_start, peer_signal,
    peer_close,
};

/* Spawn a peer actor with short deadlines; the test's end is g_peer_fd. */
actor *peer_spawn(struct ts *t, struct ts_exit *ex, uint64_t hello_ms) {
  actor_opts *o;
  actor *a;
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_name(o, "peer"));
  TH_OK(actor_opts_set_deadlines(o, hello_ms, 200, 200, 200));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, ex));
  TH_OK(actor_opts_on_hello(o, ts_on_hello, ex));
  g_peer_deaf = 0;
  g_peer_signals = 0;
  TH_OK(actor__spawn_backend(t->rt, &peer_backend, o, &a));
  actor_opts_free(o);
  return a;
}

/* ---- the test as the child ------------------------------------------------ */

void peer_write(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    /* A host that closed its end makes this an EPIPE (a failed
     * assertion), not a SIGPIPE that would end the test program. */
    ssize_t w = send(g_peer_fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    assert_true(w > 0);
    c += w;
    n -= (size_t)w;
  }
}

/* One write per frame: small writes on a unix socket each cost a whole
 * buffer's worth of accounting, and the test must not fill it by that. */
void peer_frame(const msgpack_sbuffer *sb) {
  uint32_t be = htonl((uint32_t)sb->size);
  char *f = malloc(sb->size + 4);
  memcpy(f, &be, 4);
  memcpy(f + 4, sb->data, sb->size);
  peer_write(f, sb->size + 4);
  free(f);
}

void pk_begin(msgpack_sbuffer *sb, msgpack_packer *pk, int n, int kind,
                     uint32_t id) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(pk, (size_t)n);
  msgpack_pack_int(pk, kind);
  msgpack_pack_uint32(pk, id);
}

void pk_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

void peer_hello(void) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  pk_begin(&sb, &pk, 6, ACTOR__MSG_HELLO, 0);
  msgpack_pack_uint64(&pk, ACTOR_PROTOCOL_VERSION);
  msgpack_pack_int(&pk, getpid());
  pk_str(&pk, "peer");
  pk_str(&pk, "peer");
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
}

void peer_int(int kind, uint32_t id, int64_t v) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  pk_begin(&sb, &pk, 3, kind, id);
  msgpack_pack_int64(&pk, v);
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
}

/* [kind, id, <depth nested one-element arrays around 1>] */
void peer_nested(int kind, uint32_t id, int depth) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int i;
  pk_begin(&sb, &pk, 3, kind, id);
  for (i = 0; i < depth; i++)
    msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, 1);
  peer_frame(&sb);
  msgpack_sbuffer_destroy(&sb);
}

/* Read and discard what the runtime sent, without blocking. */
size_t peer_drain(void) {
  char buf[65536];
  size_t total = 0;
  ssize_t n;
  while ((n = recv(g_peer_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
    total += (size_t)n;
  return total;
}

void peer_hang_up(void) {
  close(g_peer_fd);
  g_peer_fd = -1;
}

/* The child "exits": its end is closed and the backend reports it. */
void peer_dies(struct ts *t, actor *a) {
  if (g_peer_fd >= 0)
    peer_hang_up();
  ts_run_for(t, 20); /* the runtime sees EOF first, as with a real child */
  actor__backend_exited(a, 0, 0, 0);
}

void peer_started(struct ts *t, actor *a, struct ts_exit *ex) {
  (void)a;
  peer_hello();
  ts_wait(t, &ex->hello, 2000);
  assert_int_equal(ex->hello, 1);
}

