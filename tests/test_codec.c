/* Internals: the frame/message codec, the framer, the id map and the byte
 * buffer.  These see the private headers under src/. */
#define _GNU_SOURCE
#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "proto/codec.h"
#include "util/buf.h"
#include "util/idmap.h"

/* ------------------------------------------------------------------------ */
/* Tools                                                                    */
/* ------------------------------------------------------------------------ */

static struct actor__str str_of(const char *s) {
  struct actor__str r;
  r.p = s;
  r.n = strlen(s);
  return r;
}

static void assert_str_eq(struct actor__str got, const char *want) {
  size_t n = strlen(want);
  if (got.n != n || (n > 0 && memcmp(got.p, want, n) != 0))
    fail_msg("string field is '%.*s' (%zu bytes), expected '%s'", (int)got.n,
             got.p ? got.p : "", got.n, want);
}

static uint32_t be32_at(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) |
         ((uint32_t)u[2] << 8) | u[3];
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* Encode `m` alone into a fresh buffer, check the length prefix and return
 * the body and its length (pointing into `b`). */
static void encode_one(struct abuf *b, const struct actor__msg *m,
                       const char **body, size_t *len) {
  actor__buf_init(b);
  TH_OK(actor__msg_encode(b, m, ACTOR__DEFAULT_MAX_FRAME));
  assert_true(b->len > ACTOR__FRAME_HDR);
  assert_int_equal(be32_at(actor__buf_data(b)), b->len - ACTOR__FRAME_HDR);
  *body = actor__buf_data(b) + ACTOR__FRAME_HDR;
  *len = b->len - ACTOR__FRAME_HDR;
}

/* The payload must be a pointer into the frame body (zero copy). */
static void assert_payload_inside(const struct actor__msg *m, const char *body,
                                  size_t len) {
  assert_non_null(m->payload);
  assert_true(m->payload >= body);
  assert_true(m->payload + m->payload_len <= body + len);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

static void codec_roundtrip_every_kind(void **state) {
  static const char args[] = {(char)0x92, 0x01, (char)0xa1, 'x'}; /* [1,"x"] */
  static const char value[] = {(char)0xcd, 0x12, 0x34};  /* uint16 0x1234 */
  static const char item[] = {(char)0xa3, 'a', 'b', 'c'}; /* "abc" */
  struct actor__msg m, d;
  struct abuf b;
  const char *body;
  size_t len;
  int kind;
  (void)state;


  /* HELLO, twice: ordinary values and extremes of each field. */
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_HELLO;
  m.version = ACTOR_PROTOCOL_VERSION;
  m.pid = 123456;
  m.backend = str_of("subproc");
  m.name = str_of("worker-1");
  encode_one(&b, &m, &body, &len);
  TH_OK(actor__msg_decode(&d, body, len));
  assert_int_equal(d.kind, ACTOR__MSG_HELLO);
  assert_int_equal(d.id, 0);
  assert_int_equal(d.version, ACTOR_PROTOCOL_VERSION);
  assert_int_equal(d.pid, 123456);
  assert_str_eq(d.backend, "subproc");
  assert_str_eq(d.name, "worker-1");
  assert_null(d.payload);
  assert_int_equal(d.payload_len, 0);
  /* Strings point into the frame: nothing was copied. */
  assert_true(d.name.p > body && d.name.p + d.name.n <= body + len);
  actor__buf_fini(&b);

  m.version = UINT64_MAX;
  m.pid = -42;
  m.backend = str_of("");
  m.name = str_of("a name with spaces and \xc3\xa9");
  encode_one(&b, &m, &body, &len);
  TH_OK(actor__msg_decode(&d, body, len));
  assert_int_equal(d.kind, ACTOR__MSG_HELLO);
  assert_true(d.version == UINT64_MAX);
  assert_true(d.pid == -42);
  assert_str_eq(d.backend, "");
  assert_str_eq(d.name, "a name with spaces and \xc3\xa9");
  actor__buf_fini(&b);

  /* CALL */
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_CALL;
  m.id = UINT32_MAX;
  m.fn = str_of("compute_something");
  m.payload = args;
  m.payload_len = sizeof(args);
  encode_one(&b, &m, &body, &len);
  TH_OK(actor__msg_decode(&d, body, len));
  assert_int_equal(d.kind, ACTOR__MSG_CALL);
  assert_true(d.id == UINT32_MAX);
  assert_str_eq(d.fn, "compute_something");
  assert_int_equal(d.payload_len, sizeof(args));
  assert_memory_equal(d.payload, args, sizeof(args));
  assert_payload_inside(&d, body, len);
  actor__buf_fini(&b);

  /* RETURN */
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_RETURN;
  m.id = 7;
  m.payload = value;
  m.payload_len = sizeof(value);
  encode_one(&b, &m, &body, &len);
  TH_OK(actor__msg_decode(&d, body, len));
  assert_int_equal(d.kind, ACTOR__MSG_RETURN);
  assert_int_equal(d.id, 7);
  assert_int_equal(d.payload_len, sizeof(value));
  assert_memory_equal(d.payload, value, sizeof(value));
  assert_payload_inside(&d, body, len);
  actor__buf_fini(&b);

  /* ERROR */
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_ERROR;
  m.id = 65536;
  m.type = str_of("ValueError");
  m.message = str_of("bad value: 42");
  m.traceback = str_of("Traceback (most recent call last):\n  line 1\n");
  encode_one(&b, &m, &body, &len);
  TH_OK(actor__msg_decode(&d, body, len));
  assert_int_equal(d.kind, ACTOR__MSG_ERROR);
  assert_int_equal(d.id, 65536);
  assert_str_eq(d.type, "ValueError");
  assert_str_eq(d.message, "bad value: 42");
  assert_str_eq(d.traceback, "Traceback (most recent call last):\n  line 1\n");
  assert_null(d.payload);
  actor__buf_fini(&b);

  /* ITEM */
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_ITEM;
  m.id = 300;
  m.payload = item;
  m.payload_len = sizeof(item);
  encode_one(&b, &m, &body, &len);
  TH_OK(actor__msg_decode(&d, body, len));
  assert_int_equal(d.kind, ACTOR__MSG_ITEM);
  assert_int_equal(d.id, 300);
  assert_int_equal(d.payload_len, sizeof(item));
  assert_memory_equal(d.payload, item, sizeof(item));
  assert_payload_inside(&d, body, len);
  actor__buf_fini(&b);

  /* END, CANCEL, STOP: [kind, id] and nothing else. */
  for (kind = ACTOR__MSG_END; kind <= ACTOR__MSG_STOP; kind++) {
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    m.id = kind == ACTOR__MSG_STOP ? 0 : 1000u + (uint32_t)kind;
    encode_one(&b, &m, &body, &len);
    /* fixarray of 2, positive fixint kind, then the id. */
    assert_int_equal((unsigned char)body[0], 0x92);
    assert_int_equal((unsigned char)body[1], (unsigned)kind);
    TH_OK(actor__msg_decode(&d, body, len));
    assert_int_equal(d.kind, kind);
    assert_int_equal(d.id, m.id);
    assert_null(d.payload);
    assert_int_equal(d.payload_len, 0);
    actor__buf_fini(&b);
  }

  /* Several frames appended to one buffer follow each other exactly. */
  {
    struct actor__msg ms[3];
    size_t off = 0;
    int i;
    memset(ms, 0, sizeof(ms));
    ms[0].kind = ACTOR__MSG_RETURN;
    ms[0].id = 1;
    ms[0].payload = value;
    ms[0].payload_len = sizeof(value);
    ms[1].kind = ACTOR__MSG_END;
    ms[1].id = 2;
    ms[2].kind = ACTOR__MSG_CALL;
    ms[2].id = 3;
    ms[2].fn = str_of("f");
    actor__buf_init(&b);
    for (i = 0; i < 3; i++)
      TH_OK(actor__msg_encode(&b, &ms[i], ACTOR__DEFAULT_MAX_FRAME));
    for (i = 0; i < 3; i++) {
      uint32_t n = be32_at(actor__buf_data(&b) + off);
      assert_true(off + ACTOR__FRAME_HDR + n <= b.len);
      TH_OK(actor__msg_decode(&d, actor__buf_data(&b) + off + ACTOR__FRAME_HDR,
                              n));
      assert_int_equal(d.kind, ms[i].kind);
      assert_int_equal(d.id, ms[i].id);
      off += ACTOR__FRAME_HDR + n;
    }
    assert_int_equal(off, b.len);
    actor__buf_fini(&b);
  }

}

/* A nested payload: map with arrays, strings, bin, floats, negative ints
 * and a big uint64. */
static void pack_nested(msgpack_sbuffer *sb) {
  msgpack_packer pk;
  static const char blob[] = {0, 1, 2, (char)0xc1, (char)0xff, 0x7f};
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 5);
  msgpack_pack_str(&pk, 4);
  msgpack_pack_str_body(&pk, "ints", 4);
  msgpack_pack_array(&pk, 6);
  msgpack_pack_int64(&pk, -1);
  msgpack_pack_int64(&pk, -129);
  msgpack_pack_int64(&pk, INT64_MIN);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  msgpack_pack_uint64(&pk, 0x100000000ull);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_str(&pk, 6);
  msgpack_pack_str_body(&pk, "floats", 6);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_float(&pk, 1.5f);
  msgpack_pack_double(&pk, -2.25e300);
  msgpack_pack_double(&pk, 0.1);
  msgpack_pack_str(&pk, 3);
  msgpack_pack_str_body(&pk, "bin", 3);
  msgpack_pack_bin(&pk, sizeof(blob));
  msgpack_pack_bin_body(&pk, blob, sizeof(blob));
  msgpack_pack_str(&pk, 6);
  msgpack_pack_str_body(&pk, "nested", 6);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_true(&pk);
  msgpack_pack_nil(&pk);
  msgpack_pack_str(&pk, 300); /* str16 */
  {
    char s[300];
    memset(s, 'z', sizeof(s));
    msgpack_pack_str_body(&pk, s, sizeof(s));
  }
  msgpack_pack_int(&pk, -7); /* an int key */
  msgpack_pack_false(&pk);
}

