/* Shared test support: a loop + runtime per test, bounded waits, recorders
 * for calls and exits, and the child helpers (the test binary re-run with
 * --helper NAME) that play well-behaved and broken actors. */
#ifndef LIBACTOR_TESTS_SUPPORT_H
#define LIBACTOR_TESTS_SUPPORT_H

#include <uv.h>

#include "harness.h"

/* A test's world: a loop of its own (adopted by the runtime) so that the
 * end of the test can assert that nothing was left open on it. */
struct ts {
  uv_loop_t loop;
  actor_rt *rt;
};

/* Group setup: makes libuv create its process-wide resources (the signal
 * pipe of its first loop) before any test takes a leak snapshot. */
int ts_group_setup(void **state);

void ts_start(struct ts *t);
/* Shut the runtime down, then assert the loop closes cleanly (no handle
 * left behind). */
void ts_finish(struct ts *t);

/* Run the loop until *flag is non-zero; fail the test after `ms`. */
void ts_wait(struct ts *t, const int *flag, unsigned ms);
/* Run the loop for `ms` milliseconds. */
void ts_run_for(struct ts *t, unsigned ms);

/* Options for spawning this test binary as helper `helper`, with short
 * deadlines (hello 5 s, graceful/term/kill 1 s). Free with actor_opts_free. */
actor_opts *ts_opts(const char *helper);

struct ts_exit {
  int hello;     /* 1 ok, <0 failure code */
  int exited;
  int status, signal, error;
  char reason[512];
  int pid;
};
void ts_on_exit(actor *a, void *arg);   /* arg: struct ts_exit * */
void ts_on_hello(actor *a, int status, void *arg);
/* Spawn helper `helper` with exit/hello recorders; asserts success. */
actor *ts_spawn(struct ts *t, const char *helper, struct ts_exit *ex);
/* The same with options made by the caller (freed here). */
actor *ts_spawn_opts(struct ts *t, actor_opts *o, struct ts_exit *ex);
/* Each thread of process `pid` (0: this one): its id, state line or name,
 * and where it waits, on stderr, prefixed with `who` (a report on a
 * process that should have ended, or a thread that should have gone). */
void ts_print_threads(int pid, const char *who);

#define TS_MAX_ITEMS 20000
struct ts_call {
  int done;
  int status;
  int64_t value;
  int has_value;
  char str[256]; /* a str/bin return value, or the error */
  size_t bin_len;
  char etype[128], emsg[256], etb[512];
  int64_t *items;
  size_t nitems;
  int ends;
  int order_ok; /* ITEM/END never after DONE */
};
void ts_call_init(struct ts_call *r);
void ts_call_fini(struct ts_call *r);
void ts_call_cb(actor_call *c, int ev, int status, const char *data,
                size_t len, void *arg);
/* Call fn with an array of `n` ints; returns actor_call_start's result. */
int ts_call_ints(actor *a, const char *fn, const int64_t *v, int n,
                 struct ts_call *r, actor_call **cp);
int ts_call_str(actor *a, const char *fn, const char *s, struct ts_call *r);

/* Child side: answer a call with an int or a str. */
int ts_ret_int(actor_ctx *x, int64_t v);
int ts_ret_str(actor_ctx *x, const char *s);

/* msgpack helpers */
size_t ts_pack_int(char *buf, size_t cap, int64_t v);
int64_t ts_unpack_int(const char *data, size_t len);

/* The helpers every test binary registers (support.c). */
extern const struct th_helper ts_helpers[];

#endif
