#ifndef ACTOR_FS_AFTERFORK_H
#define ACTOR_FS_AFTERFORK_H
/* In a child forked from the fork server's worker thread, right after
 * PyOS_AfterFork_Child, with the GIL held: make this thread the one
 * CPython's signal handling reaches (tools/fs_afterfork.c says why). */
void actor__fs_after_fork_child(void);
#endif
