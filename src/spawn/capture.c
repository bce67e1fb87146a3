/* Captured output of child processes (see capture.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/capture.h"

#define LINE_MAX_BYTES (64 * 1024)
/* What the exit-time drain takes from one capture pipe at most: more than
 * a pipe's buffer holds, so nothing the child itself wrote is lost, and a
 * bound for a grandchild that keeps writing. */
#define DRAIN_MAX_BYTES (1024 * 1024)

static void cap__emit(struct actor__capture *c, int final) {
  char *p, *nl;
  size_t n;

  /* An empty buffer may have no memory yet: memchr(NULL, ..., 0) is
   * undefined. */
  while (c->line.len > 0) {
    p = actor__buf_data(&c->line);
    nl = memchr(p, '\n', c->line.len);
    if (nl != NULL) {
      n = (size_t)(nl - p);
      actor__output_line(c->a, c->fd, p, n);
      actor__buf_consume(&c->line, n + 1);
      continue;
    }
    /* A line longer than the limit goes out in pieces rather than growing
     * the buffer without bound. */
    if (c->line.len >= LINE_MAX_BYTES || final) {
      actor__output_line(c->a, c->fd, p, c->line.len);
      actor__buf_consume(&c->line, c->line.len);
    }
    return;
  }
}

static void cap__alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct actor__capture *c = h->data;
  (void)hint;
  if (actor__buf_reserve(&c->line, 4096)) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = actor__buf_tail(&c->line);
  buf->len = actor__buf_room(&c->line);
}

static void cap__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct actor__capture *c = s->data;
  (void)buf;
  if (n > 0) {
    c->line.len += (size_t)n;
    cap__emit(c, 0);
    return;
  }
  if (n < 0) {
    cap__emit(c, 1);
    uv_read_stop(s);
    /* EOF before the child exited: nothing more will come; keep the handle
     * until finish so that the bookkeeping stays in one place. */
  }
}

/* Read what is already in the pipe, without blocking and at most
 * DRAIN_MAX_BYTES: a grandchild that inherited the pipe may write as fast
 * as we read. */
static void cap__drain(struct actor__capture *c) {
  uv_os_fd_t fd;
  size_t total = 0;
  ssize_t n;

  if (uv_fileno((uv_handle_t *)&c->pipe, &fd))
    return;
  while (total < DRAIN_MAX_BYTES) {
    if (actor__buf_reserve(&c->line, 4096))
      break;
    n = read(fd, actor__buf_tail(&c->line), actor__buf_room(&c->line));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    c->line.len += (size_t)n;
    total += (size_t)n;
    cap__emit(c, 0);
  }
  cap__emit(c, 1);
}

static void cap__closed(uv_handle_t *h) {
  struct actor__capture *c = h->data;
  actor__buf_fini(&c->line);
  c->closed(c->arg);
}

int actor__capture_open(struct actor__capture *c, actor *a, int fd, int *wfd,
                        const char **what, void (*closed)(void *arg),
                        void *arg) {
  int p[2], r;

  *wfd = -1;
  c->a = a;
  c->fd = fd;
  c->closed = closed;
  c->arg = arg;
  uv_pipe_init(a->rt->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->active = 1; /* finish closes it from now on */
  actor__buf_init(&c->line);
  if (pipe2(p, O_CLOEXEC)) {
    *what = fd == 1 ? "cannot create the stdout pipe"
                    : "cannot create the stderr pipe";
    return -errno;
  }
  if ((r = uv_pipe_open(&c->pipe, p[0])) != 0) {
    close(p[0]);
    close(p[1]);
    *what = "cannot watch a capture pipe";
    return r;
  }
  *wfd = p[1];
  return 0;
}

void actor__capture_start(struct actor__capture *c) {
  if (c->active)
    uv_read_start((uv_stream_t *)&c->pipe, cap__alloc, cap__read);
}

int actor__capture_finish(struct actor__capture *c) {
  if (!c->active)
    return 0;
  cap__drain(c);
  c->active = 0;
  uv_close((uv_handle_t *)&c->pipe, cap__closed);
  return 1;
}
