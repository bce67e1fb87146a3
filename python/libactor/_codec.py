"""Python <-> msgpack: the same mapping as the actor side's (src/py/convert.c).

Pure Python, so that the package needs nothing Debian may not have
(python3-msgpack is not guaranteed, and its mapping differs: it decodes
arrays as tuples only on request, accepts ext types, has other limits).
tests/test_values.py checks this module against libactor_child's converter
in both directions, through a real actor.

Python -> msgpack (pack)
  None, bool (before int), int in [-2**63, 2**64-1] (smallest encoding;
  outside: OverflowError naming the bits it needs), float (float64), str
  (UTF-8; a lone surrogate is UnicodeEncodeError), bytes/bytearray (bin),
  list/tuple (array), dict (map, in order).  Subclasses pack as their base
  type.  Anything else: TypeError "cannot convert <type> to msgpack".
  Nested deeper than 512 containers: TooDeep (a ValueError).
msgpack -> Python (unpack)
  nil, bools, ints, float32/64, str, bin -> bytes, array -> list, map ->
  dict.  ext: TypeError; an array or map as a map key: TypeError; malformed,
  truncated or trailing bytes, deeper than 512: ValueError (TooDeep for
  depth).
"""
import struct

MAX_DEPTH = 512

__all__ = ["pack", "unpack", "TooDeep", "MAX_DEPTH"]  # and pack_args


class TooDeep(ValueError):
    """A value nested deeper than libactor's limit (512 arrays/maps)."""


_pack_d = struct.Struct(">Bd").pack
_pack_B = struct.Struct(">BB").pack
_pack_H = struct.Struct(">BH").pack
_pack_I = struct.Struct(">BI").pack
_pack_Q = struct.Struct(">BQ").pack
_pack_b = struct.Struct(">Bb").pack
_pack_h = struct.Struct(">Bh").pack
_pack_i = struct.Struct(">Bi").pack
_pack_q = struct.Struct(">Bq").pack
_LIMIT32 = 0xFFFFFFFF


def _qualname(o):
    t = type(o)
    mod = t.__module__
    if mod in ("builtins", None):
        return t.__qualname__
    return "%s.%s" % (mod, t.__qualname__)


def _too_long(what, n):
    return ValueError(
        "%s of length %d is too long for msgpack (limit 2**32-1)" % (what, n))


def _pack_int(v, out):
    if v >= 0:
        if v < 0x80:
            out.append(v)
        elif v <= 0xFF:
            out += _pack_B(0xCC, v)
        elif v <= 0xFFFF:
            out += _pack_H(0xCD, v)
        elif v <= 0xFFFFFFFF:
            out += _pack_I(0xCE, v)
        elif v <= 0xFFFFFFFFFFFFFFFF:
            out += _pack_Q(0xCF, v)
        else:
            raise OverflowError(
                "int too large to convert to msgpack (64-bit limit): %d bits"
                % v.bit_length())
    elif v >= -32:
        out.append(v & 0xFF)
    elif v >= -0x80:
        out += _pack_b(0xD0, v)
    elif v >= -0x8000:
        out += _pack_h(0xD1, v)
    elif v >= -0x80000000:
        out += _pack_i(0xD2, v)
    elif v >= -0x8000000000000000:
        out += _pack_q(0xD3, v)
    else:
        raise OverflowError(
            "int too large to convert to msgpack (64-bit limit): %d bits"
            % ((~v).bit_length() + 1))


def _header(n, fix, fixmax, c16, c32, what, out):
    if n <= fixmax:
        out.append(fix | n)
    elif n <= 0xFFFF:
        out += _pack_H(c16, n)
    elif n <= _LIMIT32:
        out += _pack_I(c32, n)
    else:
        raise _too_long(what, n)


