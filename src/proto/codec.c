/* Frame and message codec over msgpack-c.  See codec.h. */
#include "proto/codec.h"

#include <errno.h>
#include <string.h>

#include "actor.h"

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

static int codec__write(void *data, const char *buf, size_t len) {
  return actor__buf_append((struct abuf *)data, buf, len) ? -1 : 0;
}

static void codec__pack_str(msgpack_packer *pk, const struct actor__str *s) {
  msgpack_pack_str(pk, s->n);
  msgpack_pack_str_body(pk, s->p ? s->p : "", s->n);
}

static int codec__nelems(int kind) {
  switch (kind) {
  case ACTOR__MSG_HELLO:
    return 6;
  case ACTOR__MSG_CALL:
    return 4;
  case ACTOR__MSG_RETURN:
  case ACTOR__MSG_ITEM:
    return 3;
  case ACTOR__MSG_ERROR:
    return 5;
  default:
    return 2;
  }
}

int actor__msg_encode(struct abuf *out, const struct actor__msg *m,
                      size_t max_frame) {
  msgpack_packer pk;
  size_t start, body;
  unsigned char *hdr;
  static const char nil = (char)0xc0;

  /* Reserve header + the payload + some slack in one go, so that packing
   * below rarely reallocates. */
  if (actor__buf_reserve(out, ACTOR__FRAME_HDR + 64 + m->payload_len +
                                  m->fn.n + m->type.n + m->message.n +
                                  m->traceback.n + m->name.n + m->backend.n))
    return -ENOMEM;
  start = out->len;
  out->len += ACTOR__FRAME_HDR;
  msgpack_packer_init(&pk, out, codec__write);
  msgpack_pack_array(&pk, (size_t)codec__nelems(m->kind));
  msgpack_pack_unsigned_int(&pk, (unsigned)m->kind);
  msgpack_pack_uint32(&pk, m->id);
  switch (m->kind) {
  case ACTOR__MSG_HELLO:
    msgpack_pack_uint64(&pk, m->version);
    msgpack_pack_int64(&pk, m->pid);
    codec__pack_str(&pk, &m->backend);
    codec__pack_str(&pk, &m->name);
    break;
  case ACTOR__MSG_CALL:
    codec__pack_str(&pk, &m->fn);
    break;
  case ACTOR__MSG_ERROR:
    codec__pack_str(&pk, &m->type);
    codec__pack_str(&pk, &m->message);
    codec__pack_str(&pk, &m->traceback);
    break;
  default:
    break;
  }
  if (m->kind == ACTOR__MSG_CALL || m->kind == ACTOR__MSG_RETURN ||
      m->kind == ACTOR__MSG_ITEM) {
    if (m->payload_len > 0)
      codec__write(out, m->payload, m->payload_len);
    else
      codec__write(out, &nil, 1);
  }
  /* Every write above went to the space reserved at the top (its size
   * bounds the whole frame), so none of them can fail. */
  body = out->len - start - ACTOR__FRAME_HDR;
  if (body > max_frame) {
    out->len = start;
    return ACTOR_E2BIG;
  }
  hdr = (unsigned char *)actor__buf_data(out) + start;
  hdr[0] = (unsigned char)(body >> 24);
  hdr[1] = (unsigned char)(body >> 16);
  hdr[2] = (unsigned char)(body >> 8);
  hdr[3] = (unsigned char)body;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

/* msgpack-c has no call that reads only an array header, and reading the
 * elements one at a time is what lets payloads be handed out in place. */
static int codec__array_header(const unsigned char *p, size_t len,
                               uint32_t *n, size_t *hdrlen) {
  if (len < 1)
    return -1;
  if ((p[0] & 0xf0) == 0x90) {
    *n = p[0] & 0x0f;
    *hdrlen = 1;
    return 0;
  }
  if (p[0] == 0xdc && len >= 3) {
    *n = ((uint32_t)p[1] << 8) | p[2];
    *hdrlen = 3;
    return 0;
  }
  if (p[0] == 0xdd && len >= 5) {
    *n = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 8) | p[4];
    *hdrlen = 5;
    return 0;
  }
  return -1;
}

