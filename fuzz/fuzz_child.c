/* Fuzz harness: the child side fed bytes "from a parent".
 *
 * The whole child runtime (src/child/child.c: actor_child_new from the
 * environment, HELLO, dispatch, the stop sequence, actor_child_free), not
 * just the codec: it can be made and freed per input, since all it takes
 * from the process is LIBACTOR_FD (set again for every input: the runtime
 * removes it).  Per input:
 *
 *   byte 0: flags (below); the rest: what the "parent" sends.
 *   1. a socketpair; the child runtime on one end, on a loop of its own,
 *      with the functions below registered; it says HELLO (read and
 *      dropped, as everything it writes);
 *   2. the bytes are written (in two halves with FL_SPLIT), the loop
 *      running without blocking until the child has read them all or has
 *      closed its end;
 *   3. the parent goes away (EOF) or, with FL_STOP, a valid STOP comes
 *      first; the loop runs until the child runtime has no handle left;
 *   4. actor_child_free.
 *
 * The functions, for calls the bytes name (the CALL's fn):
 *   echo    returns its arguments;
 *   stream  yields its arguments twice, ends its stream, returns nil;
 *   duplex  two-way: yields each item back, returns the count at END,
 *           answers a cancel with libactor.Cancelled;
 *   later   answers nothing itself; stays open until cancelled or stopped
 *           (the runtime then answers for it);
 *   fail    an error with empty strings;
 *   give_up returns -EIO without answering (the runtime answers).
 *
 * Checked besides ASan/UBSan/LSan: a function's answer is refused only
 * with the documented codes; the loop runs dry (nothing left open) after
 * the parent is gone; no fd is left open. */
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "libactor/actor.h"
#include "fuzz_common.h"
#include "proto/codec.h"
#include "util/buf.h"

enum {
  FL_SPLIT = 1 << 0, /* the bytes in two writes, the loop between */
  FL_STOP = 1 << 1,  /* a valid STOP after the bytes, before EOF */
  FL_OWNED = 1 << 2, /* the runtime owns its loop (else: adopted) */
};

/* The codes a call-answering function may get back. */
static void fz_answer_ok(int r) {
  FZ_CHECK(r == 0 || r == ACTOR_ECANCELED || r == ACTOR_ESTATE ||
           r == ACTOR_ECLOSED || r == ACTOR_E2BIG || r == -EPIPE ||
           r == -ECONNRESET);
}

static int fn_echo(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)arg;
  fz_answer_ok(actor_ctx_return(x, args, len));
  return 0;
}

static int fn_stream(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)arg;
  fz_answer_ok(actor_ctx_yield(x, args, len));
  fz_answer_ok(actor_ctx_yield(x, args, len));
  fz_answer_ok(actor_ctx_end(x));
  fz_answer_ok(actor_ctx_return(x, NULL, 0));
  return 0;
}

static void duplex_item(actor_ctx *x, const char *d, size_t n, void *arg) {
  long *seen = arg;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  if (d == NULL) {
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_long(&pk, *seen);
    fz_answer_ok(actor_ctx_return(x, sb.data, sb.size));
    msgpack_sbuffer_destroy(&sb);
    return;
  }
  (*seen)++;
  fz_answer_ok(actor_ctx_yield(x, d, n));
}

static void duplex_cancel(actor_ctx *x, void *arg) {
  (void)arg;
  fz_answer_ok(actor_ctx_error(x, "libactor.Cancelled", "duplex cancelled", ""));
}

/* The per-call count lives in the context's lifetime: a small pool reset
 * per input keeps the harness free of allocations it would have to track
 * (the call may end in any of several ways). */
static long fz_counts[4096];
static size_t fz_ncounts;

static int fn_duplex(actor_ctx *x, const char *args, size_t len, void *arg) {
  long *seen;
  (void)args;
  (void)len;
  (void)arg;
  if (fz_ncounts == sizeof(fz_counts) / sizeof(fz_counts[0]))
    return ACTOR_E2BIG; /* answered by the runtime */
  seen = &fz_counts[fz_ncounts++];
  *seen = 0;
  actor_ctx_on_item(x, duplex_item, seen);
  actor_ctx_on_cancel(x, duplex_cancel, NULL);
  return 0;
}

static int fn_later(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)x;
  (void)args;
  (void)len;
  (void)arg;
  return 0; /* the runtime answers when it is cancelled or stopped */
}

static int fn_fail(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)args;
  (void)len;
  (void)arg;
  fz_answer_ok(actor_ctx_error(x, "", "", ""));
  return 0;
}

static int fn_give_up(actor_ctx *x, const char *args, size_t len, void *arg) {
  (void)x;
  (void)args;
  (void)len;
  (void)arg;
  return -EIO;
}

static void fz_walk_count(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fz_peer peer;
  struct actor__msg stop;
  struct abuf out;
  uv_loop_t loop, *lp = NULL;
  actor_child *c;
  unsigned flags;
  char fdstr[16];
  int sv[2], fd0, i, open_handles;

  if (size < 1)
    return 0;
  flags = data[0];
  data++;
  size--;
  fd0 = fz_lowest_free_fd();
  fz_ncounts = 0;

  FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  snprintf(fdstr, sizeof(fdstr), "%d", sv[0]);
  FZ_CHECK(setenv("LIBACTOR_FD", fdstr, 1) == 0);
  FZ_CHECK(setenv("LIBACTOR_MAX_FRAME", "1024", 1) == 0);
  fz_peer_init(&peer, sv[1]);
  if (!(flags & FL_OWNED)) {
    FZ_CHECK(uv_loop_init(&loop) == 0);
    lp = &loop;
  }
  FZ_CHECK(actor_child_new(&c, lp) == 0);
  lp = actor_child_loop(c);
  FZ_CHECK(actor_child_register(c, "echo", fn_echo, NULL) == 0);
  FZ_CHECK(actor_child_register(c, "stream", fn_stream, NULL) == 0);
  FZ_CHECK(actor_child_register(c, "duplex", fn_duplex, NULL) == 0);
  FZ_CHECK(actor_child_register(c, "later", fn_later, NULL) == 0);
  FZ_CHECK(actor_child_register(c, "fail", fn_fail, NULL) == 0);
  FZ_CHECK(actor_child_register(c, "give_up", fn_give_up, NULL) == 0);
  FZ_CHECK(actor_child_start(c) == 0);

  fz_peer_feed(&peer, lp, data, size, flags & FL_SPLIT);

  if (flags & FL_STOP) {
    actor__buf_init(&out);
    memset(&stop, 0, sizeof(stop));
    stop.kind = ACTOR__MSG_STOP;
    FZ_CHECK(actor__msg_encode(&out, &stop, 1024) == 0);
    fz_peer_write(&peer, lp, (const uint8_t *)actor__buf_data(&out), out.len);
    actor__buf_fini(&out);
    fz_peer_settle(&peer, lp);
  }
  /* The parent goes away: the child stops, cancelling what is left, and
   * its loop must run dry. */
  fz_peer_close(&peer);
  for (i = 0; i < 1000 && uv_run(lp, UV_RUN_NOWAIT) != 0; i++)
    ;
  open_handles = 0;
  uv_walk(lp, fz_walk_count, &open_handles);
  FZ_CHECK(open_handles == 0);
  actor_child_free(c);
  if (lp == &loop)
    FZ_CHECK(uv_loop_close(&loop) == 0);
  FZ_CHECK(fz_lowest_free_fd() == fd0);
  return 0;
}
