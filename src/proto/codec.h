/* Frames and messages (docs/protocol.md is the reference).
 *
 * A frame is a 4-byte big-endian length followed by exactly that many bytes
 * holding ONE msgpack value: an array [kind, id, ...].  The payload of a
 * message (call arguments, return value, stream item) is its last element
 * and is carried as-is: the encoder appends the caller's msgpack bytes
 * without re-encoding, and the decoder hands back a pointer into the frame,
 * so payloads are never copied or re-packed on either side. */
#ifndef ACTOR_PROTO_CODEC_H
#define ACTOR_PROTO_CODEC_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"

#define ACTOR__FRAME_HDR 4
#define ACTOR__DEFAULT_MAX_FRAME (8u << 20)
#define ACTOR__MIN_MAX_FRAME 1024u
#define ACTOR__DEFAULT_MAX_QUEUE (16u << 20)
/* Deepest nesting of arrays and maps accepted in any msgpack value, on
 * both sides and in the Python converter (docs/protocol.md).  A value
 * nested deeper is refused with a per-call error, never treated as a
 * malformed frame. */
#define ACTOR__MAX_DEPTH 512

enum actor__msg_kind {
  ACTOR__MSG_HELLO = 0,  /* child:  [0, 0, version, pid, backend, name] */
  ACTOR__MSG_CALL = 1,   /* parent: [1, id, fn, args] */
  ACTOR__MSG_RETURN = 2, /* child:  [2, id, value] */
  ACTOR__MSG_ERROR = 3,  /* child:  [3, id, type, message, traceback] */
  ACTOR__MSG_ITEM = 4,   /* both:   [4, id, value] */
  ACTOR__MSG_END = 5,    /* both:   [5, id] */
  ACTOR__MSG_CANCEL = 6, /* parent: [6, id] */
  ACTOR__MSG_STOP = 7,   /* parent: [7, 0] */
  ACTOR__MSG_KINDS = 8
};

struct actor__str {
  const char *p; /* points into the frame; not NUL-terminated */
  size_t n;
};

struct actor__msg {
  int kind;
  uint32_t id;
  /* HELLO */
  uint64_t version;
  int64_t pid;
  struct actor__str backend, name;
  /* CALL */
  struct actor__str fn;
  /* ERROR */
  struct actor__str type, message, traceback;
  /* CALL args, RETURN value, ITEM value: one msgpack value */
  const char *payload;
  size_t payload_len;
};

/* Error types the runtimes exchange; the parent maps them to codes. */
#define ACTOR__ERRTYPE_NOFUNC "libactor.NoSuchFunction"
#define ACTOR__ERRTYPE_CANCELLED "libactor.Cancelled"
#define ACTOR__ERRTYPE_TOOBIG "libactor.FrameTooBig"
#define ACTOR__ERRTYPE_BADFRAME "libactor.BadFrame"
#define ACTOR__ERRTYPE_FAILED "libactor.Failed"
#define ACTOR__ERRTYPE_TOODEEP "libactor.TooDeep"

/* A copy of the envelope's small parts without a call to memcpy: names
 * and payloads of a few bytes are the common case (two overlapping moves
 * of 4 or 8 bytes; a 9-byte uint64 item, a 4-byte name). */
static inline void actor__copy_small(void *dst, const void *src, size_t n) {
  unsigned char *t = (unsigned char *)dst;
  const unsigned char *s = (const unsigned char *)src;
  uint64_t a, b;
  uint32_t c, d;
  if (n > 16) {
    memcpy(t, s, n);
  } else if (n >= 8) {
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(t, &a, 8);
    memcpy(t + n - 8, &b, 8);
  } else if (n >= 4) {
    memcpy(&c, s, 4);
    memcpy(&d, s + n - 4, 4);
    memcpy(t, &c, 4);
    memcpy(t + n - 4, &d, 4);
  } else {
    for (size_t i = 0; i < n; i++)
      t[i] = s[i];
  }
}