static void codec_payload_passed_through_byte_for_byte(void **state) {
  static const int kinds[] = {ACTOR__MSG_CALL, ACTOR__MSG_RETURN,
                              ACTOR__MSG_ITEM};
  msgpack_sbuffer sb;
  struct actor__msg m, d;
  struct abuf b;
  const char *body;
  size_t len, i;
  (void)state;

  pack_nested(&sb);
  TH_OK(actor__msgpack_check(sb.data, sb.size));
  for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    memset(&m, 0, sizeof(m));
    m.kind = kinds[i];
    m.id = 99;
    m.fn = str_of("fn");
    m.payload = sb.data;
    m.payload_len = sb.size;
    encode_one(&b, &m, &body, &len);
    /* The payload is appended as-is: the frame ends with its bytes. */
    assert_memory_equal(body + len - sb.size, sb.data, sb.size);
    TH_OK(actor__msg_decode(&d, body, len));
    assert_int_equal(d.kind, kinds[i]);
    assert_int_equal(d.payload_len, sb.size);
    assert_memory_equal(d.payload, sb.data, sb.size);
    /* Zero copy: the payload is the tail of the frame itself. */
    assert_ptr_equal(d.payload, body + len - sb.size);
    assert_payload_inside(&d, body, len);
    actor__buf_fini(&b);
  }
  msgpack_sbuffer_destroy(&sb);
}

static void codec_nil_payload_when_empty(void **state) {
  static const int kinds[] = {ACTOR__MSG_CALL, ACTOR__MSG_RETURN,
                              ACTOR__MSG_ITEM};
  static const char some[] = {0x01};
  struct actor__msg m, d;
  struct abuf b;
  const char *body;
  size_t len, i;
  (void)state;

  for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    /* NULL/0, and a non-NULL pointer with length 0: both mean nil. */
    int variant;
    for (variant = 0; variant < 2; variant++) {
      memset(&m, 0, sizeof(m));
      m.kind = kinds[i];
      m.id = 5;
      m.fn = str_of("f");
      m.payload = variant ? some : NULL;
      m.payload_len = 0;
      encode_one(&b, &m, &body, &len);
      assert_int_equal((unsigned char)body[len - 1], 0xc0);
      TH_OK(actor__msg_decode(&d, body, len));
      assert_int_equal(d.payload_len, 1);
      assert_int_equal((unsigned char)d.payload[0], 0xc0);
      assert_ptr_equal(d.payload, body + len - 1);
      actor__buf_fini(&b);
    }
  }
}

static void codec_refuses_oversized_frame_at_encode(void **state) {
  char payload[200];
  struct actor__msg m, first;
  struct abuf b;
  size_t before, body;
  char *copy;
  (void)state;

  /* bin8 of 198 bytes: one msgpack value of 200 bytes. */
  memset(payload, 0xab, sizeof(payload));
  payload[0] = (char)0xc4;
  payload[1] = (char)198;

  actor__buf_init(&b);
  /* Something already queued must stay untouched. */
  memset(&first, 0, sizeof(first));
  first.kind = ACTOR__MSG_END;
  first.id = 1;
  TH_OK(actor__msg_encode(&b, &first, 64));
  before = b.len;
  copy = malloc(before);
  memcpy(copy, actor__buf_data(&b), before);

  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_RETURN;
  m.id = 2;
  m.payload = payload;
  m.payload_len = sizeof(payload);
  TH_ERR(actor__msg_encode(&b, &m, 64), ACTOR_E2BIG);
  assert_int_equal(b.len, before);
  assert_memory_equal(actor__buf_data(&b), copy, before);

  /* The limit is on the body: exactly max_frame passes, one less fails.
   * RETURN body = fixarray(1) + kind(1) + id(1) + payload. */
  body = 3 + sizeof(payload);
  TH_ERR(actor__msg_encode(&b, &m, body - 1), ACTOR_E2BIG);
  assert_int_equal(b.len, before);
  TH_OK(actor__msg_encode(&b, &m, body));
  assert_int_equal(b.len, before + ACTOR__FRAME_HDR + body);
  assert_int_equal(be32_at(actor__buf_data(&b) + before), body);
  assert_memory_equal(actor__buf_data(&b), copy, before);

  free(copy);
  actor__buf_fini(&b);
}

/* ------------------------------------------------------------------------ */
/* Framer                                                                   */
/* ------------------------------------------------------------------------ */

struct rec {
  int frames;
  int oversize;
  char *bodies[16];
  size_t lens[16];
  int ov_kind;
  uint32_t ov_id;
  uint64_t ov_len;
  int ov_at_frame; /* frames seen when oversize fired */
  int stop_after;  /* return 1 from the frame callback after this many */
};

static int rec_frame(void *arg, const char *body, size_t len) {
  struct rec *r = arg;
  if (r->frames < 16) {
    r->bodies[r->frames] = malloc(len ? len : 1);
    memcpy(r->bodies[r->frames], body, len);
    r->lens[r->frames] = len;
  }
  r->frames++;
  return r->stop_after > 0 && r->frames == r->stop_after;
}

static int rec_oversize(void *arg, int kind, uint32_t id, uint64_t len) {
  struct rec *r = arg;
  r->oversize++;
  r->ov_kind = kind;
  r->ov_id = id;
  r->ov_len = len;
  r->ov_at_frame = r->frames;
  return 0;
}

static const struct actor__framer_cbs rec_cbs = {rec_frame, rec_oversize};

