/* A peer the test controls byte by byte: a private backend ("peer") opens
 * the actor's channel on one end of a socketpair and hands the other end to
 * the test (g_peer_fd), which then plays the child.  Exits are reported by
 * the test too (peer_dies), or, when the runtime signals the "child", on
 * the next loop turn (unless g_peer_deaf: it is then abandoned).  One peer
 * actor at a time. */
#ifndef LIBACTOR_TESTS_PEER_H
#define LIBACTOR_TESTS_PEER_H

#include <msgpack.h>

#include "support.h"

extern int g_peer_fd;      /* the test's end of the last peer spawned */
extern int g_peer_deaf;    /* ignore signals: the actor is then abandoned */
extern int g_peer_signals; /* signals the runtime sent to the peer */

/* Spawn a peer actor (deadlines: hello_ms, then 200 ms each) with the
 * exit/hello recorders; resets g_peer_deaf and g_peer_signals. */
actor *peer_spawn(struct ts *t, struct ts_exit *ex, uint64_t hello_ms);
/* Say HELLO and wait for the runtime to hear it. */
void peer_started(struct ts *t, actor *a, struct ts_exit *ex);

void peer_write(const void *p, size_t n);
/* One frame: its header and the sbuffer's bytes, in one write. */
void peer_frame(const msgpack_sbuffer *sb);
/* Start [kind, id, ...] of n elements in a fresh sbuffer. */
void pk_begin(msgpack_sbuffer *sb, msgpack_packer *pk, int n, int kind,
              uint32_t id);
void pk_str(msgpack_packer *pk, const char *s);
void peer_hello(void);
/* [kind, id, v] */
void peer_int(int kind, uint32_t id, int64_t v);
/* [kind, id, <depth arrays around 1>] */
void peer_nested(int kind, uint32_t id, int depth);
/* Read and discard what the runtime sent, without blocking. */
size_t peer_drain(void);
void peer_hang_up(void);
/* The child "exits": its end closes, then the backend reports it. */
void peer_dies(struct ts *t, actor *a);

#endif
