/* The transport-independent half of a channel: framing and sending. */
#include "ipc/chan.h"

#include <errno.h>
#include <string.h>

#include "libactor/actor.h"

int actor__chan_init(struct actor__chan *ch, uv_loop_t *loop, size_t max_frame,
                     const struct actor__chan_cbs *cbs, void *data) {
  memset(ch, 0, sizeof(*ch));
  ch->loop = loop;
  ch->cbs = cbs;
  ch->data = data;
  ch->framer.max_frame = max_frame;
  actor__buf_init(&ch->in);
  actor__buf_init(&ch->out);
  return 0;
}

void actor__chan_fini(struct actor__chan *ch) {
  actor__buf_fini(&ch->in);
  actor__buf_fini(&ch->out);
}

static int chan__frame(void *arg, const char *body, size_t len) {
  struct actor__chan *ch = arg;
  int r;
  if (ch->closing || ch->eof)
    return 1;
  r = ch->cbs->on_frame(ch, body, len);
  return r || ch->closing || ch->eof;
}

static int chan__oversize(void *arg, int kind, uint32_t id, uint64_t len) {
  struct actor__chan *ch = arg;
  if (ch->closing || ch->eof)
    return 1;
  return ch->cbs->on_oversize(ch, kind, id, len) || ch->closing || ch->eof;
}

static const struct actor__framer_cbs chan__framer_cbs = {chan__frame,
                                                          chan__oversize};

int actor__chan_deliver(struct actor__chan *ch) {
  int r = actor__framer_feed(&ch->framer, &ch->in, &chan__framer_cbs, ch);
  if (r < 0) {
    actor__chan_signal_eof(ch, r);
    return 1;
  }
  return r;
}

void actor__chan_signal_eof(struct actor__chan *ch, int err) {
  if (ch->eof || ch->closing)
    return;
  ch->eof = 1;
  ch->cbs->on_eof(ch, err);
}

void actor__chan_drained(struct actor__chan *ch) {
  if (!ch->want_drain || ch->closing || ch->eof ||
      ch->ops->queued(ch) > ch->drain_lwm)
    return;
  ch->want_drain = 0;
  if (ch->cbs->on_drain != NULL)
    ch->cbs->on_drain(ch);
}

int actor__chan_send(struct actor__chan *ch, const struct actor__msg *m) {
  int r;
  if (ch->closing)
    return ACTOR_ECLOSED;
  r = actor__msg_encode(&ch->out, m, ch->framer.max_frame);
  if (r)
    return r;
  if (!ch->corked)
    ch->ops->kick(ch);
  return 0;
}
