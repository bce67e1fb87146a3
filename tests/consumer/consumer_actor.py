"""A Python actor for the installed-consumer test (consumer.c)."""
import libactor_child as actor


def add(a, b):
    return a + b


def main():
    actor.serve({"add": add})
