/* The fork server's control channel — private; shared by the host side
 * (src/spawn/forkserver.c) and the server (tools/actor_forkserver.c).
 *
 * An AF_UNIX SOCK_SEQPACKET pair: one packet is one frame of the actor
 * protocol's framing (docs/protocol.md §2: a 4-byte big-endian length and
 * one msgpack value), an array whose first element is the kind below.  A
 * packet keeps its descriptors (SCM_RIGHTS) with it, which a byte stream
 * would not: a SPAWN carries the child's end of the actor's channel.
 *
 *   host -> server
 *     SPAWN   [1, id, kind, entry, name, max_frame, paths, cwd|nil, env,
 *              clear_env, stdout, stderr]   + fds: the child's channel,
 *              then the write end of the stdout pipe if stdout is
 *              ACTOR_STDIO_CAPTURE, then stderr's likewise
 *     SIGNAL  [2, id, signo]       signal the child's process group
 *   server -> host
 *     SPAWNED [11, id, pid]
 *     FAILED  [12, id, code, message]   nothing was started
 *     EXIT    [13, id, status, signal]  reaped (status -1 if signalled)
 *     FATAL   [14, 0, message]          the server cannot serve; exits
 *
 * kind: ACTOR__FS_C ("lib.so:function"), ACTOR__FS_PY (main interpreter),
 * ACTOR__FS_SUBINT_ISOLATED / _LEGACY (a fresh sub-interpreter on a
 * thread of the child).  End of the channel, either way, ends the other
 * side: the server kills its children and exits; the host fails the
 * server's actors. */
#ifndef ACTOR_SPAWN_FSPROTO_H
#define ACTOR_SPAWN_FSPROTO_H

#include <msgpack.h>
#include <stddef.h>
#include <sys/types.h>

enum {
  ACTOR__FS_SPAWN = 1,
  ACTOR__FS_SIGNAL = 2,
  ACTOR__FS_SPAWNED = 11,
  ACTOR__FS_FAILED = 12,
  ACTOR__FS_EXIT = 13,
  ACTOR__FS_FATAL = 14
};
enum {
  ACTOR__FS_C = 0,
  ACTOR__FS_PY = 1,
  ACTOR__FS_SUBINT_ISOLATED = 2,
  ACTOR__FS_SUBINT_LEGACY = 3
};
/* Largest control packet: a request; an answer (which never carries more
 * than a few hundred bytes of text). */
#define ACTOR__FS_MAX_PACKET (256 * 1024)
#define ACTOR__FS_MAX_REPLY 4096

/* A frame being built: msgpack into `sb` after a 4-byte hole. */
void actor__fs_pack_begin(msgpack_sbuffer *sb, msgpack_packer *pk);
void actor__fs_pack_str(msgpack_packer *pk, const char *s); /* NULL: nil */
/* Fill the length prefix.  0, or ACTOR_E2BIG past ACTOR__FS_MAX_PACKET. */
int actor__fs_pack_end(msgpack_sbuffer *sb);

/* Descriptors one packet carries at most: a SPAWN's channel, stdout and
 * stderr capture pipes. */
#define ACTOR__FS_MAX_FDS 3

/* One packet, with nfds descriptors attached; never blocks (MSG_DONTWAIT)
 * and never raises SIGPIPE.  0, or -errno (-EAGAIN: try again later). */
int actor__fs_send(int sock, const char *p, size_t n, const int *fds,
                   int nfds);
/* One packet into buf (cap bytes); the descriptors that came with it in
 * fds (close-on-exec; *nfds of them, the caller's from then on, also on
 * error).  Bytes read, 0 at EOF, or -errno. */
ssize_t actor__fs_recv(int sock, char *buf, size_t cap, int *fds, int *nfds,
                       int block);
void actor__fs_close_fds(int *fds, int n);

/* Decode a packet: it must be one frame holding one well-formed array
 * (checked before msgpack-c sees it) whose first element is a kind.
 * 0 with u holding it, or ACTOR_EBADFRAME.  msgpack_unpacked_destroy(u)
 * after use in both cases. */
int actor__fs_decode(const char *p, size_t n, msgpack_unpacked *u,
                     const msgpack_object **items, size_t *count, int *kind);
/* Element helpers: 0 / NULL when absent or of another type. */
int64_t actor__fs_int(const msgpack_object *items, size_t count, size_t i);
/* A NUL-terminated copy (malloc), NULL for nil, absent, or no memory. */
char *actor__fs_strdup(const msgpack_object *items, size_t count, size_t i);

#endif
