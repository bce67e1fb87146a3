/* Fuzz harness: the parent side fed bytes "from a child".
 *
 * The bytes reach the REAL parent dispatch — the socket transport, the
 * framer, the message decoder and src/rt/actor.c's channel callbacks —
 * through the private fdpeer backend (src/spawn/fdpeer.h): the actor's
 * channel is one end of a socketpair and this harness is the child at the
 * other end.  Per input, with a fresh loop and runtime:
 *
 *   byte 0: flags, byte 1: re-entrancy flags (below); the rest: what the
 *   "child" sends.
 *   1. spawn, and start call 1 ("f", args [1]) and, with FL_CALL2, call 2
 *      ("g", a two-way call); both are queued until HELLO;
 *   2. with FL_HELLO, a valid HELLO goes first, so that half the inputs
 *      reach the states after it;
 *   3. the bytes are written (in two halves with FL_SPLIT, the loop running
 *      in between), and the loop runs without blocking until the runtime
 *      has read them all or has closed the channel;
 *   4. the host acts on the calls still in flight (FL_SEND, FL_CANCEL,
 *      FL_STOP), then the child "exits" (or is killed, FL_KILL) and closes
 *      its end; the loop runs until the exit callback;
 *   5. the runtime is closed and freed and the loop closed.
 *
 * Re-entrancy flags make the host call back into the library from inside
 * its callbacks, as hosts do: from call 1's DONE, send on, cancel, or
 * start another call; from an ITEM, stop or kill the actor or cancel that
 * very call; from HELLO, start a call; from the exit callback, close the
 * runtime.
 *
 * Checked on every input besides ASan/UBSan/LSan: each call ends DONE
 * exactly once and nothing follows its DONE; the exit callback runs once;
 * a child that said a valid HELLO first gets hello status 0; the loop
 * closes with no handle left; no fd is left open. */
#include <msgpack.h>
#include <signal.h>
#include <string.h>

#include "fuzz_common.h"
#include "proto/codec.h"
#include "rt/internal.h"
#include "spawn/fdpeer.h"

enum {
  FL_HELLO = 1 << 0,  /* a valid HELLO before the fuzz bytes */
  FL_SMALL = 1 << 1,  /* max frame 1 KiB (oversize paths in small inputs) */
  FL_CALL2 = 1 << 2,  /* a second, two-way call in flight */
  FL_SEND = 1 << 3,   /* afterwards: an item and END on call 2 */
  FL_CANCEL = 1 << 4, /* afterwards: cancel call 1 */
  FL_STOP = 1 << 5,   /* afterwards: actor_stop before the child exits */
  FL_SPLIT = 1 << 6,  /* the bytes in two writes, the loop between */
  FL_KILL = 1 << 7,   /* the child is SIGKILLed instead of exiting */
};

enum {
  RE_DONE_SEND = 1 << 0,   /* call 1's DONE: an item and END on call 2 */
  RE_DONE_CANCEL = 1 << 1, /* call 1's DONE: cancel call 2 */
  RE_DONE_START = 1 << 2,  /* call 1's DONE: start call 4 */
  RE_ITEM_STOP = 1 << 3,   /* any ITEM: actor_stop */
  RE_ITEM_KILL = 1 << 4,   /* any ITEM: actor_kill (SIGTERM) */
  RE_ITEM_CANCEL = 1 << 5, /* any ITEM: cancel that call */
  RE_HELLO_START = 1 << 6, /* HELLO: start call 3 */
  RE_EXIT_CLOSE = 1 << 7,  /* exit callback: actor_rt_close */
};

#define FZ_CALLS 4

struct fz_world;

struct fz_call {
  struct fz_world *w;
  actor_call *c; /* until DONE */
  int started;
  int done, status;
  int after_done; /* events after DONE: must stay 0 */
  int items, ends;
};

struct fz_world {
  struct fz_call call[FZ_CALLS];
  unsigned re; /* re-entrancy flags */
  actor_rt *rt;
  actor *a; /* until the exit callback */
  int hello, hello_status;
  int exited, exit_error;
  char reason[160];
  int rt_closed;
};

static const char fz_item[] = {0x2a}; /* 42 */

static void fz_start(struct fz_world *w, int i, const char *fn);

