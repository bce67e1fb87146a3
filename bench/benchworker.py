"""benchworker — the Python actor of the benchmarks (bench/runner.py).

The same functions as the C actor (bench/actorbench.c --actor): a no-op
for round trips and a stream of small items."""
import libactor_child as actor


def noop():
    return None


def stream(n):
    """Streams n small integers, then returns nil."""
    for i in range(n):
        yield i


def main():
    actor.serve({"noop": noop, "stream": stream})
