/* What the socket harnesses share: the peer's end of a socketpair, written
 * and read without blocking, and an fd leak check per input.  Header-only
 * (static functions) so that each harness is one translation unit. */
#ifndef LIBACTOR_FUZZ_COMMON_H
#define LIBACTOR_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* A broken invariant: say which, then abort so that libFuzzer keeps the
 * input as a crash. */
#define FZ_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
              __LINE__);                                                       \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* The lowest free fd: a leaked fd makes it change across one input (every
 * fd of one input is released before the next one starts). */
static inline int fz_lowest_free_fd(void) {
  int fd = dup(0);
  FZ_CHECK(fd >= 0);
  close(fd);
  return fd;
}

/* The peer's end: the fuzz bytes go out through it, and whatever the
 * runtime writes to it is read and dropped, so the runtime never waits for
 * a reader. */
struct fz_peer {
  int fd;     /* -1 once closed */
  int broken; /* EPIPE/ECONNRESET: the runtime closed its end */
};

static inline void fz_peer_init(struct fz_peer *p, int fd) {
  p->fd = fd;
  p->broken = 0;
  FZ_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

static inline void fz_peer_drain(struct fz_peer *p) {
  char buf[16384];
  ssize_t n;
  if (p->fd < 0)
    return;
  do
    n = read(p->fd, buf, sizeof(buf));
  while (n > 0 || (n < 0 && errno == EINTR));
}

/* Bytes written but not yet read by the other end. */
static inline int fz_peer_unread(const struct fz_peer *p) {
  int q = 0;
  if (p->fd < 0 || p->broken || ioctl(p->fd, SIOCOUTQ, &q) < 0)
    return 0;
  return q;
}

/* Write [d, d+n) through the peer, running the loop whenever the socket is
 * full, until all is written or the other end is gone. */
static inline void fz_peer_write(struct fz_peer *p, uv_loop_t *loop,
                                 const uint8_t *d, size_t n) {
  int spins = 0;
  while (n > 0 && p->fd >= 0 && !p->broken) {
    ssize_t w = send(p->fd, d, n, MSG_NOSIGNAL);
    if (w > 0) {
      d += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* The runtime reads as the loop runs; if it stopped reading (a
       * frame it skips, a closed channel) the bound ends the wait. */
      if (++spins > 10000)
        return;
      uv_run(loop, UV_RUN_NOWAIT);
      fz_peer_drain(p);
      continue;
    }
    p->broken = 1;
  }
}

/* Run the loop until the other end has read everything written (or has
 * closed), dropping what it writes back. */
static inline void fz_peer_settle(struct fz_peer *p, uv_loop_t *loop) {
  int i;
  for (i = 0; i < 64; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    fz_peer_drain(p);
    if (fz_peer_unread(p) == 0 && i > 0)
      break;
  }
}

/* The whole input: in one write, or in two with the loop run in between
 * (a frame cut across reads), then settled. */
static inline void fz_peer_feed(struct fz_peer *p, uv_loop_t *loop,
                                const uint8_t *d, size_t n, int split) {
  size_t half = split ? n / 2 : n;
  fz_peer_write(p, loop, d, half);
  if (half < n) {
    fz_peer_settle(p, loop);
    fz_peer_write(p, loop, d + half, n - half);
  }
  fz_peer_settle(p, loop);
}

static inline void fz_peer_close(struct fz_peer *p) {
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

#endif