static int codec__next(const char *body, size_t len, size_t *off,
                       msgpack_zone *zone, msgpack_object *o) {
  size_t start = *off;
  msgpack_unpack_return r = msgpack_unpack(body, len, off, zone, o);
  if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES)
    return -1;
  return *off > start ? 0 : -1;
}

static int codec__uint(const msgpack_object *o, uint64_t *v) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return -1;
  *v = o->via.u64;
  return 0;
}

static int codec__int(const msgpack_object *o, int64_t *v) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (o->via.u64 > INT64_MAX)
      return -1;
    *v = (int64_t)o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *v = o->via.i64;
    return 0;
  }
  return -1;
}

static int codec__str(const msgpack_object *o, struct actor__str *s) {
  if (o->type == MSGPACK_OBJECT_NIL) {
    s->p = "";
    s->n = 0;
    return 0;
  }
  if (o->type != MSGPACK_OBJECT_STR)
    return -1;
  s->p = o->via.str.ptr;
  s->n = o->via.str.size;
  return 0;
}

int actor__msgpack_check(const char *p, size_t len, msgpack_zone *zone) {
  size_t off = 0;
  msgpack_object o;
  if (len == 0 || msgpack_unpack(p, len, &off, zone, &o) !=
                      MSGPACK_UNPACK_SUCCESS)
    return ACTOR_EBADFRAME;
  return off == len ? 0 : ACTOR_EBADFRAME;
}

int actor__msg_peek(const char *body, size_t len, int *kind, uint32_t *id) {
  uint32_t n;
  size_t off;
  const unsigned char *p = (const unsigned char *)body;
  uint64_t k, i;
  msgpack_zone zone;
  msgpack_object o;
  int r = ACTOR_EBADFRAME;

  if (codec__array_header(p, len, &n, &off) || n < 2)
    return ACTOR_EBADFRAME;
  if (!msgpack_zone_init(&zone, 256))
    return -ENOMEM;
  if (codec__next(body, len, &off, &zone, &o) == 0 &&
      codec__uint(&o, &k) == 0 && k < 256 &&
      codec__next(body, len, &off, &zone, &o) == 0 &&
      codec__uint(&o, &i) == 0 && i <= UINT32_MAX) {
    *kind = (int)k;
    *id = (uint32_t)i;
    r = 0;
  }
  msgpack_zone_destroy(&zone);
  return r;
}