static void fz_on_call(actor_call *c, int ev, int status, const char *data,
                       size_t len, void *arg) {
  struct fz_call *fc = arg;
  struct fz_world *w = fc->w;
  (void)status;
  if (fc->done)
    fc->after_done++;
  switch (ev) {
  case ACTOR_EV_ITEM:
    FZ_CHECK(data != NULL || len == 0);
    fc->items++;
    if ((w->re & RE_ITEM_CANCEL) && fc->c != NULL)
      actor_call_cancel(fc->c);
    if ((w->re & RE_ITEM_STOP) && w->a != NULL)
      actor_stop(w->a);
    if ((w->re & RE_ITEM_KILL) && w->a != NULL)
      actor_kill(w->a, 0);
    break;
  case ACTOR_EV_END:
    fc->ends++;
    break;
  case ACTOR_EV_DONE:
    /* The error accessors are valid here and never NULL. */
    FZ_CHECK(actor_call_error_type(c) != NULL);
    FZ_CHECK(actor_call_error_message(c) != NULL);
    FZ_CHECK(actor_call_traceback(c) != NULL);
    fc->done++;
    fc->status = status;
    fc->c = NULL;
    if (fc != &w->call[0])
      break;
    if ((w->re & RE_DONE_SEND) && w->call[1].c != NULL) {
      actor_call_send(w->call[1].c, fz_item, sizeof(fz_item));
      if (w->call[1].c != NULL)
        actor_call_end(w->call[1].c);
    }
    if ((w->re & RE_DONE_CANCEL) && w->call[1].c != NULL)
      actor_call_cancel(w->call[1].c);
    if ((w->re & RE_DONE_START) && w->a != NULL)
      fz_start(w, 3, "late");
    break;
  default:
    FZ_CHECK(!"unknown call event");
  }
}

static void fz_on_rt_closed(actor_rt *rt, void *arg);

static void fz_on_hello(actor *a, int status, void *arg) {
  struct fz_world *w = arg;
  (void)a;
  w->hello++;
  w->hello_status = status;
  if ((w->re & RE_HELLO_START) && status == 0)
    fz_start(w, 2, "h");
}

static void fz_on_exit(actor *a, void *arg) {
  struct fz_world *w = arg;
  FZ_CHECK(actor_state(a) == ACTOR_STATE_EXITED);
  FZ_CHECK(actor_exit_reason(a) != NULL);
  w->exited++;
  w->exit_error = actor_exit_error(a);
  snprintf(w->reason, sizeof(w->reason), "%s", actor_exit_reason(a));
  w->a = NULL;
  if (w->re & RE_EXIT_CLOSE)
    FZ_CHECK(actor_rt_close(w->rt, fz_on_rt_closed, w) == 0);
}

/* Start call i; the actor may refuse it (stopping), which is fine. */
static void fz_start(struct fz_world *w, int i, const char *fn) {
  struct fz_call *fc = &w->call[i];
  if (fc->started || w->a == NULL)
    return;
  fc->w = w;
  if (actor_call_start(w->a, fn, NULL, 0, fz_on_call, fc, &fc->c) == 0)
    fc->started = 1;
  else
    FZ_CHECK(fc->c == NULL);
}

static void fz_on_rt_closed(actor_rt *rt, void *arg) {
  (void)rt;
  ((struct fz_world *)arg)->rt_closed = 1;
}

