/* fdpeer: the channel on a socketpair end given by the caller, no process.
 * See fdpeer.h.  Only the fuzz and test programs compile this file. */
#include "spawn/fdpeer.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "rt/internal.h"

int actor__fdpeer_next_fd = -1;

struct fdpeer {
  actor *a;
  uv_timer_t end;  /* reports the end from the loop */
  int timer_init;
  int ended;       /* an end has been scheduled */
  int status, sig;
  int closing;
};

static int fdpeer_available(const char **why) {
  (void)why;
  return 0;
}

static void fdpeer__end_cb(uv_timer_t *t) {
  struct fdpeer *fp = t->data;
  actor__backend_exited(fp->a, fp->status, fp->sig, 0);
}

static void fdpeer__end(struct fdpeer *fp, int status, int sig) {
  if (fp->ended || fp->closing || !fp->timer_init)
    return;
  fp->ended = 1;
  fp->status = status;
  fp->sig = sig;
  uv_timer_start(&fp->end, fdpeer__end_cb, 0, 0);
}

static int fdpeer_start(void *st, actor *a, const actor_opts *o) {
  struct fdpeer *fp = st;
  int fd = actor__fdpeer_next_fd;
  int r;

  (void)o;
  actor__fdpeer_next_fd = -1;
  fp->a = a;
  if (fd < 0) {
    actor__seterr(a->rt, "fdpeer: no fd given (actor__fdpeer_next_fd)");
    return -EBADF;
  }
  r = uv_timer_init(a->rt->loop, &fp->end);
  if (r) {
    close(fd);
    actor__seterr(a->rt, "fdpeer: %s", actor_strerror(r));
    return r;
  }
  fp->end.data = fp;
  fp->timer_init = 1;
  /* actor__stream_open closes fd on failure too. */
  r = actor__stream_open(&a->chan, a->rt->loop, fd, a->rt->max_frame,
                         &actor__parent_chan_cbs, a);
  if (r)
    actor__seterr(a->rt, "fdpeer: cannot open the channel: %s",
                  actor_strerror(r));
  return r;
}

static int fdpeer_signal(void *st, int how) {
  struct fdpeer *fp = st;
  fdpeer__end(fp, -1, how == ACTOR__SIG_KILL ? SIGKILL : SIGTERM);
  return 0;
}

static void fdpeer__closed(uv_handle_t *h) {
  struct fdpeer *fp = h->data;
  actor__backend_closed(fp->a);
}

static void fdpeer_close(void *st) {
  struct fdpeer *fp = st;
  if (fp->closing)
    return;
  fp->closing = 1;
  if (!fp->timer_init) {
    actor__backend_closed(fp->a);
    return;
  }
  uv_close((uv_handle_t *)&fp->end, fdpeer__closed);
}

const struct actor__backend actor__backend_fdpeer = {
    1,           "fdpeer",      sizeof(struct fdpeer), fdpeer_available,
    fdpeer_start, fdpeer_signal, fdpeer_close,
};

void actor__fdpeer_exit(actor *a, int status) {
  if (a->backend != &actor__backend_fdpeer)
    return;
  fdpeer__end(a->bstate, status, 0);
}
