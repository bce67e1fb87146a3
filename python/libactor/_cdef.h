/* Generated from include/libactor/actor.h by cmake/cdef.cmake: do not edit.
   cmake --build BUILD --target cdef-update rewrites it. */
 unsigned actor_version(void);
 const char *actor_version_string(void);
typedef enum {
  ACTOR_EBADFRAME = -30001, ACTOR_E2BIG = -30002, ACTOR_EBADKIND = -30003, ACTOR_ENOFUNC = -30004, ACTOR_EVERSION = -30005, ACTOR_EREMOTE = -30006, ACTOR_ECLOSED = -30007, ACTOR_ENOHELLO = -30008, ACTOR_ECANCELED = -30009, ACTOR_ENOBACKEND = -30010, ACTOR_EUNAVAIL = -30011, ACTOR_EBLOCKED = -30012, ACTOR_ESTATE = -30013, ACTOR_ENOTCHILD = -30014, ACTOR_ETYPE = -30015, ACTOR_EABANDONED = -30016, ACTOR_EKILLED = -30017, ACTOR_EPYTHON = -30018, ACTOR_EDEPTH = -30019,
  ACTOR_ERRNO_MAX = -30000
} actor_errno_t;
 const char *actor_strerror(int err);
 const char *actor_err_name(int err);
typedef enum {
  ACTOR_LOG_ERROR = 0,
  ACTOR_LOG_WARN = 1,
  ACTOR_LOG_INFO = 2,
  ACTOR_LOG_DEBUG = 3
} actor_log_level;
typedef void (*actor_log_cb)(int level, const char *msg, void *arg);
struct uv_loop_s;
typedef struct actor_rt actor_rt;
typedef struct actor_opts actor_opts;
typedef struct actor actor;
typedef struct actor_call actor_call;
typedef struct actor_child actor_child;
typedef struct actor_ctx actor_ctx;
 int actor_rt_new(actor_rt **rtp, struct uv_loop_s *loop);
 struct uv_loop_s *actor_rt_loop(actor_rt *rt);
enum { ACTOR_RUN_DEFAULT = 0, ACTOR_RUN_ONCE = 1, ACTOR_RUN_NOWAIT = 2 };
 int actor_rt_run(actor_rt *rt, int mode);
 int actor_rt_backend_fd(actor_rt *rt);
 int actor_rt_backend_timeout(actor_rt *rt);
 void actor_rt_set_log(actor_rt *rt, int level, actor_log_cb cb,
                                   void *arg);
 int actor_rt_set_max_frame(actor_rt *rt, size_t bytes);
 int actor_rt_set_max_queue(actor_rt *rt, size_t bytes);
typedef void (*actor_drain_cb)(actor *a, void *arg);
 void actor_rt_on_drain(actor_rt *rt, actor_drain_cb cb,
                                    void *arg);
 const char *actor_rt_errmsg(actor_rt *rt);
 size_t actor_rt_actor_count(actor_rt *rt);
typedef void (*actor_rt_close_cb)(actor_rt *rt, void *arg);
 int actor_rt_close(actor_rt *rt, actor_rt_close_cb cb, void *arg);
 int actor_rt_free(actor_rt *rt);
 int actor_rt_shutdown(actor_rt *rt);
 int actor_backend_available(const char *name, const char **why);
 const char *const *actor_backend_names(void);
enum {
  ACTOR_STDIO_INHERIT = 0,
  ACTOR_STDIO_DISCARD = 1,
  ACTOR_STDIO_CAPTURE = 2
};
 int actor_opts_new(actor_opts **op);
 void actor_opts_free(actor_opts *o);
 int actor_opts_set_backend(actor_opts *o, const char *backend);
 int actor_opts_set_program(actor_opts *o, const char *path);
 int actor_opts_add_arg(actor_opts *o, const char *arg);
 int actor_opts_add_env(actor_opts *o, const char *name_value);
 int actor_opts_clear_env(actor_opts *o);
 int actor_opts_set_cwd(actor_opts *o, const char *dir);
 int actor_opts_set_name(actor_opts *o, const char *name);
 int actor_opts_set_stdio(actor_opts *o, int fd, int mode);
 int actor_opts_set_deadlines(actor_opts *o, uint64_t hello_ms,
                                          uint64_t graceful_ms,
                                          uint64_t term_ms, uint64_t kill_ms);
typedef void (*actor_exit_cb)(actor *a, void *arg);
typedef void (*actor_hello_cb)(actor *a, int status, void *arg);
typedef void (*actor_output_cb)(actor *a, int fd, const char *line,
                                size_t len, void *arg);
 int actor_opts_on_exit(actor_opts *o, actor_exit_cb cb, void *arg);
 int actor_opts_on_hello(actor_opts *o, actor_hello_cb cb,
                                     void *arg);
 int actor_opts_on_output(actor_opts *o, actor_output_cb cb,
                                      void *arg);
 int actor_opts_set_entry(actor_opts *o, const char *entry);
 int actor_opts_add_path(actor_opts *o, const char *dir);
enum { ACTOR_SUBINT_ISOLATED = 0, ACTOR_SUBINT_LEGACY = 1 };
 int actor_opts_set_subint_mode(actor_opts *o, int mode);
 int actor_opts_set_c_entry(actor_opts *o, const char *lib_entry);
 int actor_opts_set_fork_subint(actor_opts *o, int on);
 int actor_rt_forkserver_preload(actor_rt *rt, const char *module);
 int actor_rt_forkserver_add_path(actor_rt *rt, const char *dir);
 int actor_rt_forkserver_load(actor_rt *rt, const char *lib);
 int actor_rt_forkserver_start(actor_rt *rt, int python);
 int actor_rt_forkserver_pid(actor_rt *rt);