def _pack(o, out, depth):
    t = type(o)
    # Exact types first (the common case), then subclasses.
    if o is None:
        out.append(0xC0)
    elif o is True:
        out.append(0xC3)
    elif o is False:
        out.append(0xC2)
    elif t is int:
        if 0 <= o < 0x80:
            out.append(o)
        else:
            _pack_int(o, out)
    elif t is str:
        b = o.encode("utf-8")
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += _pack_B(0xD9, n)
        elif n <= 0xFFFF:
            out += _pack_H(0xDA, n)
        elif n <= _LIMIT32:
            out += _pack_I(0xDB, n)
        else:
            raise _too_long("str", n)
        out += b
    elif t is float:
        out += _pack_d(0xCB, o)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise _too_deep_to()
        _header(len(o), 0x90, 15, 0xDC, 0xDD, t.__name__, out)
        depth += 1
        for x in o:
            # A small int inline: the commonest argument, and a Python call
            # saved per element.
            if type(x) is int and 0 <= x < 0x80:
                out.append(x)
            else:
                _pack(x, out, depth)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise _too_deep_to()
        _header(len(o), 0x80, 15, 0xDE, 0xDF, "dict", out)
        for k, v in o.items():
            _pack(k, out, depth + 1)
            _pack(v, out, depth + 1)
    elif t is bytes or t is bytearray or isinstance(o, (bytes, bytearray)):
        n = len(o)
        if n <= 0xFF:
            out += _pack_B(0xC4, n)
        elif n <= 0xFFFF:
            out += _pack_H(0xC5, n)
        elif n <= _LIMIT32:
            out += _pack_I(0xC6, n)
        else:
            raise _too_long(t.__name__, n)
        out += o
    elif isinstance(o, bool):
        _pack(bool(o), out, depth)
    elif isinstance(o, int):
        _pack_int(int.__index__(o), out)
    elif isinstance(o, float):
        _pack(float.__float__(o), out, depth)
    elif isinstance(o, str):
        _pack(str.__str__(o), out, depth)
    elif isinstance(o, (list, tuple)):
        # The underlying storage, not an overridden __iter__.
        _pack(list.copy(o) if isinstance(o, list) else tuple.__getitem__(
            o, slice(None)), out, depth)
    elif isinstance(o, dict):
        _pack(dict(dict.items(o)), out, depth)
    else:
        raise TypeError("cannot convert %s to msgpack" % _qualname(o))


def pack_args(args):
    """pack() of a call's positional arguments (a tuple): the same bytes,
    with the commonest elements (small ints, short ASCII str, None) encoded
    inline; anything else goes the general way."""
    n = len(args)
    if n > 15:
        return pack(args)
    out = bytearray((0x90 | n,))
    for x in args:
        t = type(x)
        if t is int and -32 <= x < 0x80:
            out.append(x & 0xFF)
        elif t is str and len(x) < 32 and x.isascii():
            out.append(0xA0 | len(x))  # ASCII: as many bytes as characters
            out += x.encode()
        elif x is None:
            out.append(0xC0)
        else:
            return pack(args)
    return bytes(out)


def _too_deep_to():
    return TooDeep(
        "value nested too deeply for msgpack (more than %d levels, libactor's"
        " limit; a container that contains itself?)" % MAX_DEPTH)


def pack(obj):
    """Encode one value; raises TypeError, OverflowError, ValueError."""
    out = bytearray()
    try:
        _pack(obj, out, 0)
    except RecursionError:
        raise _too_deep_to() from None
    return bytes(out)


# ---- decoding ------------------------------------------------------------

_unpack_from = struct.unpack_from


def _truncated():
    return ValueError("malformed msgpack data: truncated (a count or length "
                      "exceeds the data)")


class _In:
    __slots__ = ("b", "p", "end")


def _need(i, n):
    if n > i.end - i.p:
        raise _truncated()