/* A valid HELLO frame, as a child runtime says it. */
static void fz_hello(struct abuf *out) {
  struct actor__msg m;
  actor__msg_hello(&m, "fdpeer", "fuzz");
  FZ_CHECK(actor__msg_encode(out, &m, ACTOR__DEFAULT_MAX_FRAME) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char args1[] = {(char)0x91, 0x01}; /* [1] */
  struct fz_world w;
  struct fz_peer peer;
  struct abuf hello;
  uv_loop_t loop;
  actor_rt *rt;
  actor_opts *o;
  actor *a;
  unsigned flags;
  int sv[2], fd0, i;

  if (size < 2)
    return 0;
  flags = data[0];
  fd0 = fz_lowest_free_fd();
  memset(&w, 0, sizeof(w));
  w.re = data[1];
  data += 2;
  size -= 2;
  for (i = 0; i < FZ_CALLS; i++)
    w.call[i].w = &w;

  FZ_CHECK(uv_loop_init(&loop) == 0);
  FZ_CHECK(actor_rt_new(&rt, &loop) == 0);
  if (flags & FL_SMALL)
    FZ_CHECK(actor_rt_set_max_frame(rt, 1024) == 0);
  FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  fz_peer_init(&peer, sv[1]);

  FZ_CHECK(actor_opts_new(&o) == 0);
  FZ_CHECK(actor_opts_set_name(o, "fuzz") == 0);
  FZ_CHECK(actor_opts_on_hello(o, fz_on_hello, &w) == 0);
  FZ_CHECK(actor_opts_on_exit(o, fz_on_exit, &w) == 0);
  actor__fdpeer_next_fd = sv[0];
  FZ_CHECK(actor__spawn_backend(rt, &actor__backend_fdpeer, o, &a) == 0);
  actor_opts_free(o);
  w.rt = rt;
  w.a = a;

  FZ_CHECK(actor_call_start(a, "f", args1, sizeof(args1), fz_on_call,
                            &w.call[0], &w.call[0].c) == 0);
  w.call[0].started = 1;
  if (flags & FL_CALL2) {
    FZ_CHECK(actor_call_start(a, "g", NULL, 0, fz_on_call, &w.call[1],
                              &w.call[1].c) == 0);
    w.call[1].started = 1;
  }

  if (flags & FL_HELLO) {
    actor__buf_init(&hello);
    fz_hello(&hello);
    fz_peer_write(&peer, &loop, (const uint8_t *)actor__buf_data(&hello),
                  hello.len);
    actor__buf_fini(&hello);
  }
  fz_peer_feed(&peer, &loop, data, size, flags & FL_SPLIT);

  /* The host acts on what is still in flight.  Each handle is valid only
   * until its DONE (which clears it), and the actor until its exit. */
  if ((flags & FL_SEND) && w.call[1].c != NULL) {
    actor_call_send(w.call[1].c, fz_item, sizeof(fz_item));
    if (w.call[1].c != NULL)
      actor_call_end(w.call[1].c);
  }
  if ((flags & FL_CANCEL) && w.call[0].c != NULL)
    actor_call_cancel(w.call[0].c);
  if ((flags & FL_STOP) && !w.exited)
    actor_stop(a);
  fz_peer_settle(&peer, &loop);

  /* The child ends. */
  if (!w.exited) {
    if (flags & FL_KILL) {
      actor_kill(a, 1);
    } else {
      fz_peer_close(&peer);
      actor__fdpeer_exit(a, 0);
    }
  }
  for (i = 0; !w.exited && i < 1000; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    fz_peer_drain(&peer);
  }
  FZ_CHECK(w.exited == 1);
  fz_peer_close(&peer);

  for (i = 0; i < FZ_CALLS; i++) {
    FZ_CHECK(w.call[i].done == (w.call[i].started ? 1 : 0));
    FZ_CHECK(w.call[i].after_done == 0);
  }
  FZ_CHECK(w.hello <= 1);
  if (flags & FL_HELLO) {
    FZ_CHECK(w.hello == 1);
    FZ_CHECK(w.hello_status == 0);
  }

  if (getenv("FUZZ_VERBOSE") != NULL) {
    for (i = 0; i < FZ_CALLS; i++)
      if (w.call[i].started)
        fprintf(stderr, "  call %d: %s, %d item(s), %d end(s)\n", i + 1,
                w.call[i].status ? actor_err_name(w.call[i].status) : "ok",
                w.call[i].items, w.call[i].ends);
    fprintf(stderr, "  actor: %s: %s\n",
            w.exit_error ? actor_err_name(w.exit_error) : "ok", w.reason);
  }

  FZ_CHECK(actor_rt_close(rt, fz_on_rt_closed, &w) == 0);
  for (i = 0; !w.rt_closed && i < 1000; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  FZ_CHECK(w.rt_closed);
  FZ_CHECK(actor_rt_free(rt) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  FZ_CHECK(uv_loop_close(&loop) == 0);
  FZ_CHECK(fz_lowest_free_fd() == fd0);
  return 0;
}