int actor__msg_decode(struct actor__msg *m, const char *body, size_t len,
                      msgpack_zone *zone) {
  uint32_t n;
  size_t off, pstart;
  uint64_t k, id;
  msgpack_object o;
  int need;

  memset(m, 0, sizeof(*m));
  m->kind = -1;
  if (codec__array_header((const unsigned char *)body, len, &n, &off) ||
      n < 2)
    return ACTOR_EBADFRAME;
  if (codec__next(body, len, &off, zone, &o) || codec__uint(&o, &k) ||
      k > INT32_MAX)
    return ACTOR_EBADFRAME;
  if (codec__next(body, len, &off, zone, &o) || codec__uint(&o, &id) ||
      id > UINT32_MAX)
    return ACTOR_EBADFRAME;
  m->kind = (int)k;
  m->id = (uint32_t)id;
  if (k >= ACTOR__MSG_KINDS)
    return ACTOR_EBADKIND;
  /* Messages about a call carry its (nonzero) id; the others carry 0. */
  if ((id == 0) != (k == ACTOR__MSG_HELLO || k == ACTOR__MSG_STOP))
    return ACTOR_EBADFRAME;
  /* Later versions may append elements; we read the ones we know. */
  need = codec__nelems((int)k);
  if (n < (uint32_t)need)
    return ACTOR_EBADFRAME;

  switch (m->kind) {
  case ACTOR__MSG_HELLO:
    if (codec__next(body, len, &off, zone, &o) || codec__uint(&o, &m->version))
      return ACTOR_EBADFRAME;
    if (codec__next(body, len, &off, zone, &o) || codec__int(&o, &m->pid))
      return ACTOR_EBADFRAME;
    if (codec__next(body, len, &off, zone, &o) || codec__str(&o, &m->backend))
      return ACTOR_EBADFRAME;
    if (codec__next(body, len, &off, zone, &o) || codec__str(&o, &m->name))
      return ACTOR_EBADFRAME;
    return 0;
  case ACTOR__MSG_CALL:
    if (codec__next(body, len, &off, zone, &o) || codec__str(&o, &m->fn))
      return ACTOR_EBADFRAME;
    break;
  case ACTOR__MSG_ERROR:
    if (codec__next(body, len, &off, zone, &o) || codec__str(&o, &m->type))
      return ACTOR_EBADFRAME;
    if (codec__next(body, len, &off, zone, &o) || codec__str(&o, &m->message))
      return ACTOR_EBADFRAME;
    if (codec__next(body, len, &off, zone, &o) ||
        codec__str(&o, &m->traceback))
      return ACTOR_EBADFRAME;
    return 0;
  case ACTOR__MSG_RETURN:
  case ACTOR__MSG_ITEM:
    break;
  default:
    return 0;
  }
  /* The payload: one whole value, handed out in place. */
  pstart = off;
  if (codec__next(body, len, &off, zone, &o))
    return ACTOR_EBADFRAME;
  m->payload = body + pstart;
  m->payload_len = off - pstart;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

/* Bytes of an oversized frame kept to find its kind and id. */
#define FRAMER_PEEK 32

int actor__framer_feed(struct actor__framer *f, struct abuf *in,
                       const struct actor__framer_cbs *cbs, void *arg) {
  const unsigned char *p;
  uint64_t n;
  size_t take;
  int r;

  for (;;) {
    if (f->skip > 0) {
      take = in->len < f->skip ? in->len : (size_t)f->skip;
      actor__buf_consume(in, take);
      f->skip -= take;
      if (f->skip > 0)
        return 0;
      continue;
    }
    if (in->len < ACTOR__FRAME_HDR)
      break;
    p = (const unsigned char *)actor__buf_data(in);
    n = ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) |
        ((uint64_t)p[2] << 8) | p[3];
    if (n > f->max_frame) {
      /* Refused before allocating anything for it.  Wait for the first few
       * bytes of the body (always available eventually: n > max_frame >=
       * 1 KiB > FRAMER_PEEK) to name its kind and id, then discard. */
      if (in->len < ACTOR__FRAME_HDR + FRAMER_PEEK)
        break;
      f->skip_kind = -1;
      f->skip_id = 0;
      if (actor__msg_peek((const char *)p + ACTOR__FRAME_HDR, FRAMER_PEEK,
                          &f->skip_kind, &f->skip_id))
        f->skip_kind = -1;
      f->skip_len = n;
      f->skip = n;
      actor__buf_consume(in, ACTOR__FRAME_HDR);
      /* Report now, not once the bytes have passed: a peer that announces
       * 2 GiB and then stalls must not keep the caller waiting. */
      r = cbs->oversize(arg, f->skip_kind, f->skip_id, f->skip_len);
      if (r)
        return r;
      continue;
    }
    if (in->len - ACTOR__FRAME_HDR < n) {
      /* Partial frame: make sure the rest fits without another grow. */
      if (actor__buf_reserve(in, (size_t)n + ACTOR__FRAME_HDR - in->len))
        return -ENOMEM;
      return 0;
    }
    r = cbs->frame(arg, (const char *)p + ACTOR__FRAME_HDR, (size_t)n);
    actor__buf_consume(in, ACTOR__FRAME_HDR + (size_t)n);
    if (r)
      return r;
  }
  return 0;
}
