/* In-process transport: frames between the loop thread (parent) and a
 * child running on another thread of the same process (a sub-interpreter).
 *
 * The same frames and the same dispatch code as the socket channel: the
 * parent side is an ordinary struct actor__chan whose ops move bytes through
 * memory instead of a socket.  Two byte queues, one per direction, share a
 * mutex:
 *
 *   parent -> child   `p2c`: the parent appends its out buffer; a child
 *                     waiting for input is woken by a condition variable,
 *                     but only if it is actually asleep (no futex call
 *                     otherwise).
 *   child -> parent   `c2p`: the child appends frames and wakes the loop
 *                     with uv_async_send(), which is free when a wake-up is
 *                     already pending; the loop takes the whole queue by
 *                     swapping buffers, so bytes are copied once.
 *
 * Both sides spin briefly before they sleep, so a call answered quickly
 * costs no wake-up at all.  The parent spins at most once per loop
 * iteration, for all of its channels together (a thread-local list of the
 * channels that sent something), so a hundred actors cost no more spinning
 * than one.  The child re-checks for input without the lock
 * before waiting on the condition variable.  The parent, when it has just
 * sent something (a reply may follow), spins in a uv_prepare callback —
 * just before its loop would block — and while it spins, the child skips
 * uv_async_send (a syscall).  The child reads `parent_spinning` under the
 * mutex, and the parent clears it under the mutex and then takes what
 * arrived, so a frame written as the spin ends is never left unseen.
 * Blocking on the child side always happens with no Python lock held (the
 * caller releases its GIL first).
 *
 * A spin only pays while the peer runs at the same time, on another CPU.
 * With both ends on one CPU the peer cannot answer until the spinner
 * gives the CPU up, so each spin was pure loss (a 65 us round trip on one
 * core against 3 us for a blocking ping-pong).  So each side records the
 * CPU it runs on (sched_getcpu, a read of the rseq area) and does not spin
 * for a peer that last ran on its own CPU; and k spins in a row that ran
 * out make the next 2^(k-1) - 1 waits block at once (up to 15), which
 * covers a peer on another CPU that is not running (a
 * loaded machine) or slow to answer.  An answered spin resets it.
 * Blocking is a futex wait either way: the child's on its condition
 * variable, the parent's in its loop (the child's uv_async_send).
 *
 * Backpressure, child -> parent: the child's writes wait while more than
 * INPROC_C2P_MAX bytes are queued for the parent (as a socket's would), so
 * an actor that streams while its host is busy cannot grow the host's
 * memory without bound.  A single frame larger than that still goes
 * through when the queue is empty.  Parent -> child is bounded by the
 * runtime's queue limit (actor_rt_set_max_queue).
 *
 * Lifetime: the shared block is reference-counted (parent side and child
 * side); either side may go first.  The uv_async_t belongs to the loop: the
 * parent marks the block closed under the mutex before closing the handle,
 * and the child only calls uv_async_send() under the mutex when the parent
 * is not closed, so it never touches a closed handle. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libactor/actor.h"
#include "ipc/chan.h"
#include "ipc/inproc.h"

/* How long a child re-checks for input before sleeping, and how long the
 * parent's loop waits for a reply before it blocks. */
#define INPROC_SPIN_NS 50000
#define INPROC_PARENT_SPIN_NS 30000
/* Child -> parent bytes beyond which the child's writes wait. */
#define INPROC_C2P_MAX (1u << 20)
/* After a burst, buffers give back memory above this. */
#define INPROC_KEEP (256 * 1024)

/* Whether spinning pays, learnt from the last spins: after `fails` spins
 * in a row that ran out, the next 2^(fails-1) - 1 waits do not spin (up to
 * INPROC_SKIP_MAX - 1), so a peer that cannot answer quickly — preempted, or
 * on our CPU with the scheduler not switching — costs one failed spin now
 * and then instead of one per wait.  A spin that is answered resets it. */
struct spin_luck {
  unsigned fails, skip;
};
#define INPROC_SKIP_MAX 16

