/* Fault scenarios shared by the backends' tests (tests/faults.c). */
#ifndef LIBACTOR_TESTS_FAULTS_H
#define LIBACTOR_TESTS_FAULTS_H

#include "support.h"

/* A call record that also counts DONEs and events after DONE. */
struct fcall {
  struct ts_call r;
  int dones;
  int after_done;
};
void fcall_cb(actor_call *c, int ev, int status, const char *d, size_t n,
              void *arg);
/* Call fn with [v]. */
void fcall_start(actor *a, const char *fn, int64_t v, struct fcall *f);
/* Exactly one DONE, nothing after it, with this status (and a sentence). */
void fcall_check(struct fcall *f, int status);
/* The bystander still answers add(2, 40). */
void bystander_ok(struct ts *t, actor *b);

/* Spawns, with exit/hello recorders, an actor of `kind`: "actor" (serving
 * add, block [ms], count [n] (a stream), nap [ms] (cancellable), as the
 * test helper of that name does) or "rogue_no_hello" (never says HELLO). */
typedef actor *(*fault_spawn_fn)(struct ts *t, const char *kind,
                                 struct ts_exit *ex);
void fault_sigkill_before_hello(fault_spawn_fn spawn);
void fault_sigkill_mid_call(fault_spawn_fn spawn);
void fault_sigkill_mid_stream(fault_spawn_fn spawn);
void fault_sigkill_while_handling_cancel(fault_spawn_fn spawn);

#endif