static void rec_init(struct rec *r) {
  memset(r, 0, sizeof(*r));
  r->ov_kind = -2;
}

static void rec_fini(struct rec *r) {
  int i;
  for (i = 0; i < 16 && i < r->frames; i++)
    free(r->bodies[i]);
}

static void framer_init(struct actor__framer *f, size_t max_frame) {
  memset(f, 0, sizeof(*f));
  f->max_frame = max_frame;
}

static void codec_framer_reassembles_byte_by_byte(void **state) {
  enum { NF = 6 };
  struct actor__msg ms[NF];
  size_t starts[NF + 1];
  char *big;
  struct abuf wire, in;
  struct actor__framer f;
  struct rec r;
  struct actor__msg d;
  size_t i;
  int k;
  (void)state;

  /* A bin32 value of 10000 bytes: bigger than the buffer's first 4 KiB. */
  big = malloc(10005);
  big[0] = (char)0xc6;
  put_be32((unsigned char *)big + 1, 10000);
  for (i = 0; i < 10000; i++)
    big[5 + i] = (char)(i * 7);

  memset(ms, 0, sizeof(ms));
  ms[0].kind = ACTOR__MSG_HELLO;
  ms[0].version = 1;
  ms[0].pid = 4242;
  ms[0].backend = str_of("subproc");
  ms[0].name = str_of("bytewise");
  ms[1].kind = ACTOR__MSG_RETURN;
  ms[1].id = 1;
  ms[1].payload = big;
  ms[1].payload_len = 10005;
  ms[2].kind = ACTOR__MSG_END;
  ms[2].id = 2;
  ms[3].kind = ACTOR__MSG_ERROR;
  ms[3].id = 3;
  ms[3].type = str_of("E");
  ms[3].message = str_of("m");
  ms[3].traceback = str_of("");
  ms[4].kind = ACTOR__MSG_ITEM;
  ms[4].id = 4;
  ms[5].kind = ACTOR__MSG_STOP;

  actor__buf_init(&wire);
  for (k = 0; k < NF; k++) {
    starts[k] = wire.len;
    TH_OK(actor__msg_encode(&wire, &ms[k], ACTOR__DEFAULT_MAX_FRAME));
  }
  starts[NF] = wire.len;

  framer_init(&f, 64 * 1024);
  rec_init(&r);
  actor__buf_init(&in);
  for (i = 0; i < wire.len; i++) {
    TH_OK(actor__buf_append(&in, actor__buf_data(&wire) + i, 1));
    TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
    /* A frame is delivered exactly when its last byte arrives. */
    for (k = 0; k < NF; k++)
      if (i + 1 == starts[k + 1])
        assert_int_equal(r.frames, k + 1);
  }
  assert_int_equal(r.frames, NF);
  assert_int_equal(r.oversize, 0);
  assert_int_equal(in.len, 0);

  for (k = 0; k < NF; k++) {
    size_t n = starts[k + 1] - starts[k] - ACTOR__FRAME_HDR;
    assert_int_equal(r.lens[k], n);
    assert_memory_equal(r.bodies[k],
                        actor__buf_data(&wire) + starts[k] + ACTOR__FRAME_HDR,
                        n);
    TH_OK(actor__msg_decode(&d, r.bodies[k], r.lens[k]));
    assert_int_equal(d.kind, ms[k].kind);
    assert_int_equal(d.id, ms[k].id);
  }
  assert_int_equal(r.lens[1] - 3, 10005);
  assert_memory_equal(r.bodies[1] + 3, big, 10005);

  /* The same stream in one piece gives the same frames. */
  rec_fini(&r);
  rec_init(&r);
  TH_OK(actor__buf_append(&in, actor__buf_data(&wire), wire.len));
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
  assert_int_equal(r.frames, NF);
  for (k = 0; k < NF; k++)
    assert_int_equal(r.lens[k], starts[k + 1] - starts[k] - ACTOR__FRAME_HDR);

  rec_fini(&r);
  actor__buf_fini(&in);
  actor__buf_fini(&wire);
  free(big);
}

/* A callback that returns non-zero stops delivery; the rest stays queued
 * and comes out on the next feed. */
static void codec_framer_stops_when_callback_says_so(void **state) {
  struct actor__msg m;
  struct abuf in;
  struct actor__framer f;
  struct rec r;
  uint32_t id;
  (void)state;

  actor__buf_init(&in);
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_END;
  for (id = 1; id <= 3; id++) {
    m.id = id;
    TH_OK(actor__msg_encode(&in, &m, 1024));
  }
  framer_init(&f, 1024);
  rec_init(&r);
  r.stop_after = 1;
  assert_int_equal(actor__framer_feed(&f, &in, &rec_cbs, &r), 1);
  assert_int_equal(r.frames, 1);
  assert_true(in.len > 0);
  r.stop_after = 0;
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
  assert_int_equal(r.frames, 3);
  assert_int_equal(in.len, 0);
  rec_fini(&r);
  actor__buf_fini(&in);
}

static void codec_framer_refuses_oversize_before_allocating(void **state) {
  const size_t max_frame = 1u << 20;            /* 1 MiB */
  const uint32_t announced = 5u << 20;          /* 5 MiB */
  const size_t chunk = 64 * 1024;
  const size_t cap_limit = 1u << 20;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  unsigned char hdr[4];
  char *filler;
  size_t fed, n, maxcap = 0;
  struct abuf in, next;
  struct actor__framer f;
  struct rec r;
  struct actor__msg m;
  static const char val[] = {0x2a};
  (void)state;

  /* The first 64 bytes of a real RETURN body for call 77 whose value is a
   * bin32 making the whole body exactly 5 MiB. */
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, ACTOR__MSG_RETURN);
  msgpack_pack_uint32(&pk, 77);
  msgpack_pack_bin(&pk, announced - 8); /* 1 + 1 + 1 + 5 bytes of headers */
  assert_int_equal(sb.size, 8);
  filler = malloc(chunk);
  memset(filler, 0x5a, chunk);
  msgpack_pack_bin_body(&pk, filler, 64 - sb.size);
  assert_int_equal(sb.size, 64);

  /* 0x7fffffff bytes announced: named (RETURN, call 77) from the first 64
   * bytes, nothing allocated for the rest. */
  framer_init(&f, max_frame);
  rec_init(&r);
  actor__buf_init(&in);
  put_be32(hdr, 0x7fffffffu);
  TH_OK(actor__buf_append(&in, hdr, 4));
  TH_OK(actor__buf_append(&in, sb.data, sb.size));
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_kind, ACTOR__MSG_RETURN);
  assert_int_equal(r.ov_id, 77);
  assert_int_equal(r.ov_len, 0x7fffffff);
  assert_true(in.cap < cap_limit);
  actor__buf_fini(&in);

  /* 5 MiB announced, fed entirely. */
  framer_init(&f, max_frame);
  rec_init(&r);
  actor__buf_init(&in);
  put_be32(hdr, announced);
  /* The header alone: nothing happens, nothing is reserved for 5 MiB. */
  TH_OK(actor__buf_append(&in, hdr, 4));
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
  assert_int_equal(r.oversize, 0);
  assert_true(in.cap < cap_limit);
  /* With the first bytes of the body the frame is named and refused at
   * once (codec.h: "reported at once; its bytes are then skipped as they
   * arrive"). */
  TH_OK(actor__buf_append(&in, sb.data, sb.size));
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_kind, ACTOR__MSG_RETURN);
  assert_int_equal(r.ov_id, 77);
  assert_int_equal(r.ov_len, announced);
  assert_int_equal(r.frames, 0);
  assert_true(in.cap < cap_limit);
  assert_int_equal(in.len, 0);
  fed = sb.size;

  /* The rest of the body, except its last byte, in 64 KiB chunks: skipped
   * as it arrives, never buffered, never reported again, and nothing is
   * taken for a frame. */
  while (fed < announced - 1) {
    n = announced - 1 - fed;
    if (n > chunk)
      n = chunk;
    TH_OK(actor__buf_append(&in, filler, n));
    if (in.cap > maxcap)
      maxcap = in.cap;
    TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
    fed += n;
    assert_int_equal(r.oversize, 1);
    assert_int_equal(r.frames, 0);
    assert_int_equal(in.len, 0);
    assert_true(f.skip == (uint64_t)announced - fed);
  }
  assert_true(maxcap <= cap_limit);
  assert_true(maxcap <= 2 * chunk);
  assert_int_equal(f.skip, 1);

  /* The last byte together with a normal frame that follows: the frame is
   * delivered intact, and the oversized one is not reported a second
   * time. */
  actor__buf_init(&next);
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_RETURN;
  m.id = 78;
  m.payload = val;
  m.payload_len = sizeof(val);
  TH_OK(actor__buf_append(&next, filler, 1));
  TH_OK(actor__msg_encode(&next, &m, max_frame));
  TH_OK(actor__buf_append(&in, actor__buf_data(&next), next.len));
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_at_frame, 0); /* it was reported before the frame */
  assert_int_equal(r.frames, 1);
  assert_int_equal(r.lens[0], next.len - 1 - ACTOR__FRAME_HDR);
  assert_memory_equal(r.bodies[0], actor__buf_data(&next) + 1 + ACTOR__FRAME_HDR,
                      r.lens[0]);
  assert_int_equal(in.len, 0);
  assert_int_equal(f.skip, 0);

  rec_fini(&r);
  actor__buf_fini(&next);
  actor__buf_fini(&in);
  msgpack_sbuffer_destroy(&sb);
  free(filler);
}