struct actor__inproc {
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* the child waits for input */
  pthread_cond_t space_cv; /* the child waits for room in c2p */
  struct abuf p2c, c2p;
  atomic_size_t p2c_len; /* hint for the spinning child, read unlocked */
  atomic_size_t c2p_len; /* hint for the spinning parent */
  int parent_spinning;
  int child_waiting;
  int child_blocked; /* waiting on space_cv */
  int parent_watch;  /* the parent waits for p2c to drain: wake it */
  int wake; /* actor__inproc_wake() was called */
  int parent_closed; /* parent side gone: EOF for the child */
  int child_closed;  /* child side gone: EOF for the parent */
  uv_async_t *async; /* the parent's wake-up; NULL once closed */
  atomic_int refs;
  /* The CPU each side last ran on (-1: not known): a side does not spin
   * for an answer from a peer on its own CPU, which cannot run while it
   * spins. */
  atomic_int parent_cpu, child_cpu;
  struct spin_luck child_luck; /* the reader's (one at a time) */
};

struct actor__inproc *actor__inproc_new(void) {
  struct actor__inproc *ip = calloc(1, sizeof(*ip));
  pthread_condattr_t ca;

  if (ip == NULL)
    return NULL;

  pthread_mutex_init(&ip->mu, NULL);
  /* Timed waits measure a duration: they must not jump with the clock. */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ip->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&ip->space_cv, NULL);
  actor__buf_init(&ip->p2c);
  actor__buf_init(&ip->c2p);
  atomic_init(&ip->refs, 1); /* the creator's; each side adds its own */
  atomic_init(&ip->p2c_len, 0);
  atomic_init(&ip->parent_cpu, -1);
  atomic_init(&ip->child_cpu, -1);
  return ip;
}

/* May this wait spin?  Counts down the skips a failed spin earned. */
static int luck_try(struct spin_luck *l) {
  if (l->skip == 0)
    return 1;
  l->skip--;
  return 0;
}

