/* The child's blocking end of a channel: in memory or over a socket. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/inproc.h"
#include "py/py.h"
#include "util/buf.h"

/* ---- inproc -------------------------------------------------------------- */

static int ep_inproc_write(struct actor__py_ep *ep, const char *p, size_t n) {
  return actor__inproc_child_write(ep->ip, p, n);
}

static int ep_inproc_read(struct actor__py_ep *ep, struct abuf *in,
                          int timeout_ms) {
  return actor__inproc_child_read(ep->ip, in, timeout_ms);
}

static int ep_inproc_pending(struct actor__py_ep *ep) {
  return actor__inproc_child_pending(ep->ip);
}

static void ep_inproc_close(struct actor__py_ep *ep) {
  actor__inproc_child_close(ep->ip);
}

void actor__py_ep_inproc(struct actor__py_ep *ep, struct actor__inproc *ip) {
  ep->write = ep_inproc_write;
  ep->read = ep_inproc_read;
  ep->pending = ep_inproc_pending;
  ep->close = ep_inproc_close;
  ep->ip = ip;
  ep->fd = -1;
}

/* ---- socket -------------------------------------------------------------- */

static int ep_sock_write(struct actor__py_ep *ep, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(ep->fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd pfd = {ep->fd, POLLOUT, 0};
        poll(&pfd, 1, -1);
        continue;
      }
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int ep_sock_read(struct actor__py_ep *ep, struct abuf *in,
                        int timeout_ms) {
  struct pollfd pfd = {ep->fd, POLLIN, 0};
  ssize_t n;
  int r;

  r = poll(&pfd, 1, timeout_ms);
  if (r < 0)
    return errno == EINTR ? -ETIMEDOUT : -errno;
  if (r == 0)
    return -ETIMEDOUT;
  if (actor__buf_reserve(in, 64 * 1024))
    return -ENOMEM;
  do
    n = read(ep->fd, actor__buf_tail(in), actor__buf_room(in));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN ? -ETIMEDOUT : -errno;
  if (n == 0)
    return ACTOR_ECLOSED;
  in->len += (size_t)n;
  return 0;
}

static int ep_sock_pending(struct actor__py_ep *ep) {
  struct pollfd pfd = {ep->fd, POLLIN, 0};
  return poll(&pfd, 1, 0) > 0;
}

static void ep_sock_close(struct actor__py_ep *ep) {
  if (ep->fd >= 0) {
    shutdown(ep->fd, SHUT_WR);
  }
}

void actor__py_ep_socket(struct actor__py_ep *ep, int fd) {
  ep->write = ep_sock_write;
  ep->read = ep_sock_read;
  ep->pending = ep_sock_pending;
  ep->close = ep_sock_close;
  ep->ip = NULL;
  ep->fd = fd;
}
