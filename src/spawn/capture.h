/* Captured stdout/stderr of a child process — private; shared by the
 * backends whose children are processes (subproc, forkserver).
 *
 * The child writes to a pipe; we read it on the loop and hand it to the
 * host line by line (actor__output_line), lines over 64 KiB in 64 KiB
 * pieces.  When the child has exited, what is left in the pipe is read
 * without blocking, at most 1 MiB, and the pipe is closed: a grandchild
 * that inherited it must not delay the exit callback, not even one that
 * keeps writing. */
#ifndef ACTOR_SPAWN_CAPTURE_H
#define ACTOR_SPAWN_CAPTURE_H

#include <uv.h>

#include "libactor/actor.h"
#include "util/buf.h"

struct actor__capture {
  uv_pipe_t pipe;
  actor *a;
  int fd;     /* 1 or 2: which output */
  int active; /* the handle is initialised and not closed */
  struct abuf line;
  void (*closed)(void *arg); /* after the handle's close */
  void *arg;
};

/* Make the pipe for output `fd` (1 or 2) of actor `a`: *wfd gets its write
 * end, close-on-exec, for the child (the caller closes it once the child
 * has it).  From the first step on c->active is set, and
 * actor__capture_finish must be called, also on failure.  0, or -errno
 * with *what naming the step that failed. */
int actor__capture_open(struct actor__capture *c, actor *a, int fd, int *wfd,
                        const char **what, void (*closed)(void *arg),
                        void *arg);
/* Start reading (the child has been started). */
void actor__capture_start(struct actor__capture *c);
/* Drain what is there (bounded), hand over the last line, close.  Returns
 * 1 when closed() will be called, 0 when there was nothing to close. */
int actor__capture_finish(struct actor__capture *c);

#endif
