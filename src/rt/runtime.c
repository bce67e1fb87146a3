/* The parent-side runtime: loop ownership or adoption, the actor registry,
 * and an asynchronous, bounded close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt/internal.h"
#include "spawn/backend.h"

int actor_rt_new(actor_rt **rtp, uv_loop_t *loop) {
  actor_rt *rt;
  int r;

  *rtp = NULL;
  rt = calloc(1, sizeof(*rt));
  if (rt == NULL)
    return -ENOMEM;
  if (loop == NULL) {
    loop = malloc(sizeof(*loop));
    if (loop == NULL) {
      free(rt);
      return -ENOMEM;
    }
    r = uv_loop_init(loop);
    if (r) {
      free(loop);
      free(rt);
      return r;
    }
    rt->owns_loop = 1;
  }
  rt->loop = loop;
  rt->max_frame = ACTOR__DEFAULT_MAX_FRAME;
  rt->max_queue = ACTOR__DEFAULT_MAX_QUEUE;
  actor__log_init(&rt->log);
  alist_init(&rt->actors);
  alist_init(&rt->free_calls);
  rt->next_actor_id = 1;
  *rtp = rt;
  return 0;
}

uv_loop_t *actor_rt_loop(actor_rt *rt) { return rt->loop; }

int actor_rt_run(actor_rt *rt, int mode) {
  uv_run_mode m = mode == ACTOR_RUN_ONCE     ? UV_RUN_ONCE
                  : mode == ACTOR_RUN_NOWAIT ? UV_RUN_NOWAIT
                                             : UV_RUN_DEFAULT;
  return uv_run(rt->loop, m);
}

int actor_rt_backend_fd(actor_rt *rt) { return uv_backend_fd(rt->loop); }

int actor_rt_backend_timeout(actor_rt *rt) {
  /* Output waits for the loop's prepare phase (ipc/stream.c), which libuv
   * does not count as work that keeps a poll from blocking. */
  if (rt->flush_waiting > 0)
    return 0;
  return uv_backend_timeout(rt->loop);
}

void actor_rt_set_log(actor_rt *rt, int level, actor_log_cb cb, void *arg) {
  rt->log.level = level;
  rt->log.cb = cb;
  rt->log.arg = arg;
}

int actor_rt_set_max_frame(actor_rt *rt, size_t bytes) {
  /* The header holds 32 bits; and a frame plus its header must fit a
   * size_t with room to spare (32-bit builds). */
  if (bytes < ACTOR__MIN_MAX_FRAME || bytes > UINT32_MAX ||
      bytes > SIZE_MAX / 2)
    return -EINVAL;
  rt->max_frame = bytes;
  return 0;
}

int actor_rt_set_max_queue(actor_rt *rt, size_t bytes) {
  if (bytes < ACTOR__MIN_MAX_FRAME)
    return -EINVAL;
  rt->max_queue = bytes;
  return 0;
}

void actor_rt_on_drain(actor_rt *rt, actor_drain_cb cb, void *arg) {
  rt->drain_cb = cb;
  rt->drain_arg = arg;
}

const char *actor_rt_errmsg(actor_rt *rt) { return rt->errmsg; }

size_t actor_rt_actor_count(actor_rt *rt) { return rt->nlive; }

void actor__seterr(actor_rt *rt, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rt->errmsg, sizeof(rt->errmsg), fmt, ap);
  va_end(ap);
}

/* ---- close ----------------------------------------------------------------
 * actor_rt_close() stops every actor; each actor's own deadlines bound how
 * long that takes.  When the last one is freed (actor.c calls
 * actor__rt_actor_gone), an idle callback finishes the close from a fresh
 * stack, so the user's close callback never runs inside one of our calls. */

static void rt__idle_closed(uv_handle_t *h) {
  actor_rt *rt = h->data;
  rt->closed = 1;
  if (rt->close_cb != NULL)
    rt->close_cb(rt, rt->close_arg);
}

static void rt__idle_cb(uv_idle_t *h) {
  uv_idle_stop(h);
  uv_close((uv_handle_t *)h, rt__idle_closed);
}

/* ---- runtime-scoped backend state (backend.h, version 2) ----------------- */

static struct actor__rt_bslot *rt__bslot(actor_rt *rt,
                                         const struct actor__backend *b) {
  size_t i;
  for (i = 0; i < ACTOR__RT_BACKENDS; i++)
    if (rt->bslots[i].b == b)
      return &rt->bslots[i];
  return NULL;
}

void *actor__rt_backend_peek(actor_rt *rt, const struct actor__backend *b) {
  struct actor__rt_bslot *s = rt__bslot(rt, b);
  return s != NULL ? s->state : NULL;
}