/* Feed a frame announcing `announced` bytes whose body starts with
 * `start` (the rest zeros), all in one go, into a framer with `max_frame`;
 * the callbacks record into `r`. */
static void feed_oversize(const unsigned char *start, size_t start_len,
                          uint32_t announced, size_t max_frame,
                          struct rec *r) {
  struct abuf in;
  struct actor__framer f;
  unsigned char hdr[4];
  char *rest;

  framer_init(&f, max_frame);
  actor__buf_init(&in);
  put_be32(hdr, announced);
  TH_OK(actor__buf_append(&in, hdr, 4));
  TH_OK(actor__buf_append(&in, start, start_len));
  rest = calloc(1, announced - start_len);
  TH_OK(actor__buf_append(&in, rest, announced - start_len));
  free(rest);
  TH_OK(actor__framer_feed(&f, &in, &rec_cbs, r));
  assert_int_equal(in.len, 0);
  actor__buf_fini(&in);
}

static void codec_oversize_with_garbage_header_is_unattributed(void **state) {
  unsigned char junk[64];
  struct rec r;
  /* [ "x", 5, ...]: an array, but the kind is not an int. */
  static const unsigned char str_kind[] = {0x93, 0xa1, 'x', 0x05, 0xc0};
  /* [300, 5, ...]: a kind too large to be one. */
  static const unsigned char big_kind[] = {0x93, 0xcd, 0x01, 0x2c, 0x05};
  /* [2, -1, ...]: a negative id. */
  static const unsigned char neg_id[] = {0x93, 0x02, 0xff, 0xc0};
  (void)state;

  memset(junk, 0xc1, sizeof(junk));
  /* 0x7fffffff bytes announced, garbage where kind and id would be: the
   * report comes with the first bytes, long before the body could pass. */
  {
    struct abuf in;
    struct actor__framer f;
    unsigned char hdr[4];
    framer_init(&f, 1u << 20);
    actor__buf_init(&in);
    rec_init(&r);
    put_be32(hdr, 0x7fffffffu);
    TH_OK(actor__buf_append(&in, hdr, 4));
    TH_OK(actor__buf_append(&in, junk, sizeof(junk)));
    TH_OK(actor__framer_feed(&f, &in, &rec_cbs, &r));
    assert_int_equal(r.oversize, 1);
    assert_int_equal(r.ov_kind, -1);
    assert_int_equal(r.ov_len, 0x7fffffff);
    assert_int_equal(r.frames, 0);
    assert_int_equal(in.len, 0);
    assert_true(in.cap < (1u << 20));
    actor__buf_fini(&in);
  }

  rec_init(&r);
  feed_oversize(junk, sizeof(junk), 4096, 1024, &r);
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_kind, -1);
  assert_int_equal(r.ov_len, 4096);
  assert_int_equal(r.frames, 0);

  rec_init(&r);
  feed_oversize(str_kind, sizeof(str_kind), 2000, 1024, &r);
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_kind, -1);
  assert_int_equal(r.ov_len, 2000);

  rec_init(&r);
  feed_oversize(big_kind, sizeof(big_kind), 2000, 1024, &r);
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_kind, -1);

  rec_init(&r);
  feed_oversize(neg_id, sizeof(neg_id), 2000, 1024, &r);
  assert_int_equal(r.oversize, 1);
  assert_int_equal(r.ov_kind, -1);
}

/* ------------------------------------------------------------------------ */
/* Malformed input                                                          */
/* ------------------------------------------------------------------------ */

struct bad_case {
  const char *what;
  unsigned char bytes[24];
  size_t len;
};

static void codec_malformed_bodies_rejected(void **state) {
  static const struct bad_case cases[] = {
      {"empty body", {0}, 0},
      {"not an array (a bare int)", {0x05}, 1},
      {"not an array (a map)", {0x81, 0x01, 0x02}, 3},
      {"empty array", {0x90}, 1},
      {"array of 1", {0x91, 0x02}, 2},
      {"array16 header cut short", {0xdc, 0x00}, 2},
      {"kind not an int (a str)", {0x93, 0xa1, 'x', 0x01, 0xc0}, 5},
      {"kind negative", {0x92, 0xff, 0x01}, 3},
      {"id negative", {0x93, 0x02, 0xff, 0xc0}, 4},
      {"id > UINT32_MAX",
       {0x93, 0x02, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0},
       12},
      {"id a str", {0x92, 0x05, 0xa1, '1'}, 4},
      {"RETURN for call id 0", {0x93, 0x02, 0x00, 0xc0}, 4},
      {"CANCEL for call id 0", {0x92, 0x06, 0x00}, 3},
      {"STOP with a nonzero id", {0x92, 0x07, 0x05}, 3},
      {"CALL with fn not a string", {0x94, 0x01, 0x05, 0x2a, 0xc0}, 5},
      {"CALL without args", {0x93, 0x01, 0x05, 0xa1, 'f'}, 5},
      {"HELLO missing fields", {0x94, 0x00, 0x00, 0x01, 0x05}, 5},
      {"HELLO version negative",
       {0x96, 0x00, 0x00, 0xff, 0x05, 0xa1, 's', 0xa1, 'n'},
       9},
      {"HELLO name an int", {0x96, 0x00, 0x00, 0x01, 0x05, 0xa1, 's', 0x07},
       8},
      {"ERROR missing traceback", {0x94, 0x03, 0x05, 0xa1, 'T', 0xa1, 'm'}, 7},
      {"ERROR type an array", {0x95, 0x03, 0x05, 0x90, 0xa1, 'm', 0xa1, 't'},
       8},
      {"RETURN without value", {0x92, 0x02, 0x05}, 3},
      {"truncated payload (bin8 of 10, 3 given)",
       {0x93, 0x02, 0x05, 0xc4, 0x0a, 1, 2, 3},
       8},
      {"truncated payload (array of 3, 1 given)",
       {0x93, 0x04, 0x05, 0x93, 0x01},
       5},
      {"array says 3, body has 2", {0x93, 0x02, 0x05}, 3},
      {"invalid msgpack byte 0xc1 as the body", {0xc1}, 1},
      {"invalid msgpack byte 0xc1 as the kind", {0x92, 0xc1, 0x01}, 3},
      {"invalid msgpack byte 0xc1 as the payload", {0x93, 0x02, 0x05, 0xc1},
       4},
  };
  struct actor__msg m;
  size_t i;
  int r;
  (void)state;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    r = actor__msg_decode(&m, (const char *)cases[i].bytes, cases[i].len);
    if (r != ACTOR_EBADFRAME)
      fail_msg("%s: decode returned %s, expected ACTOR_EBADFRAME",
               cases[i].what, r == 0 ? "0" : actor_err_name(r));
  }

  /* An unknown kind is told apart, with the kind and id still set. */
  {
    static const unsigned char k99[] = {0x92, 0x63, 0xcd, 0x30, 0x39};
    static const unsigned char k8[] = {0x93, 0x08, 0x01, 0xc0};
    TH_ERR(actor__msg_decode(&m, (const char *)k99, sizeof(k99)),
           ACTOR_EBADKIND);
    assert_int_equal(m.kind, 99);
    assert_int_equal(m.id, 12345);
    TH_ERR(actor__msg_decode(&m, (const char *)k8, sizeof(k8)),
           ACTOR_EBADKIND);
    assert_int_equal(m.kind, ACTOR__MSG_KINDS);
    assert_int_equal(m.id, 1);
  }
}

