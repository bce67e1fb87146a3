/* Frame and message codec over msgpack-c.  See codec.h. */
#include "proto/codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libactor/actor.h"

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

/* The packer's sink.  actor__msg_encode reserves room for the whole frame
 * first, so the common case is a plain copy; the envelope's writes are 1 to
 * 9 bytes each, for which a byte loop beats a call to memcpy. */
static int codec__write(void *data, const char *buf, size_t len) {
  struct abuf *b = data;
  char *t;
  if (b->cap - b->off - b->len < len)
    return actor__buf_append(b, buf, len) ? -1 : 0;
  t = actor__buf_tail(b);
  if (len <= 16) {
    for (size_t i = 0; i < len; i++)
      t[i] = buf[i];
  } else {
    memcpy(t, buf, len);
  }
  b->len += len;
  return 0;
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

/* The envelope's unsigned integers and string headers in the smallest
 * encoding, exactly as msgpack-c's packer writes them (so that either
 * encoder gives the same bytes). */
static unsigned char *codec__put_uint(unsigned char *t, uint32_t v) {
  if (v <= 0x7f) {
    *t++ = (unsigned char)v;
  } else if (v <= 0xff) {
    *t++ = 0xcc;
    *t++ = (unsigned char)v;
  } else if (v <= 0xffff) {
    *t++ = 0xcd;
    *t++ = (unsigned char)(v >> 8);
    *t++ = (unsigned char)v;
  } else {
    *t++ = 0xce;
    *t++ = (unsigned char)(v >> 24);
    *t++ = (unsigned char)(v >> 16);
    *t++ = (unsigned char)(v >> 8);
    *t++ = (unsigned char)v;
  }
  return t;
}

static unsigned char *codec__put_str(unsigned char *t,
                                     const struct actor__str *s) {
  size_t n = s->n;
  if (n < 32) {
    *t++ = (unsigned char)(0xa0 | n);
  } else if (n < 256) {
    *t++ = 0xd9;
    *t++ = (unsigned char)n;
  } else if (n < 65536) {
    *t++ = 0xda;
    *t++ = (unsigned char)(n >> 8);
    *t++ = (unsigned char)n;
  } else {
    *t++ = 0xdb;
    *t++ = (unsigned char)(n >> 24);
    *t++ = (unsigned char)(n >> 16);
    *t++ = (unsigned char)(n >> 8);
    *t++ = (unsigned char)n;
  }
  actor__copy_small(t, s->p, n);
  return t + n;
}

int actor__msg_encode_call(struct abuf *out, int kind, uint32_t id,
                           const char *fn, size_t fn_n, const char *payload,
                           size_t len, size_t max_frame) {
  static const char nil = (char)0xc0;
  struct actor__str name;
  size_t body;
  unsigned char *hdr, *t;

  if (len > max_frame || fn_n > max_frame)
    return ACTOR_E2BIG;
  if (kind != ACTOR__MSG_CALL && kind != ACTOR__MSG_RETURN &&
      kind != ACTOR__MSG_ITEM) {
    len = 0;
  } else if (len == 0) {
    payload = &nil;
    len = 1;
  }
  /* header, array, kind, id (5), str header (5), fn, payload */
  if (actor__buf_room(out) < ACTOR__FRAME_HDR + 12 + fn_n + len &&
      actor__buf_reserve(out, ACTOR__FRAME_HDR + 12 + fn_n + len))
    return -ENOMEM;
  hdr = (unsigned char *)actor__buf_tail(out);
  t = hdr + ACTOR__FRAME_HDR;
  *t++ = (unsigned char)(0x90 | codec__nelems(kind));
  *t++ = (unsigned char)kind;
  t = codec__put_uint(t, id);
  if (kind == ACTOR__MSG_CALL) {
    name.p = fn;
    name.n = fn_n;
    t = codec__put_str(t, &name);
  }
  actor__copy_small(t, payload, len);
  t += len;
  body = (size_t)(t - hdr) - ACTOR__FRAME_HDR;
  if (body > max_frame)
    return ACTOR_E2BIG; /* nothing appended: out->len is unchanged */
  hdr[0] = (unsigned char)(body >> 24);
  hdr[1] = (unsigned char)(body >> 16);
  hdr[2] = (unsigned char)(body >> 8);
  hdr[3] = (unsigned char)body;
  out->len += ACTOR__FRAME_HDR + body;
  return 0;
}

int actor__msg_encode(struct abuf *out, const struct actor__msg *m,
                      size_t max_frame) {
  msgpack_packer pk;
  size_t start, body;
  unsigned char *hdr;
  static const char nil = (char)0xc0;

  /* (A message carrying parts its kind does not encode gets the general
   * path's checks of every part.) */
  if (m->kind != ACTOR__MSG_HELLO && m->kind != ACTOR__MSG_ERROR &&
      (unsigned)m->kind < ACTOR__MSG_KINDS &&
      (m->type.n | m->message.n | m->traceback.n | m->name.n |
       m->backend.n) == 0)
    return actor__msg_encode_call(out, m->kind, m->id, m->fn.p, m->fn.n,
                                  m->payload, m->payload_len, max_frame);
  /* No part may exceed the frame on its own; checked first, so that the
   * sum below cannot wrap (max_frame < 2^32, six parts: < 2^35, which only
   * a 32-bit size_t could not hold — hence the 64-bit sum). */
  uint64_t need = (uint64_t)ACTOR__FRAME_HDR + 64 + m->payload_len + m->fn.n +
                  m->type.n + m->message.n + m->traceback.n + m->name.n +
                  m->backend.n;
  if (m->payload_len > max_frame || m->fn.n > max_frame ||
      m->type.n > max_frame || m->message.n > max_frame ||
      m->traceback.n > max_frame || m->name.n > max_frame ||
      m->backend.n > max_frame || need > (uint64_t)max_frame + 64 + 4)
    return ACTOR_E2BIG;
  /* Reserve header + the payload + some slack in one go, so that packing
   * below rarely reallocates. */
  if (actor__buf_reserve(out, (size_t)need))
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

/* Decoding never builds msgpack objects.  msgpack-c has no call that finds
 * where a value ends without materialising it (msgpack_unpack builds a
 * 24-byte object per element, and stops at its embedded stack depth of 32),
 * and it reserves room for a container's announced count before reading the
 * elements (five bytes announcing 2^32 elements make it try ~100 GB).  So one
 * linear pass over the frame, element by element of the envelope
 * (codec__envelope, codec__skip), checks every count and length against the
 * bytes present, measures the nesting depth, and records where the
 * envelope's elements start; its scalars are then read in place and the
 * payload is handed out as a byte range.  Nothing is walked twice. */

static uint64_t codec__be(const unsigned char *p, int k) {
  uint64_t v = 0;
  while (k-- > 0)
    v = (v << 8) | *p++;
  return v;
}

/* ---- the envelope's scalars, read in place ---- */

/* An unsigned integer (positive fixint, uint8..64) exactly filling
 * [p, p+n).  0 or -1. */
static int codec__read_uint(const unsigned char *p, size_t n, uint64_t *v) {
  if (n == 1 && p[0] <= 0x7f) {
    *v = p[0];
    return 0;
  }
  if (n >= 2 && p[0] >= 0xcc && p[0] <= 0xcf &&
      n == 1 + ((size_t)1 << (p[0] - 0xcc))) {
    *v = codec__be(p + 1, (int)n - 1);
    return 0;
  }
  return -1;
}

/* Any integer in the int64 range (also unsigned encodings). */
static int codec__read_int(const unsigned char *p, size_t n, int64_t *v) {
  uint64_t u;
  if (codec__read_uint(p, n, &u) == 0) {
    if (u > INT64_MAX)
      return -1;
    *v = (int64_t)u;
    return 0;
  }
  if (n == 1 && p[0] >= 0xe0) {
    *v = (int8_t)p[0];
    return 0;
  }
  if (n >= 2 && p[0] >= 0xd0 && p[0] <= 0xd3 &&
      n == 1 + ((size_t)1 << (p[0] - 0xd0))) {
    u = codec__be(p + 1, (int)n - 1);
    switch (n) {
    case 2: *v = (int8_t)u; break;
    case 3: *v = (int16_t)u; break;
    case 5: *v = (int32_t)u; break;
    default: *v = (int64_t)u; break;
    }
    return 0;
  }
  return -1;
}

/* A str (or nil, read as ""), exactly filling [p, p+n). */
static int codec__read_str(const unsigned char *p, size_t n,
                           struct actor__str *s) {
  size_t h;
  if (n == 1 && p[0] == 0xc0) {
    s->p = "";
    s->n = 0;
    return 0;
  }
  if ((p[0] & 0xe0) == 0xa0)
    h = 1;
  else if (p[0] == 0xd9)
    h = 2;
  else if (p[0] == 0xda)
    h = 3;
  else if (p[0] == 0xdb)
    h = 5;
  else
    return -1;
  if (n < h)
    return -1;
  /* The walk checked that the header's length is exactly what is here. */
  s->p = (const char *)p + h;
  s->n = n - h;
  return 0;
}

static int codec__uint_at(const unsigned char *p, size_t len, size_t off,
                          size_t *n) {
  if (off >= len)
    return -1;
  *n = p[off] <= 0x7f ? 1 : (p[off] >= 0xcc && p[off] <= 0xcf)
                                 ? 1 + ((size_t)1 << (p[off] - 0xcc))
                                 : 0;
  return *n == 0 || off + *n > len ? -1 : 0;
}

/* The array header of [kind, id, ...]: fixarray or array16/32. */
static int codec__array_header(const unsigned char *p, size_t len,
                               size_t *hdrlen) {
  if (len >= 1 && (p[0] & 0xf0) == 0x90)
    *hdrlen = 1;
  else if (len >= 3 && p[0] == 0xdc)
    *hdrlen = 3;
  else if (len >= 5 && p[0] == 0xdd)
    *hdrlen = 5;
  else
    return -1;
  return 0;
}

int actor__msg_peek(const char *body, size_t len, int *kind, uint32_t *id) {
  const unsigned char *p = (const unsigned char *)body;
  size_t off, kn, in;
  uint64_t k, i;

  /* Only the start of the frame is here: read the array header and two
   * unsigned integers, nothing else. */
  if (codec__array_header(p, len, &off) ||
      ((p[0] & 0xf0) == 0x90 && (p[0] & 0x0f) < 2) ||
      codec__uint_at(p, len, off, &kn) ||
      codec__uint_at(p, len, off + kn, &in) ||
      codec__read_uint(p + off, kn, &k) ||
      codec__read_uint(p + off + kn, in, &i) || k >= 256 || i > UINT32_MAX)
    return ACTOR_EBADFRAME;
  *kind = (int)k;
  *id = (uint32_t)i;
  return 0;
}

/* One whole value at s[*pos], containers nested at most `maxd` deep: 0 and
 * *pos past it, or -1 (a count or length announcing more than the bytes
 * present, a byte that is not msgpack, a value cut short).  Deeper nesting
 * is not an error here: *deep is set and the walk goes on counting
 * elements only, so that the caller still learns whether the bytes are
 * well formed.  This is the hot path (every frame, every call's
 * arguments): scalars, the common case, cost one test. */
/* The whole size of every msgpack value whose first byte fixes it
 * (integers, floats, nil, bools, fixstr, fixext); 0 for containers,
 * variable-length values and the unused 0xc1. */
static const unsigned char codec__fixed[256] = {
    [0x00 ... 0x7f] = 1,
    [0xa0] = 1, [0xa1] = 2, [0xa2] = 3, [0xa3] = 4, [0xa4] = 5, [0xa5] = 6,
    [0xa6] = 7, [0xa7] = 8, [0xa8] = 9, [0xa9] = 10, [0xaa] = 11, [0xab] = 12,
    [0xac] = 13, [0xad] = 14, [0xae] = 15, [0xaf] = 16, [0xb0] = 17, [0xb1] =
    18, [0xb2] = 19, [0xb3] = 20, [0xb4] = 21, [0xb5] = 22, [0xb6] = 23,
    [0xb7] = 24, [0xb8] = 25, [0xb9] = 26, [0xba] = 27, [0xbb] = 28, [0xbc] =
    29, [0xbd] = 30, [0xbe] = 31, [0xbf] = 32,
    [0xc0] = 1, [0xc2] = 1, [0xc3] = 1,
    [0xca] = 5, [0xcb] = 9, [0xcc] = 2, [0xcd] = 3, [0xce] = 5, [0xcf] = 9,
    [0xd0] = 2, [0xd1] = 3, [0xd2] = 5, [0xd3] = 9,
    [0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10, [0xd8] = 18,
    [0xe0 ... 0xff] = 1,
};

/* stack[]: the elements still to come of each enclosing level, `cap`
 * levels of room; returns -2 when a value needs more (the caller retries
 * with more).  The level being walked keeps its count in a register (cur),
 * so a scalar costs a load, a compare and a decrement. */
static inline int codec__skip_in(const unsigned char *s, size_t len,
                                 size_t *posp, int maxd, int *deep,
                                 uint64_t *stack, int cap) {
  uint64_t pending = 1; /* every element still to come, at all levels */
  uint64_t cur = 1;     /* of which in the level being walked */
  uint64_t need, n, rest;
  size_t pos = *posp;
  int depth = 0, too_deep = 0;
  unsigned char b;

#define BE(k) codec__be(s + pos + 1, k)
  while (pending > 0) {
    if (pos >= len)
      return -1;
    pending--;
    cur--;
    b = s[pos];
    need = codec__fixed[b];
    if (need > 0) { /* scalars, the common case: one load and a compare */
      if (need > len - pos)
        return -1;
      pos += need;
      goto close;
    }
    rest = len - pos;
    need = 1;
    if (b <= 0x9f) { /* fixmap, fixarray */
      n = b & 0x0f;
      if (b < 0x90)
        n *= 2;
    } else {
      n = 0;
      switch (b) {
      case 0xd9: case 0xc4: /* str8, bin8 */
        if (rest < 2) return -1;
        need = 2 + BE(1);
        break;
      case 0xda: case 0xc5:
        if (rest < 3) return -1;
        need = 3 + BE(2);
        break;
      case 0xdb: case 0xc6:
        if (rest < 5) return -1;
        need = 5 + BE(4);
        break;
      case 0xc7: /* ext8: len, type, data */
        if (rest < 2) return -1;
        need = 3 + BE(1);
        break;
      case 0xc8:
        if (rest < 3) return -1;
        need = 4 + BE(2);
        break;
      case 0xc9:
        if (rest < 5) return -1;
        need = 6 + BE(4);
        break;
      case 0xdc: case 0xde: /* array16, map16 */
        if (rest < 3) return -1;
        need = 3;
        n = BE(2) * (b == 0xde ? 2u : 1u);
        break;
      case 0xdd: case 0xdf:
        if (rest < 5) return -1;
        need = 5;
        n = BE(4) * (b == 0xdf ? 2u : 1u);
        break;
      default: /* 0xc1: never used */
        return -1;
      }
    }
    if (need > rest)
      return -1;
    pos += need;
    if (n > 0) {
      /* Every element to come takes at least one byte. */
      if (n > len - pos || pending + n > len - pos)
        return -1;
      pending += n;
      if (too_deep)
        continue; /* only `pending` counts now */
      if (depth == maxd) {
        too_deep = 1; /* levels are no longer tracked */
        continue;
      }
      if (depth == cap)
        return -2;
      stack[depth++] = cur;
      cur = n;
      continue;
    }
  close:
    /* Leave the levels this element completed. */
    while (cur == 0 && depth > 0)
      cur = stack[--depth];
  }
#undef BE
  *posp = pos;
  if (too_deep)
    *deep = 1;
  return 0;
}

/* Room for every level a value may have: 4 KiB of stack, so kept out of
 * the common path's frame (whose stack probe would cost more than the
 * walk of a small value). */
static __attribute__((noinline)) int
codec__skip_deep(const unsigned char *s, size_t len, size_t *posp, int maxd,
                 int *deep) {
  uint64_t left[ACTOR__MAX_DEPTH + 1];
  return codec__skip_in(s, len, posp, maxd, deep, left, ACTOR__MAX_DEPTH + 1);
}

static int codec__skip(const unsigned char *s, size_t len, size_t *posp,
                       int maxd, int *deep) {
  uint64_t left[16];
  int r = codec__skip_in(s, len, posp, maxd, deep, left, 16);
  return r == -2 ? codec__skip_deep(s, len, posp, maxd, deep) : r;
}

int actor__msgpack_check(const char *p, size_t len) {
  size_t pos = 0;
  int deep = 0;
  /* One scalar (a nil, a number, a short string): the common argument. */
  if (len > 0 && codec__fixed[(unsigned char)p[0]] == len)
    return 0;
  if (len == 0 ||
      codec__skip((const unsigned char *)p, len, &pos, ACTOR__MAX_DEPTH,
                  &deep) ||
      pos != len)
    return ACTOR_EBADFRAME;
  return deep ? ACTOR_EDEPTH : 0;
}

long actor__msgpack_sane(const char *p, size_t len) {
  size_t pos = 0;
  long values = 0;
  int deep = 0;
  while (pos < len) {
    if (codec__skip((const unsigned char *)p, len, &pos, ACTOR__MAX_DEPTH,
                    &deep))
      return -1;
    values++;
  }
  return values;
}

int actor__msgpack_sane_first(const char *p, size_t len, size_t *end) {
  size_t pos = 0;
  int deep = 0;
  if (codec__skip((const unsigned char *)p, len, &pos, ACTOR__MAX_DEPTH,
                  &deep))
    return -1;
  if (end != NULL)
    *end = pos;
  return 0;
}

/* Where the envelope's elements lie: e[j] for the first 6 (every kind's
 * known elements), and the first element nested too deep.  The whole frame
 * is one array whose elements end exactly at `len`: 0, or -1. */
struct codec__env {
  uint64_t nelems;
  size_t off[6], n[6];
  uint64_t deep_at; /* the first element nested too deep, or UINT64_MAX */
};

static int codec__envelope(const unsigned char *p, size_t len,
                           struct codec__env *v) {
  size_t pos, start;
  uint64_t j;
  int deep;

  if (len >= 1 && (p[0] & 0xf0) == 0x90) {
    v->nelems = p[0] & 0x0f;
    pos = 1;
  } else if (len >= 3 && p[0] == 0xdc) {
    v->nelems = codec__be(p + 1, 2);
    pos = 3;
  } else if (len >= 5 && p[0] == 0xdd) {
    v->nelems = codec__be(p + 1, 4);
    pos = 5;
  } else {
    return -1;
  }
  if (v->nelems > len - pos)
    return -1;
  v->deep_at = UINT64_MAX;
  for (j = 0; j < v->nelems; j++) {
    start = pos;
    deep = 0;
    if (pos < len && codec__fixed[p[pos]] > 0 &&
        codec__fixed[p[pos]] <= len - pos)
      pos += codec__fixed[p[pos]]; /* kind, id, scalars */
    else if (codec__skip(p, len, &pos, ACTOR__MAX_DEPTH, &deep))
      return -1;
    if (deep && v->deep_at == UINT64_MAX)
      v->deep_at = j;
    if (j < 6) {
      v->off[j] = start;
      v->n[j] = pos - start;
    }
  }
  return pos == len ? 0 : -1;
}

/* The frames of every call as the libactor encoders write them, read in
 * one straight pass: a fixarray of exactly the kind's elements, the kind a
 * fixint, the id a fixint or uint8/16/32, a CALL's name a fixstr or str8,
 * and a payload that is one scalar or a value the walker finds well formed
 * and not too deep.  1 and m filled in (m zeroed by the caller), or 0: not
 * such a frame (or a bad one): the general path decides, with the same
 * result for every frame this one accepts. */
static int codec__decode_call(struct actor__msg *m, const unsigned char *p,
                              size_t len) {
  size_t pos, end, h, n, w;
  unsigned k;
  uint32_t id;
  int deep = 0;

  /* The array header each kind has here (none for HELLO and ERROR). */
  static const uint16_t hdr[ACTOR__MSG_KINDS] = {0x100, 0x94, 0x93, 0x100,
                                                 0x93,  0x92, 0x92, 0x92};

  if (len < 3 || p[1] >= ACTOR__MSG_KINDS || p[0] != hdr[p[1]])
    return 0;
  k = p[1];
  /* The id: a fixint, or uint8/16/32 (1 << (b - 0xcc) bytes). */
  if (p[2] <= 0x7f)
    w = 0;
  else if (p[2] >= 0xcc && p[2] <= 0xce)
    w = (size_t)1 << (p[2] - 0xcc);
  else
    return 0;
  pos = 3 + w;
  if (len < pos)
    return 0;
  id = w ? (uint32_t)codec__be(p + 3, (int)w) : p[2];
  if ((id == 0) != (k == ACTOR__MSG_STOP))
    return 0;
  m->kind = (int)k;
  m->id = id;
  if (k == ACTOR__MSG_END || k == ACTOR__MSG_CANCEL || k == ACTOR__MSG_STOP)
    return pos == len;
  if (k == ACTOR__MSG_CALL) {
    if (pos >= len)
      return 0;
    if ((p[pos] & 0xe0) == 0xa0) {
      h = 1;
      n = p[pos] & 0x1f;
    } else if (p[pos] == 0xd9 && len - pos >= 2) {
      h = 2;
      n = p[pos + 1];
    } else {
      return 0;
    }
    if (len - pos - h < n)
      return 0;
    m->fn.p = (const char *)p + pos + h;
    m->fn.n = n;
    pos += h + n;
  }
  if (pos >= len)
    return 0;
  if (codec__fixed[p[pos]] != len - pos) {
    end = pos;
    if (codec__fixed[p[pos]] != 0 ||
        codec__skip(p, len, &end, ACTOR__MAX_DEPTH, &deep) || end != len ||
        deep)
      return 0;
  }
  m->payload = (const char *)p + pos;
  m->payload_len = len - pos;
  return 1;
}

/* Any frame: the envelope walked once (codec__envelope), then each part
 * read by its kind's rules. */
static int codec__decode_general(struct actor__msg *m, const char *body,
                                 size_t len) {
  const unsigned char *p = (const unsigned char *)body;
  struct codec__env v;
  uint64_t k, id;
  size_t pay;
  int need;

  memset(m, 0, sizeof(*m));
  m->kind = -1;
  /* The envelope is one level: the payload may nest ACTOR__MAX_DEPTH. */
  if (codec__envelope(p, len, &v) || v.nelems < 2)
    return ACTOR_EBADFRAME;
#define AT(j) (p + v.off[j]), v.n[j]
  if (codec__read_uint(AT(0), &k) || k > INT32_MAX ||
      codec__read_uint(AT(1), &id) || id > UINT32_MAX)
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
  if (v.nelems < (uint64_t)need)
    return ACTOR_EBADFRAME;
  /* Only a payload may nest: too deep elsewhere is a bad frame. */
  pay = (k == ACTOR__MSG_CALL || k == ACTOR__MSG_RETURN || k == ACTOR__MSG_ITEM)
            ? (size_t)need - 1
            : (size_t)-1;
  if (v.deep_at != UINT64_MAX) {
    if (v.deep_at != pay)
      return ACTOR_EBADFRAME;
    /* Well formed, attributable, but nested deeper than we accept: the
     * caller fails that one call. */
    if (k == ACTOR__MSG_CALL && codec__read_str(AT(2), &m->fn))
      return ACTOR_EBADFRAME;
    return ACTOR_EDEPTH;
  }

  switch (m->kind) {
  case ACTOR__MSG_HELLO:
    if (codec__read_uint(AT(2), &m->version) ||
        codec__read_int(AT(3), &m->pid) ||
        codec__read_str(AT(4), &m->backend) ||
        codec__read_str(AT(5), &m->name))
      return ACTOR_EBADFRAME;
    return 0;
  case ACTOR__MSG_CALL:
    if (codec__read_str(AT(2), &m->fn))
      return ACTOR_EBADFRAME;
    break;
  case ACTOR__MSG_ERROR:
    if (codec__read_str(AT(2), &m->type) ||
        codec__read_str(AT(3), &m->message) ||
        codec__read_str(AT(4), &m->traceback))
      return ACTOR_EBADFRAME;
    return 0;
  case ACTOR__MSG_RETURN:
  case ACTOR__MSG_ITEM:
    break;
  default:
    return 0;
  }
#undef AT
  /* The payload: one whole value, handed out in place. */
  m->payload = body + v.off[pay];
  m->payload_len = v.n[pay];
  return 0;
}

#ifdef ACTOR_CODEC_SELFCHECK
/* Sanitizer and fuzz builds: every frame the one-pass reader accepts is
 * read again by the general one, which must accept it with the same
 * message; a difference aborts, so the fuzzers and the ASan lane hold the
 * two readers to one another. */
static void codec__selfcheck(const struct actor__msg *m, const char *body,
                             size_t len) {
  struct actor__msg g;
  if (codec__decode_general(&g, body, len) != 0 || g.kind != m->kind ||
      g.id != m->id || g.fn.n != m->fn.n || g.fn.p != m->fn.p ||
      g.payload != m->payload || g.payload_len != m->payload_len) {
    fprintf(stderr, "libactor: codec: the one-pass reader and the general "
                    "one disagree on a %zu-byte frame (kind %d)\n",
            len, m->kind);
    abort();
  }
}
#endif

int actor__msg_decode(struct actor__msg *m, const char *body, size_t len) {
  memset(m, 0, sizeof(*m));
  if (codec__decode_call(m, (const unsigned char *)body, len)) {
#ifdef ACTOR_CODEC_SELFCHECK
    codec__selfcheck(m, body, len);
#endif
    return 0;
  }
  return codec__decode_general(m, body, len);
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
