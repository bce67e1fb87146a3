/* The child's blocking end of a channel: in memory or over a socket.
 *
 * Writes take `wmu` for the whole of a write: every write is one or more
 * whole frames, and any Python thread of the actor may send (GIL
 * released), so a frame must never be cut by another thread's.  On a
 * socket that matters (send() may write part of a frame); in memory the
 * transport appends under its own lock, and the mutex keeps the promise if
 * the transport ever blocks part-way (backpressure).  Nobody holds a GIL
 * while holding wmu, so it cannot deadlock with one.
 *
 * Reads are the inbox's (inbox.c), one reader at a time.  `wake` ends a
 * read early from another thread: for memory, the transport's own wake;
 * for a socket, an eventfd polled together with it. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/inproc.h"
#include "py/py.h"
#include "util/buf.h"

/* ---- inproc -------------------------------------------------------------- */

static int ep_inproc_write(struct actor__py_ep *ep, const char *p, size_t n) {
  int r;
  pthread_mutex_lock(&ep->wmu);
  r = actor__inproc_child_write(ep->ip, p, n);
  pthread_mutex_unlock(&ep->wmu);
  return r;
}

static int ep_inproc_read(struct actor__py_ep *ep, struct abuf *in,
                          int timeout_ms) {
  return actor__inproc_child_read(ep->ip, in, timeout_ms);
}

static void ep_inproc_wake(struct actor__py_ep *ep) {
  actor__inproc_wake(ep->ip);
}

static void ep_inproc_close(struct actor__py_ep *ep) {
  actor__inproc_child_close(ep->ip);
}

int actor__py_ep_inproc(struct actor__py_ep *ep, struct actor__inproc *ip) {
  ep->write = ep_inproc_write;
  ep->read = ep_inproc_read;
  ep->wake = ep_inproc_wake;
  ep->close = ep_inproc_close;
  ep->ip = ip;
  ep->fd = -1;
  ep->wakefd = -1;
  pthread_mutex_init(&ep->wmu, NULL);
  return 0;
}

/* ---- socket -------------------------------------------------------------- */

static int ep_sock_write(struct actor__py_ep *ep, const char *p, size_t n) {
  int r = 0;
  pthread_mutex_lock(&ep->wmu);
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
      r = errno == EPIPE || errno == ECONNRESET ? ACTOR_ECLOSED : -errno;
      break;
    }
    p += w;
    n -= (size_t)w;
  }
  pthread_mutex_unlock(&ep->wmu);
  return r;
}

static int ep_sock_read(struct actor__py_ep *ep, struct abuf *in,
                        int timeout_ms) {
  struct pollfd pfd[2] = {{ep->fd, POLLIN, 0}, {ep->wakefd, POLLIN, 0}};
  uint64_t v;
  ssize_t n;
  int r;

  r = poll(pfd, 2, timeout_ms);
  if (r < 0)
    return errno == EINTR ? -ETIMEDOUT : -errno;
  if (pfd[1].revents & POLLIN) {
    /* Woken: consume the wake-up; bytes that are there wait for the next
     * read (the caller asked to be interrupted). */
    if (read(ep->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
      return -errno;
    return -ETIMEDOUT;
  }
  if (r == 0)
    return -ETIMEDOUT;
  if (actor__buf_reserve(in, 64 * 1024))
    return -ENOMEM;
  do
    n = read(ep->fd, actor__buf_tail(in), actor__buf_room(in));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN ? -ETIMEDOUT
           : errno == ECONNRESET ? ACTOR_ECLOSED
                                 : -errno;
  if (n == 0)
    return ACTOR_ECLOSED;
  in->len += (size_t)n;
  return 0;
}

static void ep_sock_wake(struct actor__py_ep *ep) {
  uint64_t one = 1;
  /* Fails only when the counter is full (a wake-up is pending anyway). */
  if (write(ep->wakefd, &one, sizeof(one)) < 0)
    return;
}

static void ep_sock_close(struct actor__py_ep *ep) {
  if (ep->fd >= 0) {
    shutdown(ep->fd, SHUT_WR);
  }
}

int actor__py_ep_socket(struct actor__py_ep *ep, int fd) {
  ep->write = ep_sock_write;
  ep->read = ep_sock_read;
  ep->wake = ep_sock_wake;
  ep->close = ep_sock_close;
  ep->ip = NULL;
  ep->fd = fd;
  pthread_mutex_init(&ep->wmu, NULL);
  ep->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return ep->wakefd < 0 ? -errno : 0;
}

void actor__py_ep_fini(struct actor__py_ep *ep) {
  if (ep->wakefd >= 0)
    close(ep->wakefd);
  ep->wakefd = -1;
  pthread_mutex_destroy(&ep->wmu);
}
