/* The child's blocking end of a channel: in memory or over a socket.
 *
 * Writes take `wmu` for the whole of a write: every write is one or more
 * whole frames, and any Python thread of the actor may send (GIL
 * released), so a frame must never be cut by another thread's.  On a
 * socket that matters (send() may write part of a frame); in memory the
 * transport appends under its own lock, and the mutex keeps the promise if
 * the transport ever blocks part-way (backpressure).  Nobody waits for a
 * GIL while holding wmu, and a thread that holds a GIL only ever
 * trylocks it (actor__py_ep_hold), so it cannot deadlock with one.
 *
 * Held items (socket only, py.h): a stream item may wait in `held` for
 * the watcher's next flush, at most ACTOR__PY_HOLD_MS away; every write
 * sends the held bytes first, in the same send().  Over a socket each
 * send() was most of an item's cost (0.38 M items/s; ~2 M held).
 *
 * Reads are the inbox's (inbox.c), one reader at a time.  `wake` ends a
 * read early from another thread: for memory, the transport's own wake;
 * for a socket, an eventfd polled together with it. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
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
  /* The in-memory channel appends under a mutex and wakes the loop only
   * when no wake-up is pending: nothing to gain from holding. */
  ep->can_hold = 0;
  ep->held = NULL;
  ep->flush_by = 0;
  atomic_init(&ep->nheld, 0);
  atomic_init(&ep->nitems, 0);
  pthread_mutex_init(&ep->wmu, NULL);
  return 0;
}

/* ---- socket -------------------------------------------------------------- */

/* All of [p, p+n) (wmu held). */
static int sock_send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        poll(&pfd, 1, -1);
        continue;
      }
      return errno == EPIPE || errno == ECONNRESET ? ACTOR_ECLOSED : -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The held bytes, then [p, p+n), in one send when something is held
 * (wmu held). */
static int sock_write_locked(struct actor__py_ep *ep, const char *p,
                             size_t n) {
  struct abuf *h = ep->held;
  int r;
  if (h == NULL || h->len == 0)
    return sock_send_all(ep->fd, p, n);
  if (n > 0 && actor__buf_append(h, p, n) != 0) {
    /* No room to join them: the held bytes first, then these. */
    r = sock_send_all(ep->fd, actor__buf_data(h), h->len);
    if (r == 0)
      r = sock_send_all(ep->fd, p, n);
  } else {
    r = sock_send_all(ep->fd, actor__buf_data(h), h->len);
  }
  h->len = h->off = 0;
  atomic_store(&ep->nheld, 0);
  return r;
}

static int ep_sock_write(struct actor__py_ep *ep, const char *p, size_t n) {
  int r;
  pthread_mutex_lock(&ep->wmu);
  r = sock_write_locked(ep, p, n);
  pthread_mutex_unlock(&ep->wmu);
  return r;
}

static uint64_t ep_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int actor__py_ep_hold(struct actor__py_ep *ep, const char *p, size_t n) {
  int held = 0;
  if (!ep->can_hold || pthread_mutex_trylock(&ep->wmu) != 0)
    return 0;
  /* Only when the watcher's next flush is near: it then sends this item
   * no later than flush_by; otherwise the caller sends it now. */
  if (ep->flush_by != 0 &&
      ep->held->len + n <= ACTOR__PY_HOLD_MAX &&
      ep->flush_by <= ep_now_ns() + ACTOR__PY_HOLD_MS * 1000000ull &&
      actor__buf_append(ep->held, p, n) == 0) {
    atomic_store(&ep->nheld, ep->held->len);
    held = 1;
  }
  pthread_mutex_unlock(&ep->wmu);
  return held;
}

size_t actor__py_ep_flush_until(struct actor__py_ep *ep, uint64_t flush_by) {
  struct abuf *h = ep->held;
  size_t left;
  if (!ep->can_hold)
    return 0;
  /* A writer holds wmu: it sends what is held first anyway.  The caller
   * (the watcher, possibly holding the inbox's mutex) never waits behind
   * a blocked send; it comes back sooner instead. */
  if (pthread_mutex_trylock(&ep->wmu) != 0)
    return SIZE_MAX;
  while (h->len > 0) {
    ssize_t w = send(ep->fd, actor__buf_data(h), h->len,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break; /* the parent is behind: kept, sent at the next flush */
    if (w < 0) {
      h->len = 0; /* the parent is gone: the next write says so */
      break;
    }
    actor__buf_consume(h, (size_t)w);
  }
  if (h->len == 0)
    h->off = 0;
  left = h->len;
  atomic_store(&ep->nheld, left);
  ep->flush_by = flush_by;
  pthread_mutex_unlock(&ep->wmu);
  return left;
}

int actor__py_ep_flush(struct actor__py_ep *ep) {
  int r;
  if (!ep->can_hold || atomic_load(&ep->nheld) == 0)
    return 0;
  pthread_mutex_lock(&ep->wmu);
  r = sock_write_locked(ep, NULL, 0);
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
    (void)actor__py_ep_flush(ep); /* nothing held stays behind */
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
  ep->flush_by = 0;
  atomic_init(&ep->nheld, 0);
  atomic_init(&ep->nitems, 0);
  pthread_mutex_init(&ep->wmu, NULL);
  ep->held = malloc(sizeof(*ep->held));
  if (ep->held != NULL)
    actor__buf_init(ep->held);
  ep->can_hold = ep->held != NULL; /* without it, every item is sent */
  ep->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return ep->wakefd < 0 ? -errno : 0;
}

void actor__py_ep_fini(struct actor__py_ep *ep) {
  if (ep->wakefd >= 0)
    close(ep->wakefd);
  ep->wakefd = -1;
  if (ep->held != NULL) {
    actor__buf_fini(ep->held);
    free(ep->held);
    ep->held = NULL;
  }
  ep->can_hold = 0;
  pthread_mutex_destroy(&ep->wmu);
}
