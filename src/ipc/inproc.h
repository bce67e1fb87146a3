/* In-process transport (inproc.c): parent side on the loop, child side on
 * any other thread.  No Python here: the Python layer puts a
 * sub-interpreter on the child side. */
#ifndef ACTOR_IPC_INPROC_H
#define ACTOR_IPC_INPROC_H

#include <stddef.h>

#include "ipc/chan.h"

struct actor__inproc;

/* A shared block with one reference (the creator's). */
struct actor__inproc *actor__inproc_new(void);
void actor__inproc_ref(struct actor__inproc *ip);
void actor__inproc_unref(struct actor__inproc *ip);

/* Parent side: open `ch` on the block (takes its own reference). */
int actor__inproc_open_parent(struct actor__chan *ch, uv_loop_t *loop,
                              struct actor__inproc *ip, size_t max_frame,
                              const struct actor__chan_cbs *cbs, void *data);

/* Child side.  write: append whole frames; ACTOR_ECLOSED once the parent
 * side is closed.  read: wait up to timeout_ms (-1 forever, 0 not at all)
 * for bytes and append them to `in`: 0, -ETIMEDOUT, or ACTOR_ECLOSED (the
 * parent side is closed and nothing is left).  close: EOF for the parent
 * (the child's reference is dropped separately with unref). */
int actor__inproc_child_write(struct actor__inproc *ip, const char *p,
                              size_t n);
int actor__inproc_child_read(struct actor__inproc *ip, struct abuf *in,
                             int timeout_ms);
void actor__inproc_child_close(struct actor__inproc *ip);
/* Input waiting?  Lock-free, any thread. */
int actor__inproc_child_pending(struct actor__inproc *ip);
/* Make a waiting child_read return -ETIMEDOUT now (used to let an injected
 * exception be seen by a child blocked waiting for input).  Any thread. */
void actor__inproc_wake(struct actor__inproc *ip);

/* Spins the parent side has begun on this thread (one per loop iteration
 * at most, whatever the number of channels), and those child sides have
 * begun in this process; for tests.  A side does not spin for a peer that
 * last ran on its own CPU, nor after unanswered spins (inproc.c); reset
 * forgets this thread's unanswered spins. */
unsigned long actor__inproc_spin_count(void);
unsigned long actor__inproc_child_spin_count(void);
void actor__inproc_spin_reset(void);

#endif