static void codec_extra_trailing_elements_are_ignored(void **state) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  struct actor__msg m;
  static const char want[] = {(char)0x92, 0x01, 0x02}; /* [1, 2] */
  (void)state;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 5);
  msgpack_pack_int(&pk, ACTOR__MSG_RETURN);
  msgpack_pack_int(&pk, 9);
  msgpack_pack_array(&pk, 2); /* element 2: the payload */
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 2);
  msgpack_pack_str(&pk, 5);
  msgpack_pack_str_body(&pk, "extra", 5);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_nil(&pk);
  TH_OK(actor__msg_decode(&m, sb.data, sb.size));
  assert_int_equal(m.kind, ACTOR__MSG_RETURN);
  assert_int_equal(m.id, 9);
  assert_int_equal(m.payload_len, sizeof(want));
  assert_memory_equal(m.payload, want, sizeof(want));
  assert_ptr_equal(m.payload, sb.data + 3);
  msgpack_sbuffer_clear(&sb);

  /* A HELLO and an END from a later protocol version, with extras. */
  msgpack_pack_array(&pk, 7);
  msgpack_pack_int(&pk, ACTOR__MSG_HELLO);
  msgpack_pack_int(&pk, 0);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_int(&pk, 77);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, "b", 1);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, "n", 1);
  msgpack_pack_true(&pk);
  TH_OK(actor__msg_decode(&m, sb.data, sb.size));
  assert_int_equal(m.pid, 77);
  assert_str_eq(m.name, "n");
  msgpack_sbuffer_clear(&sb);

  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, ACTOR__MSG_END);
  msgpack_pack_int(&pk, 4);
  msgpack_pack_int(&pk, 1000);
  TH_OK(actor__msg_decode(&m, sb.data, sb.size));
  assert_int_equal(m.kind, ACTOR__MSG_END);
  assert_int_equal(m.id, 4);
  assert_null(m.payload);

  msgpack_sbuffer_destroy(&sb);
}

static void codec_msgpack_check(void **state) {
  msgpack_sbuffer sb;
  char *two;
  size_t k;
  (void)state;

  pack_nested(&sb);
  TH_OK(actor__msgpack_check(sb.data, sb.size));
  TH_OK(actor__msgpack_check("\xc0", 1)); /* nil */
  TH_OK(actor__msgpack_check("\x90", 1)); /* [] */

  /* Two values concatenated. */
  two = malloc(sb.size * 2);
  memcpy(two, sb.data, sb.size);
  memcpy(two + sb.size, sb.data, sb.size);
  TH_ERR(actor__msgpack_check(two, sb.size * 2), ACTOR_EBADFRAME);
  TH_ERR(actor__msgpack_check("\x01\x02", 2), ACTOR_EBADFRAME);
  /* One value followed by a single stray byte. */
  memcpy(two, sb.data, sb.size);
  two[sb.size] = (char)0xc0;
  TH_ERR(actor__msgpack_check(two, sb.size + 1), ACTOR_EBADFRAME);
  free(two);

  /* Every proper prefix of the nested value is a truncated value. */
  for (k = 1; k < sb.size; k++) {
    if (actor__msgpack_check(sb.data, k) != ACTOR_EBADFRAME)
      fail_msg("prefix of %zu/%zu bytes accepted", k, sb.size);
  }
  /* Nesting as deep as msgpack-c itself unpacks (32 levels) is fine. */
  {
    char deep[33];
    memset(deep, (char)0x91, 32); /* [[[...[1]...]]] */
    deep[32] = 0x01;
    TH_OK(actor__msgpack_check(deep, sizeof(deep)));
    TH_ERR(actor__msgpack_check(deep, sizeof(deep) - 1),
           ACTOR_EBADFRAME);
  }
  /* Empty input, and an invalid byte. */
  TH_ERR(actor__msgpack_check("", 0), ACTOR_EBADFRAME);
  TH_ERR(actor__msgpack_check(sb.data, 0), ACTOR_EBADFRAME);
  TH_ERR(actor__msgpack_check("\xc1", 1), ACTOR_EBADFRAME);

  msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------ */
/* idmap and abuf                                                           */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  /* xorshift64*: deterministic, so a failure reproduces. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static void idmap_put_get_del_under_churn(void **state) {
  enum { KEYS = 5000, OPS = 100000 };
  static void *ref[KEYS + 1];
  struct idmap m;
  size_t count = 0, i;
  uint32_t key;
  void *v, *got;
  int op;
  (void)state;

  memset(ref, 0, sizeof(ref));
  actor__idmap_init(&m);
  assert_null(actor__idmap_any(&m));
  assert_null(actor__idmap_get(&m, 1));
  assert_null(actor__idmap_del(&m, 1));
  rng_state = 0x9e3779b97f4a7c15ull;

  for (op = 0; op < OPS; op++) {
    key = (uint32_t)(rng() % KEYS) + 1;
    switch (rng() % 3) {
    case 0: /* put (insert or replace) */
    case 1:
      v = (void *)(uintptr_t)(((uint64_t)op << 16) | key);
      TH_OK(actor__idmap_put(&m, key, v));
      if (ref[key] == NULL)
        count++;
      ref[key] = v;
      break;
    default: /* del, present or not */
      got = actor__idmap_del(&m, key);
      if (got != ref[key])
        fail_msg("op %d: del(%u) returned %p, expected %p", op, key, got,
                 ref[key]);
      if (ref[key] != NULL)
        count--;
      ref[key] = NULL;
      break;
    }
    got = actor__idmap_get(&m, key);
    if (got != ref[key])
      fail_msg("op %d: get(%u) returned %p, expected %p", op, key, got,
               ref[key]);
    if (m.count != count)
      fail_msg("op %d: count %zu, expected %zu", op, m.count, count);
    if (count > 0) {
      /* any() returns one of the values held. */
      got = actor__idmap_any(&m);
      assert_non_null(got);
      assert_ptr_equal(actor__idmap_get(&m, (uint32_t)((uintptr_t)got & 0xffff)),
                       got);
    }
    /* Now and then, every key: deletions must not hide other keys. */
    if (op % 5000 == 4999)
      for (i = 1; i <= KEYS; i++)
        if (actor__idmap_get(&m, (uint32_t)i) != ref[i])
          fail_msg("op %d: full scan: get(%zu) wrong", op, i);
  }
  assert_null(actor__idmap_get(&m, 0));
  assert_null(actor__idmap_get(&m, KEYS + 1));

  /* Delete everything. */
  for (i = 1; i <= KEYS; i++) {
    got = actor__idmap_del(&m, (uint32_t)i);
    assert_ptr_equal(got, ref[i]);
    ref[i] = NULL;
  }
  assert_int_equal(m.count, 0);
  assert_null(actor__idmap_any(&m));
  for (i = 1; i <= KEYS; i++)
    assert_null(actor__idmap_get(&m, (uint32_t)i));

  /* Keys that all hash to the last slot of a 16-slot table: their probe
   * run wraps around to slot 0, and deleting from the middle of it must
   * shift the others back across the wrap (same hash as idmap.c). */
  {
    uint32_t same[10], k2;
    size_t ns = 0, round;
    for (k2 = 1; ns < 10; k2++)
      if ((((k2 * 2654435761u) ^ (k2 >> 16)) & 15u) == 15u)
        same[ns++] = k2;
    for (round = 0; round < 10; round++) {
      struct idmap w;
      size_t j, del = round;
      actor__idmap_init(&w);
      for (j = 0; j < 10; j++)
        TH_OK(actor__idmap_put(&w, same[j], (void *)(uintptr_t)(j + 1)));
      assert_int_equal(w.mask, 15); /* still 16 slots: the run wraps */
      /* Delete one from the run, then check every other is still found. */
      assert_ptr_equal(actor__idmap_del(&w, same[del]),
                       (void *)(uintptr_t)(del + 1));
      assert_null(actor__idmap_get(&w, same[del]));
      for (j = 0; j < 10; j++)
        if (j != del)
          assert_ptr_equal(actor__idmap_get(&w, same[j]),
                           (void *)(uintptr_t)(j + 1));
      /* Then the rest, in a rotating order. */
      for (j = 1; j < 10; j++) {
        size_t x = (del + j * 3) % 10, y;
        if (x == del || actor__idmap_get(&w, same[x]) == NULL)
          continue;
        assert_ptr_equal(actor__idmap_del(&w, same[x]),
                         (void *)(uintptr_t)(x + 1));
        for (y = 0; y < 10; y++)
          if (actor__idmap_get(&w, same[y]) != NULL)
            assert_ptr_equal(actor__idmap_get(&w, same[y]),
                             (void *)(uintptr_t)(y + 1));
      }
      for (j = 0; j < 10; j++)
        actor__idmap_del(&w, same[j]);
      assert_int_equal(w.count, 0);
      assert_null(actor__idmap_any(&w));
      actor__idmap_fini(&w);
    }
  }

  /* Draining with any() as the runtime does. */
  for (i = 1; i <= 100; i++)
    TH_OK(actor__idmap_put(&m, (uint32_t)(i * 7919), (void *)(uintptr_t)i));
  for (i = 0; (got = actor__idmap_any(&m)) != NULL; i++) {
    uint32_t k = (uint32_t)((uintptr_t)got * 7919);
    assert_ptr_equal(actor__idmap_del(&m, k), got);
  }
  assert_int_equal(i, 100);
  assert_int_equal(m.count, 0);
  actor__idmap_fini(&m);
}

