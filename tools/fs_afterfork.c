/* actor-forkserver: what CPython's PyOS_AfterFork_Child leaves undone when
 * the fork was made from a thread other than the main one.
 *
 * CPython 3.14 routes every signal to the main thread through
 * _PyRuntime.main_tstate: the C handler, on whatever thread the kernel
 * picked, sets the "signals pending" bit of that thread state's eval
 * breaker (_PyEval_SignalReceived, Python/ceval_gil.c), and the thread
 * that owns it runs the Python handler at its next check.  The fork server
 * forks from a worker thread, which becomes the child's main thread
 * (threading.main_thread() is it, _PyRuntime.main_thread names it), but
 * PyOS_AfterFork_Child does not move main_tstate: it still points at the
 * server's main-thread state, which no thread of the child runs.  A
 * SIGINT that the kernel gives to another thread of the child (the
 * relay, the inbox's watcher), or that arrives while the main thread runs
 * bytecode rather than a blocking call that EINTR would end, then sets a
 * bit that nothing reads: the child never raises KeyboardInterrupt.
 * Measured with a pure-Python os.fork() from a thread: a SIGINT sent to a
 * helper thread of the child was not acted on for the 2 s the busy main
 * thread was watched; with main_tstate moved, 5 ms.  (docs/backends.md,
 * "Signals in a forked Python child".)
 *
 * The field is internal but sits in the head of _PyRuntimeState that
 * CPython keeps stable within a minor version for out-of-process tools;
 * this file alone is built with Py_BUILD_CORE to reach it. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include "internal/pycore_runtime.h"

#include "fs_afterfork.h"

void actor__fs_after_fork_child(void) {
  PyThreadState *ts = PyThreadState_Get();
  _PyRuntime.main_thread = PyThread_get_thread_ident();
  _PyRuntime.main_tstate = ts;
}