static void luck_result(struct spin_luck *l, int answered) {
  if (answered) {
    l->fails = 0;
    return;
  }
  /* One miss is often a peer preempted once: skipping the next spins
   * then costs a wake-up each (tens of microseconds across CPUs). */
  if ((1u << l->fails) < 2 * INPROC_SKIP_MAX)
    l->fails++;
  l->skip = (1u << l->fails) / 2 - 1;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* This thread's CPU, -1 if unknown (then spinning is allowed). */
static int this_cpu(void) { return sched_getcpu(); }

void actor__inproc_ref(struct actor__inproc *ip) {
  atomic_fetch_add(&ip->refs, 1);
}

void actor__inproc_unref(struct actor__inproc *ip) {
  if (ip == NULL || atomic_fetch_sub(&ip->refs, 1) != 1)
    return;
  pthread_mutex_destroy(&ip->mu);
  pthread_cond_destroy(&ip->cv);
  pthread_cond_destroy(&ip->space_cv);
  actor__buf_fini(&ip->p2c);
  actor__buf_fini(&ip->c2p);
  free(ip);
}

/* ---- parent side (loop thread) -------------------------------------------- */

/* The parent side's transport state (ch->t).  One block for the three
 * handles: it is freed once all three close callbacks have run. */
struct inproc_parent {
  struct actor__inproc *ip;
  uv_async_t async;
  uv_prepare_t prep;
  uv_idle_t idle;
  int pending_close;
  int expect; /* sent something, a reply may be close: on the spin list */
  struct actor__chan *spin_next;  /* this thread's spin list */
  struct actor__chan *ready_next; /* answered during a spin */
};

#define IPT(ch) ((struct inproc_parent *)(ch)->t)
#define CH_IP(ch) (IPT(ch)->ip)

/* Take what the child wrote.  Returns 1 when the child side is closed and
 * everything it wrote has been taken. */
static int inproc__take(struct actor__chan *ch) {
  struct actor__inproc *ip = CH_IP(ch);
  struct abuf tmp;
  int closed;

  pthread_mutex_lock(&ip->mu);
  if (ip->c2p.len > 0) {
    if (ch->in.len == 0) {
      /* Swap, no copy: our (empty) buffer goes back for the child. */
      tmp = ch->in;
      ch->in = ip->c2p;
      ip->c2p = tmp;
      ip->c2p.len = 0;
      ip->c2p.off = 0;
    } else if (actor__buf_append(&ch->in, actor__buf_data(&ip->c2p),
                                 ip->c2p.len) == 0) {
      ip->c2p.len = 0;
      ip->c2p.off = 0;
    }
  }
  atomic_store(&ip->c2p_len, ip->c2p.len);
  closed = ip->child_closed && ip->c2p.len == 0;
  if (ip->child_blocked && ip->c2p.len == 0)
    pthread_cond_signal(&ip->space_cv);
  pthread_mutex_unlock(&ip->mu);
  return closed;
}

static void inproc__pump(struct actor__chan *ch) {
  int closed;
  if (ch->closing || ch->eof)
    return;
  closed = inproc__take(ch);
  if (ch->in.len > 0 && actor__chan_deliver(ch))
    return;
  if (ch->closing)
    return;
  if (ch->in.len == 0)
    actor__buf_trim(&ch->in, INPROC_KEEP); /* it goes back to the child */
  if (closed)
    actor__chan_signal_eof(ch, 0);
  else
    actor__chan_drained(ch);
}

static void inproc__async_cb(uv_async_t *h) { inproc__pump(h->data); }

/* The channels of this thread's loop(s) that sent something since the
 * last spin (a reply may be close): see inproc__prepare_cb.  Membership is
 * IPT(ch)->expect. */
static _Thread_local struct actor__chan *spin_list;
static _Thread_local unsigned long spins; /* for tests: spins begun */

unsigned long actor__inproc_spin_count(void) { return spins; }

static atomic_ulong child_spins; /* for tests: spins begun by children */

unsigned long actor__inproc_child_spin_count(void) {
  return atomic_load(&child_spins);
}

static void spin__add(struct actor__chan *ch) {
  if (IPT(ch)->expect)
    return;
  IPT(ch)->expect = 1;
  IPT(ch)->spin_next = spin_list;
  spin_list = ch;
}

static void spin__remove(struct actor__chan *ch) {
  struct actor__chan **pp;
  if (!IPT(ch)->expect)
    return;
  IPT(ch)->expect = 0;
  for (pp = &spin_list; *pp != NULL; pp = &IPT(*pp)->spin_next)
    if (*pp == ch) {
      *pp = IPT(ch)->spin_next;
      break;
    }
  IPT(ch)->spin_next = NULL;
}

static int inproc__flush(struct actor__chan *ch) {
  struct actor__inproc *ip = CH_IP(ch);
  int r = 0, wake;

  if (ch->closing)
    return ACTOR_ECLOSED;
  if (ch->hold || ch->out.len == 0)
    return 0;
  pthread_mutex_lock(&ip->mu);
  if (ip->child_closed) {
    r = ACTOR_ECLOSED; /* nobody will read it; EOF comes from the pump */
  } else if (ip->p2c.len == 0) {
    struct abuf tmp = ip->p2c;
    ip->p2c = ch->out;
    ch->out = tmp;
  } else {
    r = actor__buf_append(&ip->p2c, actor__buf_data(&ch->out), ch->out.len);
  }
  ch->out.len = 0;
  ch->out.off = 0;
  atomic_store(&ip->p2c_len, ip->p2c.len);
  atomic_store_explicit(&ip->parent_cpu, this_cpu(), memory_order_relaxed);
  wake = ip->child_waiting;
  pthread_mutex_unlock(&ip->mu);
  if (wake)
    pthread_cond_signal(&ip->cv);
  if (r == 0)
    spin__add(ch); /* an answer may follow: worth a short spin */
  return r;
}

static size_t inproc__queued(struct actor__chan *ch) {
  struct actor__inproc *ip = CH_IP(ch);
  size_t q = ch->out.len + atomic_load(&ip->p2c_len);
  if (ch->want_drain && q > 0) {
    /* The owner waits for room: the child tells us when it reads. */
    pthread_mutex_lock(&ip->mu);
    ip->parent_watch = 1;
    pthread_mutex_unlock(&ip->mu);
  }
  return q;
}

/* Frames go to the child at once: there is no syscall to save by batching
 * (the lock is cheap), and the child may be spinning for them. */
static void inproc__kick(struct actor__chan *ch) { inproc__flush(ch); }

static int inproc__drain(struct actor__chan *ch, size_t hwm) {
  (void)hwm;
  return inproc__flush(ch); /* memory never pushes back */
}

static uint64_t inproc__now_ns(void);

static void inproc__idle_cb(uv_idle_t *h) { uv_idle_stop(h); }

/* Just before the loop would block: if channels sent something since the
 * last spin, wait a little for an answer on any of them, with their
 * children told not to wake us (parent_spinning).  One spin per iteration
 * for all channels: the first prepare callback of the iteration takes the
 * whole list, the others find it empty.  The child reads
 * `parent_spinning` under the mutex, and we clear it under the mutex and
 * then take what arrived, so a frame written as the spin ends is never
 * left unseen. */
static _Thread_local struct spin_luck parent_luck;

void actor__inproc_spin_reset(void) {
  memset(&parent_luck, 0, sizeof(parent_luck));
}

static void inproc__prepare_cb(uv_prepare_t *h) {
  struct actor__chan *list = spin_list, *ready = NULL, *ch, *next;
  uint64_t end;
  int got = 0, me, spin = 0;

  (void)h;
  if (list == NULL)
    return;
  spin_list = NULL;
  /* Worth it only for a child that may run while we spin: one on another
   * CPU (as far as we know), and only while recent spins paid. */
  me = this_cpu();
  for (ch = list; ch != NULL && !spin; ch = IPT(ch)->spin_next)
    spin = me < 0 || atomic_load_explicit(&CH_IP(ch)->child_cpu,
                                          memory_order_relaxed) != me;
  if (spin)
    spin = luck_try(&parent_luck);
  if (spin) {
    spins++;
    for (ch = list; ch != NULL; ch = IPT(ch)->spin_next) {
      pthread_mutex_lock(&CH_IP(ch)->mu);
      CH_IP(ch)->parent_spinning = 1;
      pthread_mutex_unlock(&CH_IP(ch)->mu);
    }
    end = inproc__now_ns() + INPROC_PARENT_SPIN_NS;
    while (!got && inproc__now_ns() < end) {
      for (ch = list; ch != NULL && !got; ch = IPT(ch)->spin_next)
        got = atomic_load_explicit(&CH_IP(ch)->c2p_len,
                                   memory_order_acquire) > 0;
      cpu_relax();
    }
    luck_result(&parent_luck, got);
  }
  /* Take the channels off the list before any callback runs (a callback
   * may send again, putting a channel back on the new list), and keep
   * those that got something on a chain of their own. */
  for (ch = list; ch != NULL; ch = next) {
    next = IPT(ch)->spin_next;
    IPT(ch)->spin_next = NULL;
    IPT(ch)->expect = 0;
    if (spin) {
      pthread_mutex_lock(&CH_IP(ch)->mu);
      CH_IP(ch)->parent_spinning = 0;
      pthread_mutex_unlock(&CH_IP(ch)->mu);
    }
    if (atomic_load(&CH_IP(ch)->c2p_len) > 0) {
      IPT(ch)->ready_next = ready;
      ready = ch;
    }
  }
  /* Deliver what came during the spin (it sent no wake-up).  The callbacks
   * may change what the host waits for, so this iteration's poll must not
   * block: the idle handle makes its timeout 0 (uv_run(ONCE) then returns
   * to the host).  A channel closed by an earlier callback is still in
   * memory (it is released in close callbacks, later in the iteration);
   * pump skips it. */
  for (ch = ready; ch != NULL; ch = next) {
    next = IPT(ch)->ready_next;
    IPT(ch)->ready_next = NULL;
    if (ch->closing)
      continue;
    uv_idle_start(&IPT(ch)->idle, inproc__idle_cb);
    inproc__pump(ch);
  }
}

static void inproc__closed(uv_handle_t *h) {
  struct actor__chan *ch = h->data;
  struct actor__inproc *ip = CH_IP(ch);
  if (--IPT(ch)->pending_close > 0)
    return;
  free(ch->t);
  ch->t = NULL;
  actor__chan_fini(ch);
  actor__inproc_unref(ip);
  if (ch->cbs->on_closed)
    ch->cbs->on_closed(ch);
}

static void inproc__close(struct actor__chan *ch) {
  struct actor__inproc *ip = CH_IP(ch);
  if (ch->closing)
    return;
  ch->closing = 1;
  spin__remove(ch);
  pthread_mutex_lock(&ip->mu);
  ip->parent_closed = 1;
  ip->async = NULL; /* the child must not touch it from now on */
  pthread_mutex_unlock(&ip->mu);
  pthread_cond_broadcast(&ip->cv);       /* a waiting child sees EOF */
  pthread_cond_broadcast(&ip->space_cv); /* so does a blocked writer */
  IPT(ch)->pending_close = 3;
  uv_close((uv_handle_t *)&IPT(ch)->async, inproc__closed);
  uv_close((uv_handle_t *)&IPT(ch)->prep, inproc__closed);
  uv_close((uv_handle_t *)&IPT(ch)->idle, inproc__closed);
}

static const struct actor__chan_ops inproc_ops = {
    2,           "inproc",     inproc__kick,  inproc__flush,
    inproc__drain, inproc__pump, inproc__close, inproc__queued,
};

int actor__inproc_open_parent(struct actor__chan *ch, uv_loop_t *loop,
                              struct actor__inproc *ip, size_t max_frame,
                              const struct actor__chan_cbs *cbs, void *data) {
  struct inproc_parent *t;
  int r;

  r = actor__chan_init(ch, loop, max_frame, cbs, data);
  if (r)
    return r;
  t = ch->t = calloc(1, sizeof(*t));
  if (t == NULL) {
    actor__chan_fini(ch);
    return -ENOMEM;
  }
  r = uv_async_init(loop, &t->async, inproc__async_cb);
  if (r) {
    free(t);
    ch->t = NULL;
    actor__chan_fini(ch);
    return r;
  }
  t->async.data = ch;
  uv_prepare_init(loop, &t->prep);
  t->prep.data = ch;
  uv_idle_init(loop, &t->idle);
  t->idle.data = ch;
  uv_prepare_start(&t->prep, inproc__prepare_cb);
  /* A prepare handle alone must not keep the loop alive. */
  uv_unref((uv_handle_t *)&t->prep);
  ch->ops = &inproc_ops;
  t->ip = ip;
  actor__inproc_ref(ip);
  pthread_mutex_lock(&ip->mu);
  ip->async = &t->async;
  pthread_mutex_unlock(&ip->mu);
  /* Known before the first send: the child's first wait must not spin for
   * a loop on its own CPU either. */
  atomic_store_explicit(&ip->parent_cpu, this_cpu(), memory_order_relaxed);
  /* The child may have written (HELLO) before we attached. */
  uv_async_send(&t->async);
  return 0;
}

/* ---- child side (any thread; blocking) ------------------------------------ */

int actor__inproc_child_write(struct actor__inproc *ip, const char *p,
                              size_t n) {
  int r = 0;
  atomic_store_explicit(&ip->child_cpu, this_cpu(), memory_order_relaxed);
  pthread_mutex_lock(&ip->mu);
  /* Backpressure: wait for the parent to take what is queued.  Its loop
   * always takes everything at once, so this ends when the loop runs, or
   * when the parent side closes. */
  while (!ip->parent_closed && ip->c2p.len > 0 &&
         ip->c2p.len + n > INPROC_C2P_MAX) {
    ip->child_blocked = 1;
    if (ip->async != NULL && !ip->parent_spinning)
      uv_async_send(ip->async);
    pthread_cond_wait(&ip->space_cv, &ip->mu);
    ip->child_blocked = 0;
  }
  if (ip->parent_closed)
    r = ACTOR_ECLOSED;
  else if (actor__buf_append(&ip->c2p, p, n))
    r = -ENOMEM;
  else {
    atomic_store_explicit(&ip->c2p_len, ip->c2p.len, memory_order_release);
    /* A spinning parent sees c2p_len; otherwise wake its loop (free when a
     * wake-up is already pending). */
    if (!ip->parent_spinning && ip->async != NULL)
      uv_async_send(ip->async);
  }
  pthread_mutex_unlock(&ip->mu);
  return r;
}

static uint64_t inproc__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int actor__inproc_child_read(struct actor__inproc *ip, struct abuf *in,
                             int timeout_ms) {
  uint64_t spin_end;
  struct timespec until;
  int r = 0, me = this_cpu();

  /* Spin without the lock while the parent is likely to answer soon: not
   * when it last ran on our CPU (it cannot run while we spin), nor while
   * recent spins went unanswered. */
  atomic_store_explicit(&ip->child_cpu, me, memory_order_relaxed);
  if (timeout_ms != 0 &&
      atomic_load_explicit(&ip->p2c_len, memory_order_acquire) == 0 &&
      (me < 0 ||
       atomic_load_explicit(&ip->parent_cpu, memory_order_relaxed) != me) &&
      luck_try(&ip->child_luck)) {
    atomic_fetch_add_explicit(&child_spins, 1, memory_order_relaxed);
    spin_end = inproc__now_ns() + INPROC_SPIN_NS;
    while (atomic_load_explicit(&ip->p2c_len, memory_order_acquire) == 0 &&
           inproc__now_ns() < spin_end)
      cpu_relax();
    luck_result(&ip->child_luck,
                atomic_load_explicit(&ip->p2c_len, memory_order_acquire) > 0);
  }
  if (timeout_ms > 0) {
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&ip->mu);
  while (ip->p2c.len == 0 && !ip->parent_closed && r == 0) {
    if (timeout_ms == 0 || ip->wake) {
      ip->wake = 0;
      r = -ETIMEDOUT;
      break;
    }
    ip->child_waiting = 1;
    if (timeout_ms < 0)
      pthread_cond_wait(&ip->cv, &ip->mu);
    else if (pthread_cond_timedwait(&ip->cv, &ip->mu, &until) == ETIMEDOUT &&
             ip->p2c.len == 0)
      r = -ETIMEDOUT;
    ip->child_waiting = 0;
  }
  if (ip->p2c.len > 0) {
    if (in->len == 0) {
      struct abuf tmp = *in;
      *in = ip->p2c;
      ip->p2c = tmp;
      ip->p2c.len = 0;
      ip->p2c.off = 0;
    } else if (actor__buf_append(in, actor__buf_data(&ip->p2c), ip->p2c.len) ==
               0) {
      ip->p2c.len = 0;
      ip->p2c.off = 0;
    } else {
      r = -ENOMEM;
    }
    atomic_store(&ip->p2c_len, ip->p2c.len);
    r = r == -ETIMEDOUT ? 0 : r;
    if (ip->parent_watch && ip->async != NULL) {
      /* The parent refused work for a full queue: it has room now. */
      ip->parent_watch = 0;
      uv_async_send(ip->async);
    }
  } else if (ip->parent_closed && r == 0) {
    r = ACTOR_ECLOSED;
  }
  pthread_mutex_unlock(&ip->mu);
  return r;
}

int actor__inproc_child_pending(struct actor__inproc *ip) {
  return atomic_load_explicit(&ip->p2c_len, memory_order_acquire) != 0;
}

void actor__inproc_wake(struct actor__inproc *ip) {
  pthread_mutex_lock(&ip->mu);
  ip->wake = 1;
  pthread_mutex_unlock(&ip->mu);
  pthread_cond_broadcast(&ip->cv);
}

void actor__inproc_child_close(struct actor__inproc *ip) {
  pthread_mutex_lock(&ip->mu);
  ip->child_closed = 1;
  if (ip->async != NULL)
    uv_async_send(ip->async);
  pthread_mutex_unlock(&ip->mu);
}
