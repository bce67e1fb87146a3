/* fsentry — a C entry for the forkserver backend (examples/forkserver.c):
 * a shared object the fork server loads once; each actor is a fork of the
 * server that runs fsentry_main.  It does not link libactor: the actor_*
 * functions are the server's own.  The entry must be exported (this build
 * hides symbols by default). */
#include <libactor/actor.h>
#include <msgpack.h>

__attribute__((visibility("default"))) int fsentry_main(actor_child *c);

/* add(a, b) -> a + b */
static int add(actor_ctx *x, const char *args, size_t len, void *arg) {
  msgpack_unpacked u;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  long long sum = 0;
  size_t off = 0;
  uint32_t i;
  int r;
  (void)arg;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, args, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY)
    for (i = 0; i < u.data.via.array.size; i++)
      sum += u.data.via.array.ptr[i].via.i64;
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_int64(&pk, sum);
  r = actor_ctx_return(x, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return r;
}

int fsentry_main(actor_child *c) {
  actor_child_register(c, "add", add, NULL);
  return actor_child_run(c); /* its value is the child's exit status */
}
