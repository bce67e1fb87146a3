"""One Python <-> msgpack mapping, the actor side's: every value sent to an
actor's identity() comes back as libactor_child's converter decoded and
re-encoded it (host -> actor -> host), and what either side refuses is
refused the same way."""
import pytest

import libactor
from libactor import pack, unpack

VALUES = [None, True, False, 0, 1, -1, 127, 128, -32, -33, 255, 256, 65535,
          65536, 2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1,
          -2 ** 31, -2 ** 31 - 1, -2 ** 63, 0.0, 1.5, -2.25, float("inf"),
          "", "a", "é✓", "x" * 40, "y" * 300, "z" * 70000, b"", b"\x00\xff",
          bytearray(b"ba"), b"q" * 70000, [], [1, "a", None], {},
          {"a": 1, 2: [3]}, {"k": {"n": [{"x": b"y"}]}}, list(range(20)),
          {str(i): i for i in range(20)}]


def expect(v):
    if isinstance(v, bytearray):
        return bytes(v)
    return v


@pytest.mark.parametrize("backend", ["subint", "subproc"])
def test_values_round_trip_through_the_actor(rt, backend):
    from conftest import ACTORS, PATH
    a = rt.spawn(ACTORS, backend=backend, path=PATH)
    for v in VALUES:
        got = a.call("identity", v)
        assert got == expect(v) and type(got) is type(expect(v)), v
    assert a.call("identity", (1, (2, 3))) == [1, [2, 3]]  # tuple -> list
    assert type(a.call("identity", "s")) is str
    assert type(a.call("identity", b"s")) is bytes
    # Nesting: the arguments array is one level, so 511 more fit.
    assert a.call("identity", deep(511)) == deep(511)
    with pytest.raises(libactor.TooDeep):
        a.call("identity", deep(512))
    assert a.call("deep", 512) == deep(512)  # the actor's limit is ours
    with pytest.raises(libactor.TooDeepError) as ei:
        a.call("deep", 513)
    assert ei.value.name == "ACTOR_EDEPTH"
    # Refusals on the actor's side arrive as the call's error.
    with pytest.raises(libactor.RemoteError) as ei:
        a.call("big_int")
    assert ei.value.type == "OverflowError"
    assert "64-bit limit" in ei.value.remote_message
    with pytest.raises(libactor.RemoteError) as ei:
        a.call("a_set")
    assert ei.value.type == "TypeError"
    assert ei.value.remote_message == "cannot convert set to msgpack"


def deep(n):
    v = []
    for _ in range(n - 1):
        v = [v]
    return v


def test_refusals_on_the_host_side_match_the_actor_side():
    with pytest.raises(OverflowError, match="64-bit limit.: 65 bits"):
        pack(2 ** 64)
    with pytest.raises(OverflowError, match="65 bits"):
        pack(-2 ** 63 - 1)
    with pytest.raises(TypeError, match="^cannot convert set to msgpack$"):
        pack({1})
    with pytest.raises(TypeError, match="cannot convert complex"):
        pack([1j])
    with pytest.raises(libactor.TooDeep, match="512 levels"):
        pack(deep(513))
    pack(deep(512))
    loop = []
    loop.append(loop)
    with pytest.raises(libactor.TooDeep):
        pack(loop)
    with pytest.raises(UnicodeEncodeError):
        pack("\ud800")


def test_decoding_refusals():
    with pytest.raises(ValueError, match="empty"):
        unpack(b"")
    with pytest.raises(ValueError, match="truncated"):
        unpack(b"\x92\x01")
    with pytest.raises(ValueError, match="1 trailing bytes"):
        unpack(b"\x01\x02")
    with pytest.raises(ValueError, match="0xc1 starts no value"):
        unpack(b"\xc1")
    with pytest.raises(TypeError, match="ext type 5"):
        unpack(b"\xd4\x05\x00")
    with pytest.raises(TypeError, match="unhashable msgpack map key: array"):
        unpack(b"\x81\x90\x01")
    with pytest.raises(UnicodeDecodeError):
        unpack(b"\xa1\xff")
    with pytest.raises(libactor.TooDeep):
        unpack(b"\x91" * 512 + b"\x90")
    assert unpack(b"\x91" * 511 + b"\x90") == deep(512)
    assert unpack(b"\xca\x3f\xc0\x00\x00") == 1.5  # float32


def test_subclasses_pack_as_their_base_type():
    import enum

    class E(enum.IntEnum):
        A = 7

    class L(list):
        def __iter__(self):
            raise AssertionError("not called")
    assert unpack(pack(E.A)) == 7 and unpack(pack(L([1, 2]))) == [1, 2]
    assert unpack(pack(True)) is True


def test_the_call_path_shortcuts_encode_and_decode_as_the_codec_does():
    """Actor.call packs positional arguments with pack_args and decodes a
    one-byte reply by table: both must give what the general code gives."""
    from libactor import _codec
    cases = [(), (1, 2), (-32, 127), (-33, 128), ("", "a" * 31, "a" * 32),
             ("é",), (None, True, False), (1.5,), (b"x",), ([1],), ({},),
             tuple(range(15)), tuple(range(16)), (2 ** 64 - 1,), (E_INT(3),),
             ("x", {1, 2})]
    for args in cases:
        try:
            want = pack(args)
        except TypeError as e:
            with pytest.raises(TypeError, match=str(e)):
                _codec.pack_args(args)
            continue
        assert _codec.pack_args(args) == want, args
    for b in range(256):
        one = bytes((b,))
        try:
            want = _codec._unpack_all(one)
        except (ValueError, TypeError) as e:
            with pytest.raises(type(e)):
                unpack(one)
            continue
        got = unpack(one)
        assert got == want and type(got) is type(want), b


class E_INT(int):
    pass