static void buf_reserve_compacts_and_grows(void **state) {
  struct abuf b;
  char pat[3000];
  size_t i, cap;
  (void)state;

  for (i = 0; i < sizeof(pat); i++)
    pat[i] = (char)(i * 13 + 1);
  actor__buf_init(&b);
  TH_OK(actor__buf_append(&b, pat, sizeof(pat)));
  cap = b.cap;
  assert_true(cap >= sizeof(pat));
  actor__buf_consume(&b, 2500);
  assert_int_equal(b.len, 500);
  assert_memory_equal(actor__buf_data(&b), pat + 2500, 500);

  /* Room enough at the tail: nothing moves. */
  TH_OK(actor__buf_reserve(&b, actor__buf_room(&b)));
  assert_int_equal(b.off, 2500);

  /* More than the tail but less than the free space: compaction, no
   * growth, the unconsumed bytes preserved at the front. */
  TH_OK(actor__buf_reserve(&b, cap - 500));
  assert_int_equal(b.off, 0);
  assert_int_equal(b.cap, cap);
  assert_int_equal(b.len, 500);
  assert_memory_equal(actor__buf_data(&b), pat + 2500, 500);
  assert_true(actor__buf_room(&b) >= cap - 500);

  /* More than the capacity: growth, data preserved. */
  actor__buf_consume(&b, 100);
  TH_OK(actor__buf_reserve(&b, 3 * cap));
  assert_true(b.cap >= 400 + 3 * cap);
  assert_int_equal(b.len, 400);
  assert_memory_equal(actor__buf_data(&b), pat + 2600, 400);
  assert_true(actor__buf_room(&b) >= 3 * cap);
  TH_OK(actor__buf_append(&b, pat, 10));
  assert_memory_equal(actor__buf_data(&b) + 400, pat, 10);
  assert_ptr_equal(actor__buf_tail(&b), actor__buf_data(&b) + 410);

  /* Consuming more than held empties it. */
  actor__buf_consume(&b, 1u << 30);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.off, 0);
  /* Trim gives memory back only when empty. */
  actor__buf_trim(&b, 4096);
  assert_int_equal(b.cap, 4096);
  TH_OK(actor__buf_append(&b, pat, 10));
  actor__buf_trim(&b, 1024);
  assert_int_equal(b.cap, 4096);
  assert_memory_equal(actor__buf_data(&b), pat, 10);
  /* An impossible reservation fails cleanly and keeps the data. */
  TH_ERR(actor__buf_reserve(&b, (size_t)-1), -ENOMEM);
  TH_ERR(actor__buf_reserve(&b, (size_t)-1 - 5), -ENOMEM);
  assert_int_equal(b.len, 10);
  assert_int_equal(b.cap, 4096);
  assert_memory_equal(actor__buf_data(&b), pat, 10);
  /* Reserving 0 and appending 0 bytes are no-ops. */
  TH_OK(actor__buf_reserve(&b, 0));
  TH_OK(actor__buf_append(&b, NULL, 0));
  assert_int_equal(b.len, 10);
  actor__buf_fini(&b);
  assert_null(b.base);
  assert_int_equal(b.cap, 0);
}

/* Counts and lengths that announce more than the bytes present are refused
 * before msgpack-c sees them (it would allocate for the announced count:
 * ~100 GB for 2^32 elements). */
static void codec_announced_counts_beyond_the_data_are_refused(void **state) {
  static const unsigned char arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
  static const unsigned char map32[] = {0xdf, 0x10, 0x00, 0x00, 0x00, 0x01};
  static const unsigned char bin32[] = {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00};
  static const unsigned char ok[] = {0x92, 0x01, 0x91, 0xc0};
  static const unsigned char two[] = {0x01, 0x02};
  /* RETURN id 1 whose value announces 2^28 elements */
  static const unsigned char ret[] = {0x93, 0x02, 0x01, 0xdd, 0x10, 0, 0, 0};
  struct actor__msg m;

  assert_int_equal(actor__msgpack_sane((const char *)arr32, sizeof(arr32)), -1);
  assert_int_equal(actor__msgpack_sane((const char *)map32, sizeof(map32)), -1);
  assert_int_equal(actor__msgpack_sane((const char *)bin32, sizeof(bin32)), -1);
  assert_int_equal(actor__msgpack_sane((const char *)ok, sizeof(ok)), 1);
  assert_int_equal(actor__msgpack_sane((const char *)two, sizeof(two)), 2);
  TH_ERR(actor__msgpack_check((const char *)arr32, sizeof(arr32)),
         ACTOR_EBADFRAME);
  TH_ERR(actor__msg_decode(&m, (const char *)ret, sizeof(ret)),
         ACTOR_EBADFRAME);
}