int actor__rt_backend_state(actor_rt *rt, const struct actor__backend *b,
                            void **out) {
  const struct actor__backend_v2 *b2 = actor__backend_v2(b);
  struct actor__rt_bslot *s;
  int r;

  *out = NULL;
  if (b2 == NULL || b2->rt_state_size == 0)
    return -EINVAL;
  s = rt__bslot(rt, b);
  if (s != NULL) {
    *out = s->state;
    return 0;
  }
  if (rt->closing)
    return ACTOR_ESTATE;
  s = rt__bslot(rt, NULL);
  if (s == NULL)
    return -ENOMEM; /* more stateful backends than slots: a build error */
  s->state = calloc(1, b2->rt_state_size);
  if (s->state == NULL)
    return -ENOMEM;
  s->b = b;
  r = b2->rt_init != NULL ? b2->rt_init(s->state, rt) : 0;
  if (r) {
    free(s->state);
    memset(s, 0, sizeof(*s));
    return r;
  }
  *out = s->state;
  return 0;
}

static void rt__maybe_finish_close(actor_rt *rt) {
  size_t i;
  for (i = 0; i < ACTOR__RT_BACKENDS; i++)
    if (rt->bslots[i].b != NULL && !rt->bslots[i].closed)
      return;
  if (!rt->close_pending) {
    rt->close_pending = 1;
    uv_idle_start(&rt->close_idle, rt__idle_cb);
  }
}

void actor__rt_backend_closed(actor_rt *rt, const struct actor__backend *b) {
  struct actor__rt_bslot *s = rt__bslot(rt, b);
  if (s == NULL || s->closed)
    return;
  s->closed = 1;
  free(s->state);
  s->state = NULL;
  if (rt->bclosing)
    rt__maybe_finish_close(rt);
}

/* Every actor is gone: the backends close their runtime state (each
 * bounded by its own deadline), then the close completes. */
void actor__rt_actor_gone(actor_rt *rt) {
  size_t i;
  if (!rt->closing || rt->bclosing || !alist_empty(&rt->actors))
    return;
  rt->bclosing = 1;
  for (i = 0; i < ACTOR__RT_BACKENDS; i++) {
    struct actor__rt_bslot *s = &rt->bslots[i];
    if (s->b == NULL || s->closing)
      continue;
    s->closing = 1;
    if (actor__backend_v2(s->b)->rt_close != NULL)
      actor__backend_v2(s->b)->rt_close(s->state, rt); /* may end at once */
    else
      actor__rt_backend_closed(rt, s->b);
  }
  rt__maybe_finish_close(rt);
}

int actor_rt_close(actor_rt *rt, actor_rt_close_cb cb, void *arg) {
  struct alist *n, *next;

  if (rt->closing)
    return 0;
  rt->closing = 1;
  rt->close_cb = cb;
  rt->close_arg = arg;
  uv_idle_init(rt->loop, &rt->close_idle);
  rt->close_idle.data = rt;
  actor__logf(&rt->log, ACTOR_LOG_DEBUG, "runtime closing: %zu actor(s)",
              rt->nlive);
  for (n = rt->actors.next; n != &rt->actors; n = next) {
    next = n->next; /* actor_stop() never frees synchronously */
    actor_stop(ALIST_ENTRY(n, actor, node));
  }
  actor__rt_actor_gone(rt);
  return 0;
}

static void rt__free_calls(actor_rt *rt) {
  while (!alist_empty(&rt->free_calls)) {
    struct alist *n = rt->free_calls.next;
    alist_remove(n);
    free(n);
  }
}

int actor_rt_free(actor_rt *rt) {
  size_t i;
  int r;
  if (rt == NULL)
    return 0;
  if (!alist_empty(&rt->actors) || (rt->closing && !rt->closed))
    return ACTOR_ESTATE;
  /* A backend's runtime state (a fork server) ends only through close. */
  for (i = 0; i < ACTOR__RT_BACKENDS; i++)
    if (rt->bslots[i].b != NULL && !rt->bslots[i].closed)
      return ACTOR_ESTATE;
  rt__free_calls(rt);
  if (rt->owns_loop) {
    /* Handles of ours are all closed; run once more so libuv finishes its
     * own internal closing (the signal pipe of uv_spawn, for example). */
    uv_run(rt->loop, UV_RUN_NOWAIT);
    r = uv_loop_close(rt->loop);
    if (r)
      return r; /* someone else left a handle on our loop */
    free(rt->loop);
  }
  free(rt);
  return 0;
}

int actor_rt_shutdown(actor_rt *rt) {
  int r;
  if (rt == NULL)
    return 0;
  r = actor_rt_close(rt, NULL, NULL);
  if (r)
    return r;
  while (!rt->closed)
    uv_run(rt->loop, UV_RUN_ONCE);
  return actor_rt_free(rt);
}
