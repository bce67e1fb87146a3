"""An actor module for the warm pool's preload (tests/test_subint_pool.c).

SEEN_NAME is libactor_child.name when this module was imported: "" when
the pool imported it ahead of the actor (actor_subint_pool_preload), the
actor's name when the actor's start did."""
import libactor_child as actor

SEEN_NAME = actor.name


def seen():
    return "%s|%s" % (SEEN_NAME, actor.name)


def main():
    actor.serve({"seen": seen})