/* Encode one frame at the end of `out`.  The payload (if the kind has one)
 * must be one msgpack value; NULL/0 encodes nil.  Returns 0, ACTOR_E2BIG if
 * the frame would exceed max_frame (nothing is appended), or -ENOMEM. */
int actor__msg_encode(struct abuf *out, const struct actor__msg *m,
                      size_t max_frame);

/* The same for a message with no name, type or text part (RETURN, ITEM,
 * END, CANCEL, STOP) or a CALL (fn, fn_n: its function), from its parts:
 * the send path of every call, without building an actor__msg.  A kind
 * without a payload ignores payload/len; NULL/0 encodes nil. */
int actor__msg_encode_call(struct abuf *out, int kind, uint32_t id,
                           const char *fn, size_t fn_n, const char *payload,
                           size_t len, size_t max_frame);

/* Decode the frame body (without its length prefix).  Strings and payload
 * point into `body`; nothing is allocated and no msgpack object is built.
 * Returns 0, ACTOR_EBADFRAME (not one well-formed array of the right
 * shape), ACTOR_EBADKIND (an unknown kind; m->kind and m->id are still
 * set), or ACTOR_EDEPTH: a well-formed CALL/RETURN/ITEM whose payload nests
 * deeper than ACTOR__MAX_DEPTH (m->kind, m->id and a CALL's m->fn are set,
 * m->payload is NULL) — that call fails, the channel stays usable. */
int actor__msg_decode(struct actor__msg *m, const char *body, size_t len);

/* Best-effort read of [kind, id] from the first bytes of a frame body;
 * used to attribute an oversized frame to its call.  0 or EBADFRAME. */
int actor__msg_peek(const char *body, size_t len, int *kind, uint32_t *id);

/* The number of whole msgpack values in [p, p+len), or -1 when some count
 * or length announces more than the bytes that are there (or a byte is not
 * msgpack).  One pass, no allocation: run it before msgpack-c sees
 * untrusted bytes, since msgpack-c allocates for announced counts first.
 * Nesting is not limited here. */
long actor__msgpack_sane(const char *p, size_t len);
/* The same for the first value only (what follows is not looked at): 0 and
 * its end offset in *end, or -1. */
int actor__msgpack_sane_first(const char *p, size_t len, size_t *end);

/* 0 when [p, p+len) is exactly one well-formed msgpack value nested at most
 * ACTOR__MAX_DEPTH deep; ACTOR_EDEPTH when it nests deeper; otherwise
 * ACTOR_EBADFRAME.  No allocation. */
int actor__msgpack_check(const char *p, size_t len);

/* Framer: splits a byte stream into frames, refusing frames larger than the
 * maximum before any allocation happens — their bytes are skipped as they
 * arrive, and the first few are kept to name the kind and id. */
struct actor__framer {
  size_t max_frame;
  uint64_t skip;     /* bytes of an oversized frame still to discard */
  uint64_t skip_len; /* its announced length */
  int skip_kind;
  uint32_t skip_id;
};

struct actor__framer_cbs {
  /* A whole frame; body valid during the call.  Return non-zero to stop
   * parsing (the channel is closing). */
  int (*frame)(void *arg, const char *body, size_t len);
  /* An oversized frame was found (reported at once; its bytes are then
   * skipped as they arrive): its kind/id if they could be read (kind -1
   * otherwise) and its announced length. */
  int (*oversize)(void *arg, int kind, uint32_t id, uint64_t len);
};

/* Consume what it can from `in`.  Returns 0 (need more bytes), or the
 * non-zero value a callback returned. Leaves `in` with room reserved for the
 * rest of a partial frame, or -ENOMEM. */
int actor__framer_feed(struct actor__framer *f, struct abuf *in,
                       const struct actor__framer_cbs *cbs, void *arg);

#endif
