"""pyworker — a Python actor for examples/pyhost.c.

The same code runs in a sub-interpreter (backend "subint") and in a child
process (backend "subproc", through actor-pyhost)."""
import libactor_child as actor


def add(a, b):
    return a + b


def squares(n):
    """Streams n squares, then returns their count."""
    for i in range(n):
        yield i * i
    return n


def whoami():
    return {"name": actor.name, "backend": actor.backend}


def main():
    actor.serve({"add": add, "squares": squares, "whoami": whoami})