def _unpack(i, depth):
    b = i.b
    if i.p >= i.end:
        raise _truncated()
    c = b[i.p]
    i.p += 1
    if c < 0x80:
        return c
    if c >= 0xE0:
        return c - 0x100
    if 0xA0 <= c <= 0xBF:
        return _str(i, c & 0x1F)
    # Containers are decoded here, not in helpers: one Python frame per
    # level keeps 512 levels well inside the default recursion limit.
    if 0x90 <= c <= 0x9F or c == 0xDC or c == 0xDD:
        n = c & 0x0F if c <= 0x9F else _len(i, c - 0xDC + 1)
        if depth >= MAX_DEPTH:
            raise _too_deep_from()
        _need(i, n)  # each element takes at least one byte
        return [_unpack(i, depth + 1) for _ in range(n)]
    if 0x80 <= c <= 0x8F or c == 0xDE or c == 0xDF:
        n = c & 0x0F if c <= 0x8F else _len(i, c - 0xDE + 1)
        if depth >= MAX_DEPTH:
            raise _too_deep_from()
        _need(i, 2 * n)
        d = {}
        for _ in range(n):
            _key_ok(i)
            k = _unpack(i, depth + 1)
            d[k] = _unpack(i, depth + 1)
        return d
    if c == 0xC0:
        return None
    if c == 0xC2:
        return False
    if c == 0xC3:
        return True
    fmt = _FIXED.get(c)
    if fmt is not None:
        n = struct.calcsize(fmt)
        _need(i, n)
        v = _unpack_from(fmt, b, i.p)[0]
        i.p += n
        return v
    if c in (0xD9, 0xDA, 0xDB):
        return _str(i, _len(i, c - 0xD9))
    if c in (0xC4, 0xC5, 0xC6):
        n = _len(i, c - 0xC4)
        _need(i, n)
        v = bytes(b[i.p:i.p + n])
        i.p += n
        return v
    if c in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xC7, 0xC8, 0xC9):
        if c >= 0xD4:
            _need(i, 1)
            typ = _unpack_from(">b", b, i.p)[0]
        else:
            n = 1 << (c - 0xC7)
            _need(i, n + 1)
            typ = _unpack_from(">b", b, i.p + n)[0]
        raise TypeError("msgpack ext type %d is not supported" % typ)
    raise ValueError("malformed msgpack data: byte 0x%02x starts no value" % c)


_FIXED = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I",
          0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_LENFMT = (">B", ">H", ">I")


def _len(i, k):
    fmt = _LENFMT[k]
    n = 1 << k
    _need(i, n)
    v = _unpack_from(fmt, i.b, i.p)[0]
    i.p += n
    return v


def _str(i, n):
    _need(i, n)
    s = str(i.b[i.p:i.p + n], "utf-8")
    i.p += n
    return s


def _too_deep_from():
    return TooDeep("msgpack value nested deeper than %d levels (libactor's"
                   " limit)" % MAX_DEPTH)


def _key_ok(i):
    if i.p >= i.end:
        return
    c = i.b[i.p]
    if 0x90 <= c <= 0x9F or c in (0xDC, 0xDD):
        raise TypeError("unhashable msgpack map key: array (a dict key must "
                        "be hashable)")
    if 0x80 <= c <= 0x8F or c in (0xDE, 0xDF):
        raise TypeError("unhashable msgpack map key: map (a dict key must "
                        "be hashable)")


# The values that are one byte long, by that byte (None where a byte is
# not a whole value, or starts an empty container: those take the general
# path, which makes a new list or dict each time).
_NOT_ONE = object()
_ONE = tuple(
    b if b < 0x80 else b - 0x100 if b >= 0xE0 else
    {0xC0: None, 0xC2: False, 0xC3: True, 0xA0: ""}.get(b, _NOT_ONE)
    for b in range(256))


def unpack(data):
    """Decode exactly one value filling `data` (bytes-like)."""
    if len(data) == 1:
        v = _ONE[data[0]]
        if v is not _NOT_ONE:
            return v
    return _unpack_all(data)


def _unpack_all(data):
    """unpack() without the one-byte table."""
    i = _In()
    i.b = data
    i.p = 0
    i.end = len(data)
    if i.end == 0:
        raise ValueError("malformed msgpack data: empty")
    v = _unpack(i, 0)
    if i.p != i.end:
        raise ValueError("malformed msgpack data: %d trailing bytes after the"
                         " value" % (i.end - i.p))
    return v
