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

static uint64_t codec__be(const unsigned char *p, int k) {
  uint64_t v = 0;
  while (k-- > 0)
    v = (v << 8) | *p++;
  return v;
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

/* msgpack-c reserves room for a container's announced element count before
 * it reads the elements, so five bytes announcing 2^32 elements make it
 * try to allocate ~100 GB.  No msgpack-c call checks counts against the
 * bytes actually there, hence this one pass: every element takes at least
 * one byte, so no announced count or length may exceed what is left.  It
 * also checks that [p, p+len) holds whole values only.  Returns the number
 * of top-level values, or -1. */
static long codec__sane(const char *p, size_t len, int one, size_t *end) {
  const unsigned char *s = (const unsigned char *)p;
  size_t pos = 0, need;
  uint64_t pending = 0, n;
  long values = 0;
  unsigned char b;

#define BE(k) codec__be(s + pos + 1, k)
  while (pos < len || pending > 0) {
    if (pos >= len)
      return -1;
    if (pending == 0) {
      if (one && values == 1)
        break;
      values++;
    }
    else
      pending--;
    b = s[pos];
    need = 1;
    n = 0; /* elements this one contains */
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      /* fixint, nil, bool */
    } else if ((b & 0xe0) == 0xa0) {
      need += b & 0x1f; /* fixstr */
    } else if ((b & 0xf0) == 0x90) {
      n = b & 0x0f;
    } else if ((b & 0xf0) == 0x80) {
      n = 2u * (b & 0x0f);
    } else {
      switch (b) {
      case 0xcc: case 0xd0: need = 2; break;
      case 0xcd: case 0xd1: need = 3; break;
      case 0xca: case 0xce: case 0xd2: need = 5; break;
      case 0xcb: case 0xcf: case 0xd3: need = 9; break;
      case 0xd4: need = 3; break;  /* fixext 1 */
      case 0xd5: need = 4; break;
      case 0xd6: need = 6; break;
      case 0xd7: need = 10; break;
      case 0xd8: need = 18; break;
      case 0xd9: case 0xc4: /* str8, bin8 */
        if (len - pos < 2) return -1;
        need = 2 + (size_t)BE(1);
        break;
      case 0xda: case 0xc5:
        if (len - pos < 3) return -1;
        need = 3 + (size_t)BE(2);
        break;
      case 0xdb: case 0xc6:
        if (len - pos < 5) return -1;
        need = 5 + (size_t)BE(4);
        break;
      case 0xc7: /* ext8: len, type, data */
        if (len - pos < 2) return -1;
        need = 3 + (size_t)BE(1);
        break;
      case 0xc8:
        if (len - pos < 3) return -1;
        need = 4 + (size_t)BE(2);
        break;
      case 0xc9:
        if (len - pos < 5) return -1;
        need = 6 + (size_t)BE(4);
        break;
      case 0xdc: case 0xde: /* array16, map16 */
        if (len - pos < 3) return -1;
        need = 3;
        n = BE(2) * (b == 0xde ? 2u : 1u);
        break;
      case 0xdd: case 0xdf:
        if (len - pos < 5) return -1;
        need = 5;
        n = BE(4) * (b == 0xdf ? 2u : 1u);
        break;
      default: /* 0xc1: never used */
        return -1;
      }
    }
    if (need > len - pos)
      return -1;
    pos += need;
    if (n > len - pos || pending + n < pending)
      return -1; /* more elements announced than bytes left */
    pending += n;
  }
#undef BE
  if (end != NULL)
    *end = pos;
  return values;
}

long actor__msgpack_sane(const char *p, size_t len) {
  return codec__sane(p, len, 0, NULL);
}

int actor__msgpack_sane_first(const char *p, size_t len, size_t *end) {
  return codec__sane(p, len, 1, end) == 1 ? 0 : -1;
}

int actor__msgpack_check(const char *p, size_t len, msgpack_zone *zone) {
  size_t off = 0;
  msgpack_object o;
  if (len == 0 || actor__msgpack_sane(p, len) != 1 ||
      msgpack_unpack(p, len, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS)
    return ACTOR_EBADFRAME;
  return off == len ? 0 : ACTOR_EBADFRAME;
}

static size_t codec__uint_size(unsigned char b) {
  return b <= 0x7f ? 1 : b == 0xcc ? 2 : b == 0xcd ? 3 : b == 0xce ? 5 : 9;
}

static int codec__uint_at(const unsigned char *p, size_t len, size_t off) {
  if (off >= len)
    return 0;
  if (!(p[off] <= 0x7f || (p[off] >= 0xcc && p[off] <= 0xcf)))
    return 0;
  return off + codec__uint_size(p[off]) <= len;
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
  /* Only the start of the frame is here: accept nothing but two unsigned
   * integers, so that msgpack-c never sees a container header. */
  if (!codec__uint_at(p, len, off) ||
      !codec__uint_at(p, len, off + codec__uint_size(p[off])))
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
  /* One pass over the whole frame first (see actor__msgpack_sane). */
  if (actor__msgpack_sane(body, len) != 1)
    return ACTOR_EBADFRAME;
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