/* Issue 7 item 6: the payload's end is found without building objects, to
 * a depth of 512 (msgpack-c's own unpack stops at 32); deeper is
 * ACTOR_EDEPTH with the call still named, even 10,000 deep; a deep
 * envelope element that is not the payload is a bad frame. */
static void codec_depth_512_accepted_deeper_is_edepth_and_attributable(
    void **state) {
  static char frame[4 + 10001];
  struct actor__msg m;
  size_t n;
  int depth;
  (void)state;

  for (depth = 32; depth <= 10000; depth = depth == 32 ? 512 : depth == 512 ? 513 : 10000) {
    frame[0] = (char)0x93; /* [RETURN, 5, value] */
    frame[1] = 0x02;
    frame[2] = 0x05;
    /* `depth` arrays around an int */
    memset(frame + 3, (char)0x91, (size_t)depth);
    frame[3 + depth] = 0x01;
    n = 4 + (size_t)depth;
    if (depth <= 512) {
      TH_OK(actor__msg_decode(&m, frame, n));
      assert_int_equal(m.payload_len, (size_t)depth + 1);
      TH_OK(actor__msgpack_check(frame + 3, (size_t)depth + 1));
    } else {
      TH_ERR(actor__msg_decode(&m, frame, n), ACTOR_EDEPTH);
      assert_int_equal(m.kind, ACTOR__MSG_RETURN);
      assert_int_equal(m.id, 5);
      TH_ERR(actor__msgpack_check(frame + 3, (size_t)depth + 1), ACTOR_EDEPTH);
      /* Cut short, it is malformed whatever its depth. */
      TH_ERR(actor__msg_decode(&m, frame, n - 1), ACTOR_EBADFRAME);
    }
    if (depth == 10000)
      break;
  }
  /* Deep nesting where a string belongs: [ERROR, 5, [[..]], "", ""] */
  frame[0] = (char)0x95;
  frame[1] = 0x03;
  frame[2] = 0x05;
  memset(frame + 3, (char)0x91, 599);
  frame[3 + 599] = 0x01;
  frame[3 + 600] = (char)0xa0;
  frame[3 + 601] = (char)0xa0;
  TH_ERR(actor__msg_decode(&m, frame, 3 + 602), ACTOR_EBADFRAME);
}

/* The value walker keeps 16 levels on its fast path and retries deeper
 * values with room for all 512: random trees around that boundary, with
 * siblings after every close, are walked exactly as msgpack-c unpacks them
 * (to its own limit of 32 levels), every cut-short prefix is refused, and
 * a trailing byte makes a second value. */
static void tree_pack(msgpack_packer *pk, unsigned *seed, int depth) {
  unsigned r = (*seed = *seed * 1103515245u + 12345u) >> 16;
  int i, n;
  if (depth == 0 || r % 2 == 0) { /* a leaf half the time: trees stay small */
    switch (r % 5) {
    case 0: msgpack_pack_int64(pk, (int64_t)r * 1000003); break;
    case 1: msgpack_pack_str_with_body(pk, "libactor", r % 9); break;
    case 2: msgpack_pack_nil(pk); break;
    case 3: msgpack_pack_double(pk, 0.5); break;
    default: msgpack_pack_bin_with_body(pk, "\1\2\3", r % 4); break;
    }
    return;
  }
  n = 1 + (int)((r >> 3) % 2);
  if (r & 16) {
    msgpack_pack_map(pk, (size_t)n);
    for (i = 0; i < n; i++) {
      msgpack_pack_fix_uint8(pk, (uint8_t)i);
      tree_pack(pk, seed, depth - 1);
    }
  } else {
    msgpack_pack_array(pk, (size_t)n);
    for (i = 0; i < n; i++)
      tree_pack(pk, seed, depth - 1);
  }
}

static void codec_walker_agrees_with_msgpack_across_its_small_stack(
    void **state) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_unpacked u;
  unsigned seed = 7;
  int t, depth;
  (void)state;

  for (t = 0; t < 400; t++) {
    size_t off = 0, cut;
    depth = 12 + t % 20; /* 12..31 levels: both sides of 16 */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* the deepest path first, so that every tree reaches `depth` */
    msgpack_pack_array(&pk, 2);
    for (int d = 1; d < depth; d++) {
      /* [nil, [...]] on even levels: a sibling before the way down */
      msgpack_pack_array(&pk, d % 2 ? 1 : 2);
      if (d % 2 == 0)
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_int(&pk, 1);
    tree_pack(&pk, &seed, depth);
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, sb.size);
    msgpack_unpacked_destroy(&u);
    TH_OK(actor__msgpack_check(sb.data, sb.size));
    assert_int_equal(actor__msgpack_sane(sb.data, sb.size), 1);
    for (cut = 0; cut < sb.size; cut++)
      assert_int_equal(actor__msgpack_sane_first(sb.data, cut, NULL), -1);
    msgpack_sbuffer_write(&sb, "\x07", 1);
    assert_int_equal(actor__msgpack_sane(sb.data, sb.size), 2);
    TH_ERR(actor__msgpack_check(sb.data, sb.size), ACTOR_EBADFRAME);
    msgpack_sbuffer_destroy(&sb);
  }
  /* Depth is the deepest path, not the containers seen: 64 siblings each
   * 20 (then 500) levels deep are 1,280 (32,000) containers, all fine;
   * one more level than 512 on the last of them is too deep. */
  for (depth = 20; depth <= 512; depth = depth == 20 ? 511 : 512 + 1) {
    int k, d;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 64);
    for (k = 0; k < 64; k++) {
      for (d = 0; d < depth; d++)
        msgpack_pack_map(&pk, 1), msgpack_pack_nil(&pk);
      msgpack_pack_true(&pk);
    }
    TH_OK(actor__msgpack_check(sb.data, sb.size));
    msgpack_sbuffer_destroy(&sb);
    if (depth == 511) {
      msgpack_sbuffer_init(&sb);
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_array(&pk, 2);
      msgpack_pack_nil(&pk);
      for (d = 0; d < 512; d++)
        msgpack_pack_array(&pk, 1);
      msgpack_pack_true(&pk);
      TH_ERR(actor__msgpack_check(sb.data, sb.size), ACTOR_EDEPTH);
      msgpack_sbuffer_destroy(&sb);
      break;
    }
  }
}

/* Issue 7 item 6: an 8 MiB frame of nils decodes in place (msgpack-c's
 * unpack would build 24 bytes of objects per element: ~200 MiB). */
static void codec_8mib_of_nils_decodes_in_place(void **state) {
  size_t n = 8u << 20, i;
  char *frame = malloc(n);
  struct actor__msg m;
  (void)state;

  frame[0] = (char)0x93;
  frame[1] = 0x04; /* ITEM */
  frame[2] = 0x01;
  frame[3] = (char)0xdd; /* array32 of n - 8 nils */
  for (i = 0; i < 4; i++)
    frame[4 + i] = (char)(((n - 8) >> (24 - 8 * i)) & 0xff);
  memset(frame + 8, (char)0xc0, n - 8);
  TH_OK(actor__msg_decode(&m, frame, n));
  assert_ptr_equal(m.payload, frame + 3);
  assert_int_equal(m.payload_len, n - 3);
  free(frame);
}

/* The envelope of a call's messages is written and read without msgpack-c
 * (issue 11): the bytes must be exactly what msgpack-c's packer writes, at
 * every boundary of the id's and the name's encodings, and reading them
 * back, or reading the same message in encodings a libactor encoder never
 * writes (a wide id, a str16 name, a nil name), must give the same
 * message. */
