#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz harnesses (fuzz/corpus/<harness>/).

    python3 fuzz/make_corpus.py        (from the top of the tree)

Standard library only: the msgpack below is encoded by hand, so the seeds
are exactly the bytes written here.  Each seed is named after what it
exercises.  Inputs that fuzzing finds are added next to them by hand
(named found-<what>), and this script leaves those alone.

fuzz/known/<harness>/ holds reproducers of library defects that are not
fixed yet (named after the issue item: item4-...).  The corpus tests do
not replay them; each moves into corpus/ in the commit that fixes it.

Input layouts (see the harnesses):
  fuzz_parent     flags byte, re-entrancy flags byte, then bytes "from a
                  child" (a seed written (flags, bytes) has re-entrancy 0)
  fuzz_child      flags byte, then bytes "from a parent"
  fuzz_pyconvert  one msgpack value (or not)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- msgpack, by hand -------------------------------------------------------


def pk(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v <= 0xFF:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v <= 0xFFFF:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v <= 0xFFFFFFFF:
            return b"\xce" + struct.pack(">I", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        if v >= -0x80:
            return b"\xd0" + struct.pack(">b", v)
        if v >= -0x8000:
            return b"\xd1" + struct.pack(">h", v)
        if v >= -0x80000000:
            return b"\xd2" + struct.pack(">i", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return strhdr(len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n <= 0xFF:
            return b"\xc4" + bytes([n]) + v
        if n <= 0xFFFF:
            return b"\xc5" + struct.pack(">H", n) + v
        return b"\xc6" + struct.pack(">I", n) + v
    if isinstance(v, Raw):
        return v.b
    if isinstance(v, (list, tuple)):
        return arrhdr(len(v)) + b"".join(pk(x) for x in v)
    if isinstance(v, dict):
        return maphdr(len(v)) + b"".join(pk(k) + pk(x) for k, x in v.items())
    raise TypeError(type(v))


class Raw:
    """Bytes inserted as they are (a value encoded some other way)."""

    def __init__(self, b):
        self.b = b


def strhdr(n):
    if n <= 31:
        return bytes([0xA0 | n])
    if n <= 0xFF:
        return b"\xd9" + bytes([n])
    if n <= 0xFFFF:
        return b"\xda" + struct.pack(">H", n)
    return b"\xdb" + struct.pack(">I", n)


def arrhdr(n):
    if n <= 15:
        return bytes([0x90 | n])
    if n <= 0xFFFF:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def maphdr(n):
    if n <= 15:
        return bytes([0x80 | n])
    if n <= 0xFFFF:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def nested(depth, inner=None):
    return Raw(b"\x91" * depth + pk(inner))


# ---- frames and messages (docs/protocol.md) ---------------------------------

HELLO, CALL, RETURN, ERROR, ITEM, END, CANCEL, STOP = range(8)


def frame(body):
    return struct.pack(">I", len(body)) + body


def msg(*elems):
    return frame(pk(list(elems)))


def hello(version=1, backend="fdpeer", name="fuzz"):
    return msg(HELLO, 0, version, 4242, backend, name)


# ---- fuzz_parent: flags, then bytes from a child ----------------------------
P_HELLO, P_SMALL, P_CALL2, P_SEND, P_CANCEL, P_STOP, P_SPLIT, P_KILL = (
    1 << i for i in range(8))
(RE_DONE_SEND, RE_DONE_CANCEL, RE_DONE_START, RE_ITEM_STOP, RE_ITEM_KILL,
 RE_ITEM_CANCEL, RE_HELLO_START, RE_EXIT_CLOSE) = (1 << i for i in range(8))


def parent_seeds():
    big = b"\xab" * 2000
    return {
        "return-both-calls": (P_HELLO | P_CALL2,
                              msg(RETURN, 1, 5) + msg(ITEM, 2, 7) +
                              msg(END, 2) + msg(RETURN, 2, [1, "two"])),
        "own-hello-then-return": (0, hello() + msg(RETURN, 1, None)),
        "error-with-traceback": (P_HELLO | P_CALL2,
                                 msg(ERROR, 1, "ValueError", "bad value: 42",
                                     "Traceback ...\nValueError\n") +
                                 msg(ERROR, 2, "libactor.Cancelled",
                                     "cancelled", "(no traceback)")),
        "error-nil-strings": (P_HELLO, msg(ERROR, 1, None, None, None)),
        "stream-then-host-acts": (P_HELLO | P_CALL2 | P_SEND | P_CANCEL,
                                  msg(ITEM, 1, 1) + msg(ITEM, 1, 2) +
                                  msg(ITEM, 2, "x") + msg(END, 1)),
        "stop-while-streaming": (P_HELLO | P_STOP,
                                 msg(ITEM, 1, [1, 2, 3]) * 3),
        "killed-after-hello": (P_HELLO | P_KILL, b""),
        "killed-mid-frame": (P_HELLO | P_KILL,
                             frame(pk([RETURN, 1, "abcdef"]))[:7]),
        "oversized-return": (P_HELLO | P_SMALL,
                             frame(pk([RETURN, 1, big])) + msg(RETURN, 1, 0)),
        "oversized-item": (P_HELLO | P_SMALL | P_CALL2,
                           frame(pk([ITEM, 2, big])) + msg(RETURN, 1, 0)),
        "oversized-unattributed": (P_HELLO | P_SMALL,
                                   struct.pack(">I", 5000) + b"\xc1" * 64),
        "oversized-before-hello": (P_SMALL, frame(pk([RETURN, 1, big]))),
        "length-4gib": (P_HELLO, b"\xff\xff\xff\xff" + b"\x93\x02\x01" +
                        b"\x00" * 40),
        "garbage-frame": (P_HELLO, frame(b"\xc1\xc1\xc1")),
        "truncated-frame-then-eof": (P_HELLO,
                                     frame(pk([RETURN, 1, "hello"]))[:-2]),
        "hello-twice": (P_HELLO, hello()),
        "bad-version": (0, hello(version=999)),
        "message-before-hello": (0, msg(RETURN, 1, 1)),
        "unknown-kind": (P_HELLO, msg(99, 1)),
        "wrong-direction-call": (P_HELLO, msg(CALL, 5, "x", None)),
        "wrong-direction-stop": (P_HELLO, msg(STOP, 0)),
        "return-unknown-id": (P_HELLO, msg(RETURN, 77, 1) + msg(RETURN, 1, 2)),
        "return-twice": (P_HELLO, msg(RETURN, 1, 1) + msg(RETURN, 1, 2)),
        "id-zero-return": (P_HELLO, msg(RETURN, 0, 1)),
        "extra-elements": (P_HELLO, msg(RETURN, 1, 1, "future", 3)),
        "nested-40": (P_HELLO, msg(RETURN, 1, nested(40))),
        "nested-600": (P_HELLO, msg(RETURN, 1, nested(600))),
        "split-big-return": (P_HELLO | P_SPLIT | P_CALL2,
                             msg(RETURN, 1, b"\x00" * 300) +
                             msg(ITEM, 2, b"\x01" * 300) + msg(RETURN, 2, 1)),
        "count-beyond-data": (P_HELLO, frame(b"\x93\x02\x01\xdd\xff\xff\xff\xff")),
        "trailing-bytes-in-frame": (P_HELLO, frame(pk([RETURN, 1, 1]) + b"\x00")),
        "reentrant-done-send": (P_HELLO | P_CALL2, RE_DONE_SEND | RE_DONE_CANCEL,
                                msg(RETURN, 1, 1) + msg(ITEM, 2, 2) +
                                msg(RETURN, 2, 3)),
        "reentrant-item-stop": (P_HELLO, RE_ITEM_STOP | RE_ITEM_CANCEL,
                                msg(ITEM, 1, 1) + msg(ITEM, 1, 2) +
                                msg(RETURN, 1, 3)),
        "reentrant-item-kill": (P_HELLO | P_CALL2, RE_ITEM_KILL,
                                msg(ITEM, 2, 1) + msg(RETURN, 1, 1)),
        "reentrant-starts": (P_HELLO, RE_HELLO_START | RE_DONE_START,
                             msg(RETURN, 1, 1) + msg(RETURN, 2, 2) +
                             msg(ITEM, 3, 3) + msg(RETURN, 3, 3)),
        "reentrant-exit-close": (P_HELLO | P_KILL, RE_EXIT_CLOSE, b""),
    }


# ---- fuzz_child: flags, then bytes from a parent ----------------------------
C_SPLIT, C_STOP, C_OWNED = 1, 2, 4


def child_seeds():
    big = b"\xab" * 2000
    return {
        "echo": (0, msg(CALL, 1, "echo", [1, 2])),
        "stream": (C_OWNED, msg(CALL, 1, "stream", ["x"])),
        "duplex": (0, msg(CALL, 1, "duplex", None) + msg(ITEM, 1, 5) +
                   msg(ITEM, 1, 6) + msg(END, 1)),
        "duplex-cancel": (C_SPLIT, msg(CALL, 1, "duplex", None) +
                          msg(ITEM, 1, 5) + msg(CANCEL, 1)),
        "later-cancel": (0, msg(CALL, 1, "later", None) + msg(CANCEL, 1)),
        "later-stop": (C_STOP, msg(CALL, 1, "later", None) +
                       msg(CALL, 2, "duplex", None)),
        "fail-give-up-nosuch": (0, msg(CALL, 1, "fail", None) +
                                msg(CALL, 2, "give_up", None) +
                                msg(CALL, 3, "nosuch", None)),
        "id-in-use": (0, msg(CALL, 1, "later", None) +
                      msg(CALL, 1, "echo", 1)),
        "oversized-call": (0, frame(pk([CALL, 1, "echo", big])) +
                           msg(CALL, 2, "echo", 2)),
        "oversized-item": (0, msg(CALL, 1, "duplex", None) +
                           frame(pk([ITEM, 1, big])) + msg(END, 1)),
        "oversized-unattributed": (0, struct.pack(">I", 9000) + b"\xc1" * 64),
        "garbage": (0, frame(b"\xc1\xc1")),
        "stop-in-stream": (0, msg(CALL, 1, "later", None) + msg(STOP, 0) +
                           msg(CALL, 2, "echo", 1)),
        "call-id-zero": (0, msg(CALL, 0, "echo", 1)),
        "wrong-direction-return": (0, msg(RETURN, 1, 1)),
        "unknown-kind": (0, msg(42, 1)),
        "nested-40": (0, msg(CALL, 1, "echo", nested(40))),
        "nested-600": (0, msg(CALL, 1, "echo", nested(600))),
        "item-for-unknown-call": (0, msg(ITEM, 9, 1) + msg(END, 9) +
                                  msg(CANCEL, 9)),
        "truncated-then-eof": (C_OWNED, msg(CALL, 1, "echo", 1)[:-1]),
        "many-calls": (C_SPLIT, b"".join(msg(CALL, i, "stream", i)
                                         for i in range(1, 60))),
    }


# ---- fuzz_pyconvert: one msgpack value --------------------------------------


def pyconvert_seeds():
    return {
        "nil": pk(None),
        "bools": pk([True, False]),
        "ints": pk([0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1,
                    -1, -32, -33, -128, -129, -2**31, -2**63]),
        "floats": pk([0.5, -1e300, float("inf")]),
        "float32": b"\xca" + struct.pack(">f", 1.5),
        "nan": b"\xcb" + struct.pack(">d", float("nan")),
        "str": pk(["", "a", "é€😀", "x" * 40, "y" * 300]),
        "str-bad-utf8": b"\xa2\xc3\x28",
        "bin": pk([b"", b"\x00\xff", b"z" * 300]),
        "map": pk({"a": 1, 2: [3, 4], None: {"x": b"y"}}),
        "map-dup-keys": Raw(maphdr(3) + pk(1) + pk("a") + pk(True) + pk("b") +
                            pk(1.0) + pk("c")).b,
        "map-array-key": Raw(maphdr(1) + pk([1]) + pk(2)).b,
        "nested-32": nested(32).b,
        "nested-33": nested(33).b,
        "nested-512": nested(512).b,
        "nested-513": nested(513).b,
        "ext": b"\xd4\x01\x02",
        "timestamp": b"\xd6\xff" + struct.pack(">I", 1700000000),
        "trailing": pk(1) + b"\x00",
        "truncated": pk([1, 2, 3])[:-1],
        "empty": b"",
        "never-used-byte": b"\xc1",
        "array-4g-announced": b"\xdd\xff\xff\xff\xff",
        "str-4g-announced": b"\xdb\xff\xff\xff\xff",
    }


# Reproducers of defects not fixed yet (see the docstring).
def known_parent():
    return {
        # issue 7 item 4: memcpy(dst, NULL, 0) for an ERROR with empty strings
        "item4-error-empty-strings": (P_HELLO, msg(ERROR, 1, "", "", "")),
    }


def write(harness, seeds, where="corpus"):
    d = os.path.join(HERE, where, harness)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    for name, data in seeds.items():
        if isinstance(data, tuple) and len(data) == 3:
            data = bytes([data[0], data[1]]) + data[2]
        elif isinstance(data, tuple):
            data = bytes([data[0]]) + (b"\x00" if harness == "fuzz_parent"
                                       else b"") + data[1]
        if not name.startswith("item"):
            name = "seed-" + name
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (harness, len(seeds)))


if __name__ == "__main__":
    write("fuzz_parent", parent_seeds())
    write("fuzz_child", child_seeds())
    write("fuzz_pyconvert", pyconvert_seeds())
    write("fuzz_parent", known_parent(), "known")
