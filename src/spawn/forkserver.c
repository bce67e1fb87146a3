/* forkserver: actors forked by a clean fork-server process
 * (tools/actor_forkserver.c), one server per runtime.
 *
 * Why a server, and why the fork happens there (docs/backends.md has the
 * long form): fork() from this host is unsafe — a libuv loop thread, other
 * threads, live sub-interpreters (a child forked while one exists dies in
 * CPython, gh-139759).  The server is started by exec, runs no loop and no
 * sub-interpreter, loads what children should inherit once, and forks
 * from a worker thread attached to its main interpreter.
 *
 * This file is the host's half: it starts the server on first use
 * (posix_spawn of the helper, watched through a pidfd like a subproc
 * child), makes each actor's socketpair, sends the child's end with the
 * SPAWN request (SCM_RIGHTS) and opens the actor's channel on ours.  The
 * server is the children's parent: it reaps them and relays each exit;
 * it holds each child's pidfd until it reaps it, and signals the child's
 * process group on our SIGNAL request (the unreaped leader keeps the group
 * id taken), so no signal ever goes by a relayed pid.
 *
 * The server is per runtime (backend.h version 2: runtime state), not an
 * actor: actor_rt_actor_count does not count it, actor_rt_close ends it
 * (bounded: EOF on its control channel, SIGKILL after
 * FS_CLOSE_MS).  When it dies, its actors end with ACTOR_ECLOSED and "the
 * fork server died" in their reason, their children die of their
 * parent-death signal, and the next spawn starts a new server. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/codec.h"
#include "rt/internal.h"
#include "spawn/backend.h"
#include "spawn/capture.h"
#include "spawn/fsproto.h"
#include "spawn/helper.h"

extern char **environ;

#define FS_CLOSE_MS 2000

/* ---- the control channel's frames (fsproto.h) ------------------------- */

void actor__fs_pack_begin(msgpack_sbuffer *sb, msgpack_packer *pk) {
  static const char hole[ACTOR__FRAME_HDR];
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_sbuffer_write(sb, hole, sizeof(hole));
}