static void pack_call_like(msgpack_packer *pk, int kind, uint32_t id,
                           const char *fn, size_t fn_n, const char *pl,
                           size_t pl_n, int wide) {
  int has_pl = kind == ACTOR__MSG_CALL || kind == ACTOR__MSG_RETURN ||
               kind == ACTOR__MSG_ITEM;
  msgpack_pack_array(pk, (size_t)(2 + (kind == ACTOR__MSG_CALL) + has_pl));
  msgpack_pack_unsigned_int(pk, (unsigned)kind);
  if (wide) { /* uint64 / uint32 regardless of the value */
    char b[9] = {(char)0xcf, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++)
      b[5 + i] = (char)(id >> (24 - 8 * i));
    msgpack_pack_str_body(pk, b, 9); /* raw bytes */
  } else {
    msgpack_pack_uint32(pk, id);
  }
  if (kind == ACTOR__MSG_CALL) {
    if (wide && fn_n < 65536) {
      char h[3] = {(char)0xda, (char)(fn_n >> 8), (char)fn_n};
      msgpack_pack_str_body(pk, h, 3);
      msgpack_pack_str_body(pk, fn, fn_n);
    } else {
      msgpack_pack_str(pk, fn_n);
      msgpack_pack_str_body(pk, fn, fn_n);
    }
  }
  if (has_pl)
    msgpack_pack_str_body(pk, pl, pl_n);
}

static void codec_call_envelope_matches_msgpack_c_both_ways(void **state) {
  static const uint32_t ids[] = {1,     127,   128,        255, 256,
                                 65535, 65536, UINT32_MAX - 1, UINT32_MAX};
  static const size_t fns[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
  static const char arr[] = {(char)0x92, 0x01, (char)0xa1, 'x'};
  static const char u64[] = {(char)0xcf, 1, 2, 3, 4, 5, 6, 7, 8};
  static const struct {
    const char *p;
    size_t n;
  } pls[] = {{NULL, 0}, {u64, sizeof(u64)}, {arr, sizeof(arr)}};
  static const int kinds[] = {ACTOR__MSG_CALL, ACTOR__MSG_RETURN,
                              ACTOR__MSG_ITEM, ACTOR__MSG_END,
                              ACTOR__MSG_CANCEL};
  static const char nil = (char)0xc0;
  char *name = malloc(65536);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  struct actor__msg m, d;
  struct abuf b;
  const char *body;
  size_t len;
  (void)state;

  assert_non_null(name);
  memset(name, 'f', 65536);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  for (size_t ki = 0; ki < sizeof(kinds) / sizeof(*kinds); ki++)
    for (size_t ii = 0; ii < sizeof(ids) / sizeof(*ids); ii++)
      for (size_t fi = 0; fi < sizeof(fns) / sizeof(*fns); fi++)
        for (size_t pi = 0; pi < sizeof(pls) / sizeof(*pls); pi++) {
          int k = kinds[ki];
          const char *pl = pls[pi].p ? pls[pi].p : &nil;
          size_t pl_n = pls[pi].p ? pls[pi].n : 1;
          if (k != ACTOR__MSG_CALL && fi > 0)
            continue;
          memset(&m, 0, sizeof(m));
          m.kind = k;
          m.id = ids[ii];
          if (k == ACTOR__MSG_CALL) {
            m.fn.p = name;
            m.fn.n = fns[fi];
          }
          m.payload = pls[pi].p;
          m.payload_len = pls[pi].n;
          encode_one(&b, &m, &body, &len);
          for (int wide = 0; wide < 2; wide++) {
            msgpack_sbuffer_clear(&sb);
            pack_call_like(&pk, k, ids[ii], name, m.fn.n, pl, pl_n, wide);
            if (!wide) {
              if (sb.size != len || memcmp(sb.data, body, len) != 0)
                fail_msg("kind %d id %u fn %zu payload %zu: the frame "
                         "differs from msgpack-c's", k, (unsigned)ids[ii],
                         m.fn.n, pl_n);
            }
            TH_OK(actor__msg_decode(&d, wide ? sb.data : body,
                                    wide ? sb.size : len));
            assert_int_equal(d.kind, k);
            assert_int_equal(d.id, ids[ii]);
            assert_int_equal(d.fn.n, m.fn.n);
            if (k == ACTOR__MSG_CALL && d.fn.n > 0)
              assert_memory_equal(d.fn.p, name, d.fn.n);
            if (k <= ACTOR__MSG_ITEM) {
              assert_int_equal(d.payload_len, pl_n);
              assert_memory_equal(d.payload, pl, pl_n);
            } else {
              assert_null(d.payload);
            }
          }
          actor__buf_fini(&b);
        }
  /* A nil name reads as "" (the general path's rule) and a STOP as it is. */
  {
    static const char call_nil[] = {(char)0x94, 0x01, 0x05, (char)0xc0,
                                    (char)0xc0};
    static const char stop[] = {(char)0x92, 0x07, 0x00};
    static const char stop_id[] = {(char)0x92, 0x07, 0x01};
    static const char end_cut[] = {(char)0x92, 0x05, (char)0xcd, 0x01};
    TH_OK(actor__msg_decode(&d, call_nil, sizeof(call_nil)));
    assert_int_equal(d.kind, ACTOR__MSG_CALL);
    assert_int_equal(d.fn.n, 0);
    TH_OK(actor__msg_decode(&d, stop, sizeof(stop)));
    assert_int_equal(d.kind, ACTOR__MSG_STOP);
    TH_ERR(actor__msg_decode(&d, stop_id, sizeof(stop_id)), ACTOR_EBADFRAME);
    TH_ERR(actor__msg_decode(&d, end_cut, sizeof(end_cut)), ACTOR_EBADFRAME);
  }
  msgpack_sbuffer_destroy(&sb);
  free(name);
}

/* Issue 7 item 23: lengths that would wrap a 32-bit sum are refused as
 * ACTOR_E2BIG before anything is reserved or read. */
static void codec_absurd_lengths_are_e2big_before_any_allocation(
    void **state) {
  struct actor__msg m;
  struct abuf b;
  (void)state;

  actor__buf_init(&b);
  memset(&m, 0, sizeof(m));
  m.kind = ACTOR__MSG_CALL;
  m.id = 1;
  m.fn.p = "f";
  m.fn.n = 1;
  m.payload = "";             /* never read */
  m.payload_len = SIZE_MAX - 8;
  TH_ERR(actor__msg_encode(&b, &m, 8u << 20), ACTOR_E2BIG);
  m.payload_len = 1;
  m.message.n = SIZE_MAX / 2;
  m.traceback.n = SIZE_MAX / 2;
  TH_ERR(actor__msg_encode(&b, &m, 8u << 20), ACTOR_E2BIG);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
  actor__buf_fini(&b);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(codec_roundtrip_every_kind),
      TH_TEST(codec_payload_passed_through_byte_for_byte),
      TH_TEST(codec_nil_payload_when_empty),
      TH_TEST(codec_refuses_oversized_frame_at_encode),
      TH_TEST(codec_framer_reassembles_byte_by_byte),
      TH_TEST(codec_framer_stops_when_callback_says_so),
      TH_TEST(codec_framer_refuses_oversize_before_allocating),
      TH_TEST(codec_oversize_with_garbage_header_is_unattributed),
      TH_TEST(codec_malformed_bodies_rejected),
      TH_TEST(codec_extra_trailing_elements_are_ignored),
      TH_TEST(codec_msgpack_check),
      TH_TEST(codec_depth_512_accepted_deeper_is_edepth_and_attributable),
      TH_TEST(codec_walker_agrees_with_msgpack_across_its_small_stack),
      TH_TEST(codec_8mib_of_nils_decodes_in_place),
      TH_TEST(codec_absurd_lengths_are_e2big_before_any_allocation),
      TH_TEST(codec_call_envelope_matches_msgpack_c_both_ways),
      TH_TEST(codec_announced_counts_beyond_the_data_are_refused),
      TH_TEST(idmap_put_get_del_under_churn),
      TH_TEST(buf_reserve_compacts_and_grows),
  };
  return cmocka_run_group_tests_name("codec", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