enum {
  ACTOR_STATE_STARTING = 0,
  ACTOR_STATE_RUNNING = 1,
  ACTOR_STATE_STOPPING = 2,
  ACTOR_STATE_EXITED = 3
};
 int actor_spawn(actor_rt *rt, const actor_opts *o, actor **ap);
 int actor_stop(actor *a);
 int actor_kill(actor *a, int hard);
 int actor_state(const actor *a);
 size_t actor_queued(const actor *a);
 const char *actor_name(const actor *a);
 const char *actor_backend(const actor *a);
 int actor_pid(const actor *a);
 uint64_t actor_id(const actor *a);
 void actor_set_data(actor *a, void *data);
 void *actor_get_data(const actor *a);
 int actor_exit_status(const actor *a);
 int actor_exit_signal(const actor *a);
 int actor_exit_error(const actor *a);
 const char *actor_exit_reason(const actor *a);
enum { ACTOR_EV_ITEM = 1, ACTOR_EV_END = 2, ACTOR_EV_DONE = 3 };
typedef void (*actor_call_cb)(actor_call *c, int event, int status,
                              const char *data, size_t len, void *arg);
 int actor_call_start(actor *a, const char *fn, const void *args,
                            size_t args_len, actor_call_cb cb, void *arg,
                            actor_call **cp);
 int actor_call_send(actor_call *c, const void *item, size_t len);
 int actor_call_end(actor_call *c);
 int actor_call_cancel(actor_call *c);
 actor *actor_call_actor(const actor_call *c);
 const char *actor_call_fn(const actor_call *c);
 const char *actor_call_error_type(const actor_call *c);
 const char *actor_call_error_message(const actor_call *c);
 const char *actor_call_traceback(const actor_call *c);
typedef struct actor_evq actor_evq;
enum {
  ACTOR_EVQ_CALL = 1,
  ACTOR_EVQ_HELLO = 2,
  ACTOR_EVQ_EXIT = 3,
  ACTOR_EVQ_OUTPUT = 4
};
typedef struct actor_evq_event {
  int kind;
  int event;
  int status;
  int exit_status;
  int exit_signal;
  int reserved;
  void *handle;
  void *data;
  uint64_t actor_id;
  const char *bytes;
  size_t len;
  const char *error_type;
  const char *error_message;
  const char *traceback;
} actor_evq_event;
 int actor_evq_new(actor_evq **qp, actor_rt *rt, size_t limit);
 void actor_evq_free(actor_evq *q);
 int actor_evq_next(actor_evq *q, actor_evq_event *ev);
 size_t actor_evq_len(const actor_evq *q);
 size_t actor_evq_bytes(const actor_evq *q);
 void actor_evq_call_cb(actor_call *c, int event, int status,
                                    const char *data, size_t len, void *arg);
 void actor_evq_exit_cb(actor *a, void *arg);
 void actor_evq_hello_cb(actor *a, int status, void *arg);
 void actor_evq_output_cb(actor *a, int fd, const char *line,
                                      size_t len, void *arg);
 int actor_evq_call(actor_evq *q, actor *a, const char *fn,
                                const void *args, size_t args_len,
                                int spin_us, int timeout_ms,
                                actor_evq_event *ev, actor_call **cp);
 int actor_evq_wait(actor_evq *q, actor_call *c, int spin_us,
                                int timeout_ms, actor_evq_event *ev);
 int actor_subint_abandoned_count(void);
 int actor_subint_thread_count(void);
 int actor_subint_pool_set(int mode, int size);
 int actor_subint_pool_count(int mode);
 int actor_subint_pool_threads(void);
 int actor_subint_pool_preload(int mode, const char *const *paths,
                                           const char *const *modules);
 int actor_subint_fork_probe(int *blocked, char *evidence,
                                         size_t len);
typedef int (*actor_fn)(actor_ctx *x, const char *args, size_t len,
                        void *arg);
 int actor_child_new(actor_child **cp, struct uv_loop_s *loop);
 struct uv_loop_s *actor_child_loop(actor_child *c);
 const char *actor_child_name(actor_child *c);
 void actor_child_set_log(actor_child *c, int level,
                                      actor_log_cb cb, void *arg);
 int actor_child_register(actor_child *c, const char *name,
                                      actor_fn fn, void *arg);
typedef void (*actor_child_stop_cb)(actor_child *c, void *arg);
 void actor_child_on_stop(actor_child *c, actor_child_stop_cb cb,
                                      void *arg);
 int actor_child_start(actor_child *c);
 int actor_child_run(actor_child *c);
 void actor_child_stop(actor_child *c);
 void actor_child_free(actor_child *c);
 int actor_ctx_return(actor_ctx *x, const void *value, size_t len);
 int actor_ctx_error(actor_ctx *x, const char *type,
                                 const char *message, const char *traceback);
 int actor_ctx_yield(actor_ctx *x, const void *item, size_t len);
 int actor_ctx_end(actor_ctx *x);
typedef void (*actor_item_cb)(actor_ctx *x, const char *data, size_t len,
                              void *arg);
 void actor_ctx_on_item(actor_ctx *x, actor_item_cb cb, void *arg);
typedef void (*actor_cancel_cb)(actor_ctx *x, void *arg);
 void actor_ctx_on_cancel(actor_ctx *x, actor_cancel_cb cb,
                                      void *arg);
 int actor_ctx_cancelled(const actor_ctx *x);
 const char *actor_ctx_fn(const actor_ctx *x);
 actor_child *actor_ctx_child(const actor_ctx *x);