void actor__fs_pack_str(msgpack_packer *pk, const char *s) {
  size_t n;
  if (s == NULL) {
    msgpack_pack_nil(pk);
    return;
  }
  n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

int actor__fs_pack_end(msgpack_sbuffer *sb) {
  size_t n;
  if (sb->data == NULL || sb->size > ACTOR__FS_MAX_PACKET)
    return sb->data == NULL ? -ENOMEM : ACTOR_E2BIG;
  n = sb->size - ACTOR__FRAME_HDR;
  sb->data[0] = (char)(n >> 24);
  sb->data[1] = (char)(n >> 16);
  sb->data[2] = (char)(n >> 8);
  sb->data[3] = (char)n;
  return 0;
}

/* A set of descriptors: close them all (-1s skipped). */
void actor__fs_close_fds(int *fds, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (fds[i] >= 0) {
      close(fds[i]);
      fds[i] = -1;
    }
}

int actor__fs_send(int sock, const char *p, size_t n, const int *fds,
                   int nfds) {
  union {
    char buf[CMSG_SPACE(ACTOR__FS_MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = {(void *)p, n};
  struct msghdr mh;
  struct cmsghdr *cm;
  ssize_t w;

  if (nfds < 0 || nfds > ACTOR__FS_MAX_FDS)
    return -EINVAL;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    memset(&u, 0, sizeof(u));
    mh.msg_control = u.buf;
    mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
  }
  do
    w = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return 0;
}

ssize_t actor__fs_recv(int sock, char *buf, size_t cap, int *fds, int *nfds,
                       int block) {
  union {
    char buf[CMSG_SPACE(ACTOR__FS_MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } u;
  struct iovec iov = {buf, cap};
  struct msghdr mh;
  struct cmsghdr *cm;
  int got[ACTOR__FS_MAX_FDS];
  ssize_t n;
  size_t i, k;

  *nfds = 0;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = u.buf;
  mh.msg_controllen = sizeof(u.buf);
  do
    n = recvmsg(sock, &mh,
                MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (k > ACTOR__FS_MAX_FDS)
      k = ACTOR__FS_MAX_FDS; /* a truncated control message: MSG_CTRUNC */
    memcpy(got, CMSG_DATA(cm), k * sizeof(int));
    for (i = 0; i < k; i++) {
      if (*nfds < ACTOR__FS_MAX_FDS)
        fds[(*nfds)++] = got[i];
      else
        close(got[i]);
    }
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    return -EMSGSIZE; /* the caller closes fds */
  return n;
}

int actor__fs_decode(const char *p, size_t n, msgpack_unpacked *u,
                     const msgpack_object **items, size_t *count, int *kind) {
  size_t len, off = 0;

  msgpack_unpacked_init(u);
  if (n < ACTOR__FRAME_HDR)
    return ACTOR_EBADFRAME;
  len = ((size_t)(unsigned char)p[0] << 24) |
        ((size_t)(unsigned char)p[1] << 16) |
        ((size_t)(unsigned char)p[2] << 8) | (size_t)(unsigned char)p[3];
  p += ACTOR__FRAME_HDR;
  n -= ACTOR__FRAME_HDR;
  if (len != n || actor__msgpack_check(p, n) != 0 ||
      msgpack_unpack_next(u, p, n, &off) != MSGPACK_UNPACK_SUCCESS ||
      u->data.type != MSGPACK_OBJECT_ARRAY || u->data.via.array.size < 2 ||
      u->data.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return ACTOR_EBADFRAME;
  *items = u->data.via.array.ptr;
  *count = u->data.via.array.size;
  *kind = (int)(*items)[0].via.u64;
  return 0;
}

int64_t actor__fs_int(const msgpack_object *items, size_t count, size_t i) {
  if (i >= count)
    return 0;
  if (items[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return (int64_t)items[i].via.u64;
  if (items[i].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return items[i].via.i64;
  if (items[i].type == MSGPACK_OBJECT_BOOLEAN)
    return items[i].via.boolean;
  return 0;
}

char *actor__fs_strdup(const msgpack_object *items, size_t count, size_t i) {
  if (i >= count || items[i].type != MSGPACK_OBJECT_STR)
    return NULL;
  return strndup(items[i].via.str.ptr, items[i].via.str.size);
}

/* ---- state --------------------------------------------------------------- */

struct fs_pkt {
  struct alist node;
  int fds[ACTOR__FS_MAX_FDS]; /* sent with it, then closed */
  int nfds;
  size_t len;
  char data[];
};

struct fs_rt;

/* One server process.  The current one takes spawns; one that has died
 * stays until it is reaped and its actors have let go of it. */
struct fs_server {
  struct alist node; /* on fr->servers */
  struct fs_rt *fr;
  int pid;
  int pidfd, ctl;
  uv_poll_t pid_poll, ctl_poll;
  int pid_polling, ctl_polling, ctl_events;
  int pending; /* handle closes in flight */
  int dead;    /* no more requests: its channel ended or it exited */
  int reaped;
  uv_timer_t timer; /* the close's SIGKILL deadline */
  int timer_on;
  struct idmap actors; /* request id -> struct forkserver */
  struct alist out;    /* packets not yet sent */
  char why[200];       /* how it ended, for its actors' reasons */
};

struct fs_rt {
  actor_rt *rt;
  struct alist servers;
  struct fs_server *cur;
  uint32_t next_id;
  int closing;
  char **modules, **libs, **paths; /* NULL-terminated */
  size_t nmodules, nlibs, npaths;
  int python;
};

struct forkserver {
  actor *a;
  struct fs_server *srv; /* NULL once let go */
  uint32_t id;
  int exited;
  struct actor__capture out[2]; /* stdout, stderr when captured */
  int pending;                  /* their closes in flight */
  int closing;
};

static int fs_available(const char **why) {
  (void)why;
  return 0;
}

/* ---- the server's end ------------------------------------------------------ */

static void fs__srv_maybe_free(struct fs_server *s);

static void fs__handle_closed(uv_handle_t *h) {
  struct fs_server *s = h->data;
  if (h == (uv_handle_t *)&s->pid_poll) {
    close(s->pidfd);
    s->pidfd = -1;
  } else if (h == (uv_handle_t *)&s->ctl_poll) {
    close(s->ctl);
    s->ctl = -1;
  }
  s->pending--;
  fs__srv_maybe_free(s);
}

static void fs__srv_close_ctl(struct fs_server *s) {
  struct fs_pkt *p;
  while (!alist_empty(&s->out)) {
    p = ALIST_ENTRY(s->out.next, struct fs_pkt, node);
    alist_remove(&p->node);
    actor__fs_close_fds(p->fds, p->nfds);
    free(p);
  }
  if (s->ctl_polling) {
    s->ctl_polling = 0;
    s->pending++;
    uv_close((uv_handle_t *)&s->ctl_poll, fs__handle_closed);
  } else if (s->ctl >= 0) {
    close(s->ctl);
    s->ctl = -1;
  }
}

static void fs__rt_maybe_closed(struct fs_rt *fr);

static void fs__srv_maybe_free(struct fs_server *s) {
  struct fs_rt *fr = s->fr;
  if (!s->reaped || s->pending > 0 || s->timer_on ||
      actor__idmap_any(&s->actors) != NULL)
    return;
  if (fr->cur == s)
    fr->cur = NULL;
  alist_remove(&s->node);
  actor__idmap_fini(&s->actors);
  free(s);
  fs__rt_maybe_closed(fr);
}

/* SIGKILL the server.  It is unreaped, so its pidfd — or, where
 * pidfd_send_signal is missing (valgrind, some seccomp filters), its pid —
 * still names it. */
static void fs__srv_kill(struct fs_server *s) {
  if (s->reaped || s->pidfd < 0)
    return;
  if (pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0) != 0 && errno == ENOSYS)
    kill(s->pid, SIGKILL);
}

/* Why the server is going, in s->why (kept once set): the channel usually
 * ends because the process did, so say how, if so (looked at without
 * reaping; the pid poll reaps). */
static void fs__srv_why(struct fs_server *s, const char *fallback) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  if (s->why[0] == '\0' && !s->reaped && s->pidfd >= 0 &&
      waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      si.si_pid != 0) {
    if (si.si_code == CLD_EXITED)
      snprintf(s->why, sizeof(s->why), "exited with status %d", si.si_status);
    else
      snprintf(s->why, sizeof(s->why), "killed by signal %d (SIG%s)",
               si.si_status,
               sigabbrev_np(si.si_status) ? sigabbrev_np(si.si_status) : "?");
  }
  if (s->why[0] == '\0')
    snprintf(s->why, sizeof(s->why), "%s", fallback);
}

/* The server can take no more requests: every actor of it that has not
 * ended ends now (its child dies of its parent-death signal, or sees EOF
 * when we close its channel). */
static void fs__srv_dead(struct fs_server *s, const char *why) {
  struct forkserver *fs;
  char how[sizeof(s->why) + 48];

  if (s->dead)
    return;
  s->dead = 1;
  fs__srv_why(s, why);
  if (s->fr->cur == s)
    s->fr->cur = NULL;
  fs__srv_close_ctl(s);
  fs__srv_kill(s); /* make sure it ends */
  snprintf(how, sizeof(how), "the fork server (pid %d) died: %s", s->pid,
           s->why);
  while ((fs = actor__idmap_any(&s->actors)) != NULL) {
    actor__idmap_del(&s->actors, fs->id);
    fs->srv = NULL;
    if (!fs->exited) {
      fs->exited = 1;
      actor__backend_set_how(fs->a, how);
      actor__backend_exited(fs->a, -1, 0, ACTOR_ECLOSED);
    }
  }
  fs__srv_maybe_free(s);
}

static void fs__pid_readable(uv_poll_t *h, int status, int events) {
  struct fs_server *s = h->data;
  siginfo_t si;
  int r;

  (void)status;
  (void)events;
  memset(&si, 0, sizeof(si));
  r = waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG);
  if (r == 0 && si.si_pid == 0)
    return;
  if (r < 0 && errno == EINTR)
    return;
  s->reaped = 1;
  if (r < 0)
    snprintf(s->why, sizeof(s->why), "reaped elsewhere");
  else if (s->why[0] == '\0' && si.si_code == CLD_EXITED)
    snprintf(s->why, sizeof(s->why), "exited with status %d", si.si_status);
  else if (s->why[0] == '\0')
    snprintf(s->why, sizeof(s->why), "killed by signal %d (SIG%s)",
             si.si_status,
             sigabbrev_np(si.si_status) ? sigabbrev_np(si.si_status) : "?");
  if (s->timer_on) {
    s->timer_on = 0;
    s->pending++;
    uv_close((uv_handle_t *)&s->timer, fs__handle_closed);
  }
  s->pid_polling = 0;
  s->pending++;
  uv_close((uv_handle_t *)&s->pid_poll, fs__handle_closed);
  fs__srv_dead(s, s->why);
}

/* ---- control messages ------------------------------------------------------- */

static void fs__ctl_cb(uv_poll_t *h, int status, int events);

static void fs__ctl_arm(struct fs_server *s) {
  int ev = UV_READABLE | (alist_empty(&s->out) ? 0 : UV_WRITABLE);
  if (!s->ctl_polling || ev == s->ctl_events)
    return;
  s->ctl_events = ev;
  uv_poll_start(&s->ctl_poll, ev, fs__ctl_cb);
}

static int fs__flush(struct fs_server *s) {
  struct fs_pkt *p;
  int r;
  while (!alist_empty(&s->out)) {
    p = ALIST_ENTRY(s->out.next, struct fs_pkt, node);
    r = actor__fs_send(s->ctl, p->data, p->len, p->fds, p->nfds);
    if (r == -EAGAIN)
      break;
    alist_remove(&p->node);
    actor__fs_close_fds(p->fds, p->nfds);
    free(p);
    if (r)
      return r;
  }
  fs__ctl_arm(s);
  return 0;
}

/* Queue a frame built in sb (freed here), with the descriptors fds (nfds,
 * owned from now on: closed once sent, or on failure). */
static int fs__queue(struct fs_server *s, msgpack_sbuffer *sb, int *fds,
                     int nfds) {
  struct fs_pkt *p;
  int r = actor__fs_pack_end(sb);

  p = r ? NULL : malloc(sizeof(*p) + sb->size);
  if (p == NULL) {
    msgpack_sbuffer_destroy(sb);
    actor__fs_close_fds(fds, nfds);
    return r ? r : -ENOMEM;
  }
  memcpy(p->data, sb->data, sb->size);
  p->len = sb->size;
  if (nfds > 0) /* fds may be NULL then */
    memcpy(p->fds, fds, (size_t)nfds * sizeof(int));
  p->nfds = nfds;
  msgpack_sbuffer_destroy(sb);
  alist_insert_tail(&s->out, &p->node);
  return 0;
}

static void fs__on_packet(struct fs_server *s, const char *p, size_t n) {
  msgpack_unpacked u;
  const msgpack_object *it;
  struct forkserver *fs;
  size_t cnt;
  int kind;
  char *msg;

  if (actor__fs_decode(p, n, &u, &it, &cnt, &kind)) {
    msgpack_unpacked_destroy(&u);
    snprintf(s->why, sizeof(s->why), "sent a malformed control message");
    fs__srv_dead(s, s->why);
    return;
  }
  if (kind == ACTOR__FS_FATAL) {
    msg = actor__fs_strdup(it, cnt, 2);
    snprintf(s->why, sizeof(s->why), "%s", msg ? msg : "fatal error");
    free(msg);
    msgpack_unpacked_destroy(&u);
    actor__logf(&s->fr->rt->log, ACTOR_LOG_ERROR, "fork server: %s", s->why);
    fs__srv_dead(s, s->why);
    return;
  }
  fs = actor__idmap_get(&s->actors, (uint32_t)actor__fs_int(it, cnt, 1));
  if (fs != NULL && !fs->exited) {
    switch (kind) {
    case ACTOR__FS_SPAWNED:
      fs->a->pid = (int)actor__fs_int(it, cnt, 2);
      break;
    case ACTOR__FS_FAILED:
      msg = actor__fs_strdup(it, cnt, 3);
      fs->exited = 1;
      actor__backend_set_how(fs->a, msg ? msg : "the fork server failed");
      free(msg);
      actor__backend_exited(fs->a, -1, 0, (int)actor__fs_int(it, cnt, 2));
      break;
    case ACTOR__FS_EXIT:
      fs->exited = 1;
      actor__backend_exited(fs->a, actor__fs_int(it, cnt, 2),
                            (int)actor__fs_int(it, cnt, 3), 0);
      break;
    default:
      break;
    }
  }
  msgpack_unpacked_destroy(&u);
}

static void fs__ctl_cb(uv_poll_t *h, int status, int events) {
  struct fs_server *s = h->data;
  char buf[ACTOR__FS_MAX_REPLY];
  int fds[ACTOR__FS_MAX_FDS], nfds;
  ssize_t n;

  if (status < 0) {
    fs__srv_dead(s, "its control channel failed");
    return;
  }
  if ((events & UV_WRITABLE) && fs__flush(s) != 0) {
    fs__srv_dead(s, "its control channel failed");
    return;
  }
  if (!(events & UV_READABLE))
    return;
  while (!s->dead) {
    n = actor__fs_recv(s->ctl, buf, sizeof(buf), fds, &nfds, 0);
    actor__fs_close_fds(fds, nfds); /* the server sends none */
    if (n == -EAGAIN)
      break;
    if (n <= 0) {
      fs__srv_dead(s, n == 0 ? "its control channel ended"
                             : "its control channel failed");
      break;
    }
    fs__on_packet(s, buf, (size_t)n);
  }
}

/* ---- starting a server -------------------------------------------------------- */

static int fs__fail(actor_rt *rt, int r, const char *what) {
  return actor__spawn_fail(rt, "forkserver", r, what);
}

static void fs__srv_timer(uv_timer_t *t) { fs__srv_kill(t->data); }

/* argv: prog -H hostpid [-P] (-m module | -l lib | -p dir)... */
static char **fs__argv(struct fs_rt *fr, const char *prog, char *hostpid,
                       int python) {
  size_t n = 0, i;
  char **v = calloc(6 + 2 * (fr->nmodules + fr->nlibs + fr->npaths),
                    sizeof(*v));
  if (v == NULL)
    return NULL;
  v[n++] = (char *)prog;
  v[n++] = "-H";
  v[n++] = hostpid;
  if (python)
    v[n++] = "-P";
  for (i = 0; i < fr->npaths; i++)
    v[n++] = "-p", v[n++] = fr->paths[i];
  for (i = 0; i < fr->nmodules; i++)
    v[n++] = "-m", v[n++] = fr->modules[i];
  for (i = 0; i < fr->nlibs; i++)
    v[n++] = "-l", v[n++] = fr->libs[i];
  return v;
}

static int fs__spawn_server(struct fs_rt *fr, struct fs_server *s,
                            int python) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  char path[PATH_MAX], hostpid[24];
  const char *prog;
  char **argv = NULL, **env = NULL;
  int sv[2] = {-1, -1}, null_fd = -1, e, i, n = 0, fd1, fd2;
  pid_t pid;

  prog = actor__helper_path("actor-forkserver", "LIBACTOR_FORKSERVER", path,
                            sizeof(path));
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
    return fs__fail(fr->rt, -errno, "cannot create the control channel");
  null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  snprintf(hostpid, sizeof(hostpid), "%d", (int)getpid());
  argv = fs__argv(fr, prog, hostpid, python);
  while (environ[n] != NULL)
    n++;
  env = calloc((size_t)n + 1, sizeof(*env));
  if (null_fd < 0 || argv == NULL || env == NULL) {
    e = null_fd < 0 ? errno : ENOMEM;
    goto out;
  }
  /* The channel variables of this host (if it is an actor itself) are
   * not the server's or its children's. */
  for (i = 0, n = 0; environ[i] != NULL; i++)
    if (!actor__env_reserved(environ[i]))
      env[n++] = environ[i];
  fd1 = fcntl(1, F_GETFD) != -1 ? 1 : null_fd;
  fd2 = fcntl(2, F_GETFD) != -1 ? 2 : null_fd;
  if ((e = posix_spawn_file_actions_init(&fa)) != 0)
    goto out;
  if ((e = posix_spawnattr_init(&at)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    goto out;
  }
  /* sv[1] and null_fd may be 0..3 in a host with stdio closed: move the
   * channel out of the way first. */
  e = posix_spawn_file_actions_adddup2(&fa, sv[1], 10);
  if (e == 0)
    e = posix_spawn_file_actions_adddup2(&fa, null_fd, 11);
  if (e == 0 && fd1 != 1)
    e = posix_spawn_file_actions_adddup2(&fa, 11, 1);
  if (e == 0 && fd2 != 2)
    e = posix_spawn_file_actions_adddup2(&fa, 11, 2);
  if (e == 0)
    e = posix_spawn_file_actions_adddup2(&fa, 11, 0);
  if (e == 0)
    e = posix_spawn_file_actions_adddup2(&fa, 10, 3);
  if (e == 0)
    e = posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  /* Its own session: a Ctrl-C at the host's terminal is the host's to
   * handle (it closes the runtime, which ends the server). */
  if (e == 0)
    e = actor__spawnattr_clean(&at);
  if (e == 0)
    e = posix_spawn(&pid, prog, &fa, &at, argv, env);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0)
    goto out;
  s->pid = pid;
  s->pidfd = pidfd_open(pid, 0);
  if (s->pidfd < 0) {
    e = errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    goto out;
  }
  s->ctl = sv[0];
  sv[0] = -1;
out:
  if (sv[0] >= 0)
    close(sv[0]);
  close(sv[1]);
  if (null_fd >= 0)
    close(null_fd);
  free(argv);
  free(env);
  if (e != 0) {
    char what[PATH_MAX + 40];
    snprintf(what, sizeof(what), "cannot start the fork server '%s'", prog);
    return fs__fail(fr->rt, -e, what);
  }
  return 0;
}

static int fs__server(struct fs_rt *fr, int python, struct fs_server **out) {
  struct fs_server *s;
  uv_loop_t *loop = fr->rt->loop;
  int r;

  *out = fr->cur;
  if (fr->cur != NULL)
    return 0;
  if (fr->closing)
    return ACTOR_ESTATE;
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->fr = fr;
  s->pidfd = s->ctl = -1;
  alist_init(&s->out);
  actor__idmap_init(&s->actors);
  r = fs__spawn_server(fr, s, python || fr->python || fr->nmodules > 0);
  if (r) {
    actor__idmap_fini(&s->actors);
    free(s);
    return r;
  }
  alist_insert_tail(&fr->servers, &s->node);
  uv_poll_init(loop, &s->pid_poll, s->pidfd);
  s->pid_poll.data = s;
  s->pid_polling = 1;
  uv_poll_start(&s->pid_poll, UV_READABLE, fs__pid_readable);
  uv_poll_init(loop, &s->ctl_poll, s->ctl);
  s->ctl_poll.data = s;
  s->ctl_polling = 1;
  fs__ctl_arm(s);
  actor__logf(&fr->rt->log, ACTOR_LOG_DEBUG, "fork server started (pid %d)",
              s->pid);
  fr->cur = s;
  *out = s;
  return 0;
}

/* ---- runtime state (backend.h version 2) ------------------------------------- */

static int fs_rt_init(void *rts, actor_rt *rt) {
  struct fs_rt *fr = rts;
  fr->rt = rt;
  alist_init(&fr->servers);
  fr->next_id = 1;
  return 0;
}

static void fs__rt_maybe_closed(struct fs_rt *fr) {
  if (!fr->closing || !alist_empty(&fr->servers))
    return;
  actor__vec_free(fr->modules);
  actor__vec_free(fr->libs);
  actor__vec_free(fr->paths);
  fr->modules = fr->libs = fr->paths = NULL;
  actor__rt_backend_closed(fr->rt, &actor__backend_forkserver.ops);
}

/* Every actor is gone: EOF on each server's control channel makes it kill
 * what is left, reap and exit; SIGKILL after FS_CLOSE_MS bounds it. */
static void fs_rt_close(void *rts, actor_rt *rt) {
  struct fs_rt *fr = rts;
  struct alist *n, *next;
  (void)rt;
  fr->closing = 1;
  fr->cur = NULL;
  for (n = fr->servers.next; n != &fr->servers; n = next) {
    struct fs_server *s = ALIST_ENTRY(n, struct fs_server, node);
    next = n->next;
    fs__srv_close_ctl(s);
    s->dead = 1;
    if (!s->reaped && !s->timer_on) {
      uv_timer_init(fr->rt->loop, &s->timer);
      s->timer.data = s;
      s->timer_on = 1;
      uv_timer_start(&s->timer, fs__srv_timer, FS_CLOSE_MS, 0);
    }
  }
  fs__rt_maybe_closed(fr);
}

/* ---- one actor ------------------------------------------------------------------ */

static void fs__out_closed(void *arg) {
  struct forkserver *fs = arg;
  if (--fs->pending == 0 && fs->closing)
    actor__backend_closed(fs->a);
}

static int fs__pack_spawn(msgpack_sbuffer *sb, uint32_t id, int kind,
                          const char *entry, const char *cwd, actor *a,
                          const actor_opts *o) {
  msgpack_packer pk;
  size_t i;

  actor__fs_pack_begin(sb, &pk);
  msgpack_pack_array(&pk, 12);
  msgpack_pack_int(&pk, ACTOR__FS_SPAWN);
  msgpack_pack_uint32(&pk, id);
  msgpack_pack_int(&pk, kind);
  actor__fs_pack_str(&pk, entry);
  actor__fs_pack_str(&pk, a->name);
  msgpack_pack_uint64(&pk, a->rt->max_frame);
  msgpack_pack_array(&pk, (uint32_t)o->npaths);
  for (i = 0; i < o->npaths; i++)
    actor__fs_pack_str(&pk, o->paths[i]);
  actor__fs_pack_str(&pk, cwd);
  msgpack_pack_array(&pk, (uint32_t)o->nenv);
  for (i = 0; i < o->nenv; i++)
    actor__fs_pack_str(&pk, o->env[i]);
  if (o->clear_env)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  msgpack_pack_int(&pk, o->stdio[1]);
  msgpack_pack_int(&pk, o->stdio[2]);
  return 0;
}

static int fs_start(void *st, actor *a, const actor_opts *o) {
  struct forkserver *fs = st;
  actor_rt *rt = a->rt;
  struct fs_rt *fr;
  struct fs_server *s;
  msgpack_sbuffer sb;
  char cwd[PATH_MAX];
  const char *entry, *what;
  int kind, r, sv[2], fresh = 0, i, w[2] = {-1, -1}, fds[ACTOR__FS_MAX_FDS],
      nfds;

  fs->a = a;
  if (o->c_entry != NULL) {
    kind = ACTOR__FS_C;
    entry = o->c_entry;
  } else if (o->entry != NULL) {
    kind = !o->fork_subint                        ? ACTOR__FS_PY
           : o->subint_mode == ACTOR_SUBINT_LEGACY ? ACTOR__FS_SUBINT_LEGACY
                                                   : ACTOR__FS_SUBINT_ISOLATED;
    entry = o->entry;
  } else {
    actor__seterr(rt, "forkserver: no entry (actor_opts_set_c_entry or "
                      "actor_opts_set_entry)");
    return -EINVAL;
  }
  if ((r = actor__spawn_check_cwd(rt, "forkserver", o->cwd)) != 0)
    return r;
  /* Captured output: pipes as for subproc, their write ends going to the
   * child with the channel (the capture is closed by close, also after a
   * failure here). */
  for (i = 0; i < 2; i++)
    if (o->stdio[i + 1] == ACTOR_STDIO_CAPTURE &&
        (r = actor__capture_open(&fs->out[i], a, i + 1, &w[i], &what,
                                 fs__out_closed, fs)) != 0) {
      fs__fail(rt, r, what);
      goto out;
    }
  r = actor__rt_backend_state(rt, &actor__backend_forkserver.ops, (void **)&fr);
  if (r) {
    actor__seterr(rt, "forkserver: %s", actor_strerror(r));
    goto out;
  }
retry:
  if (fr->cur == NULL)
    fresh = 1; /* started by this spawn */
  r = fs__server(fr, kind != ACTOR__FS_C, &s);
  if (r)
    goto out;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
    r = fs__fail(rt, -errno, "cannot create the channel");
    goto out;
  }
  /* The child's descriptors, sent with the request (and closed then): its
   * end of the channel, then its capture pipes (copies: a retry sends
   * them again). */
  nfds = 0;
  fds[nfds++] = sv[1];
  for (i = 0; i < 2; i++)
    if (w[i] >= 0 && (fds[nfds++] = fcntl(w[i], F_DUPFD_CLOEXEC, 0)) < 0) {
      r = fs__fail(rt, -errno, "cannot pass a capture pipe");
      actor__fs_close_fds(fds, nfds - 1);
      close(sv[0]);
      goto out;
    }
  fs->id = fr->next_id++;
  if (fr->next_id == 0)
    fr->next_id = 1;
  /* The host's working directory now (the server's is the host's when it
   * started): a relative cwd and none at all mean what they mean for
   * subproc. */
  if (o->cwd != NULL && o->cwd[0] == '/')
    snprintf(cwd, sizeof(cwd), "%s", o->cwd);
  else if (getcwd(cwd, sizeof(cwd)) == NULL)
    cwd[0] = '\0';
  else if (o->cwd != NULL) {
    size_t l = strlen(cwd);
    snprintf(cwd + l, sizeof(cwd) - l, "/%s", o->cwd);
  }
  fs__pack_spawn(&sb, fs->id, kind, entry, cwd[0] ? cwd : NULL, a, o);
  r = fs__queue(s, &sb, fds, nfds); /* owns fds now */
  if (r == 0 && (r = fs__flush(s)) != 0) {
    /* It died before we heard of it: what it said last is still in the
     * channel (a preload that failed, say). */
    if (!s->dead && s->ctl_polling)
      fs__ctl_cb(&s->ctl_poll, 0, UV_READABLE); /* not freed: closing */
    fs__srv_why(s, "its control channel failed");
    actor__seterr(rt, "forkserver: the fork server (pid %d) died: %s", s->pid,
                  s->why);
    fs__srv_dead(s, s->why);
    close(sv[0]);
    /* The next spawn starts a new server; this one is the next, once — a
     * server that dies at its start fails it. */
    if (!fresh) {
      fresh = 1;
      goto retry;
    }
    r = ACTOR_ECLOSED;
    goto out;
  }
  if (r == 0)
    r = actor__idmap_put(&s->actors, fs->id, fs);
  if (r) {
    close(sv[0]);
    if (r == ACTOR_E2BIG)
      actor__seterr(rt, "forkserver: the spawn request is too large (over "
                        "%d bytes: environment, paths)", ACTOR__FS_MAX_PACKET);
    goto out; /* a request already sent, whose channel is closed, starts a
                 child that sees EOF at once and ends */
  }
  fs->srv = s;
  r = actor__stream_open(&a->chan, rt->loop, sv[0], rt->max_frame,
                         &actor__parent_chan_cbs, a);
  if (r) {
    actor__seterr(rt, "forkserver: channel: %s", actor_strerror(r));
    goto out;
  }
  for (i = 0; i < 2; i++)
    actor__capture_start(&fs->out[i]);
out:
  for (i = 0; i < 2; i++)
    if (w[i] >= 0)
      close(w[i]);
  return r;
}

static int fs__send_signal(struct forkserver *fs, int sig) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int r;

  actor__fs_pack_begin(&sb, &pk);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, ACTOR__FS_SIGNAL);
  msgpack_pack_uint32(&pk, fs->id);
  msgpack_pack_int(&pk, sig);
  r = fs__queue(fs->srv, &sb, NULL, 0);
  return r ? r : fs__flush(fs->srv);
}

static int fs_signal(void *st, int how) {
  struct forkserver *fs = st;
  if (fs->srv == NULL || fs->srv->dead || fs->exited)
    return -ESRCH;
  return fs__send_signal(fs, how == ACTOR__SIG_KILL ? SIGKILL : SIGTERM);
}

static void fs_close(void *st) {
  struct forkserver *fs = st;
  struct fs_server *s = fs->srv;

  if (fs->closing)
    return;
  fs->closing = 1;
  if (s != NULL) {
    /* Abandoned, or a failed start: the server keeps the child until it
     * ends, and reaps it; we stop listening for it. */
    if (!fs->exited && !s->dead)
      fs__send_signal(fs, SIGKILL);
    actor__idmap_del(&s->actors, fs->id);
    fs->srv = NULL;
    fs__srv_maybe_free(s);
  }
  /* What the child wrote last comes before its end (bounded: a
   * grandchild may hold the pipe). */
  fs->pending += actor__capture_finish(&fs->out[0]);
  fs->pending += actor__capture_finish(&fs->out[1]);
  if (fs->pending == 0)
    actor__backend_closed(fs->a);
}

const struct actor__backend_v2 actor__backend_forkserver = {
    {
        2,
        "forkserver",
        sizeof(struct forkserver),
        fs_available,
        fs_start,
        fs_signal,
        fs_close,
    },
    sizeof(struct fs_rt),
    fs_rt_init,
    fs_rt_close,
};

/* ---- the public configuration (actor.h) ----------------------------------------- */

static int fs__config(actor_rt *rt, struct fs_rt **out) {
  int r = actor__rt_backend_state(rt, &actor__backend_forkserver.ops,
                                  (void **)out);
  if (r)
    return r;
  if ((*out)->cur != NULL) {
    actor__seterr(rt, "forkserver: the fork server is running; its "
                      "configuration applies from its next start");
  }
  return 0;
}

static int fs__push(char ***vec, size_t *n, const char *s) {
  if (s == NULL || *s == '\0')
    return -EINVAL;
  return actor__vec_push(vec, n, s);
}

int actor_rt_forkserver_preload(actor_rt *rt, const char *module) {
  struct fs_rt *fr;
  int r = fs__config(rt, &fr);
  return r ? r : fs__push(&fr->modules, &fr->nmodules, module);
}

int actor_rt_forkserver_load(actor_rt *rt, const char *lib) {
  struct fs_rt *fr;
  int r = fs__config(rt, &fr);
  return r ? r : fs__push(&fr->libs, &fr->nlibs, lib);
}

int actor_rt_forkserver_add_path(actor_rt *rt, const char *dir) {
  struct fs_rt *fr;
  int r = fs__config(rt, &fr);
  return r ? r : fs__push(&fr->paths, &fr->npaths, dir);
}

int actor_rt_forkserver_start(actor_rt *rt, int python) {
  struct fs_rt *fr;
  struct fs_server *s;
  int r = actor__rt_backend_state(rt, &actor__backend_forkserver.ops,
                                  (void **)&fr);
  if (r)
    return r;
  if (python)
    fr->python = 1;
  return fs__server(fr, python, &s);
}

int actor_rt_forkserver_pid(actor_rt *rt) {
  struct fs_rt *fr = actor__rt_backend_peek(rt, &actor__backend_forkserver.ops);
  return fr != NULL && fr->cur != NULL ? fr->cur->pid : 0;
}
