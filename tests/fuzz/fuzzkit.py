"""Shared by the fuzz tests: settings, random edits of a valid file, and the property they check.

The property is the same for every parser: it returns, or it raises one of jooci's own errors whose
message names the file; anything else (a ``UnicodeDecodeError``, a ``TypeError`` from a field of the
wrong type, a ``RecursionError``, a soundfile error) escapes and fails the test, and hypothesis
shrinks it to a minimal input.

Runs are reproducible (``derandomize``: the examples follow from the test's name, no database).
``JOOCI_FUZZ_LONG=1`` multiplies every test's example count (``tests/fuzz/test_fuzz_long.py``, marked
``slow``, runs the folder that way); ``JOOCI_FUZZ_RANDOM=1`` draws new examples on every run (to
explore by hand: a failure prints the ``@reproduce_failure`` line that replays it).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG = os.environ.get("JOOCI_FUZZ_LONG") == "1"
RANDOM = os.environ.get("JOOCI_FUZZ_RANDOM") == "1"
LONG_FACTOR = 20


def fuzz(examples: int):
    """hypothesis settings for a fuzz test: ``examples`` by default, ``LONG_FACTOR`` times more long."""
    return settings(
        max_examples=examples * (LONG_FACTOR if LONG else 1),
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large],
    )


def expect_clean(call, path, errors: tuple[type[BaseException], ...]):
    """``call()``'s result, or None if it raised one of ``errors`` naming ``path``; anything else escapes."""
    try:
        return call()
    except errors as e:
        assert str(path) in str(e), f"{type(e).__name__} does not name the file {path}: {e}"
        return None


# Values a field is likely to be broken into: wrong types, signs, sizes, encodings.
ODD_TOKENS = [
    b"", b"0", b"-1", b"1.5", b"NaN", b"inf", b"1e309", b"99999999999999999999999", b"null", b"true",
    b"[]", b"{}", b'"x"', b"[1, [2]]", b"\x00", b"\xff\xfe", b"\xc3", b"\t", b" ", b"\r", b"\n",
    b"\xe2\x80\xa8", b"~", b"- a", b"? [1]", b"&a *a", b"!!python/object:os.system", b"[[[[[[[[",
]

_BYTE_EDITS = ("flip", "truncate", "insert", "delete", "overwrite_int")
_LINE_EDITS = ("drop_line", "dup_line", "swap_lines", "swap_fields", "odd_token", "join_lines")


@st.composite
def edited(draw, valid: bytes, *, lines: bool = True, max_edits: int = 4) -> bytes:
    """``valid`` after 1..``max_edits`` random edits: byte flips, truncation, insertion and deletion
    of bytes; with ``lines``, also dropped, duplicated, swapped and joined lines, swapped fields and
    fields replaced by an odd token."""
    data = bytearray(valid)
    kinds = _BYTE_EDITS + (_LINE_EDITS if lines else ())
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(kinds))
        n = len(data)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(ODD_TOKENS))
        elif kind == "delete" and n:
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "overwrite_int" and n:  # chunk sizes, counts, rates in a binary header
            value = draw(st.sampled_from([0, 1, 2, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            width = draw(st.sampled_from([1, 2, 4]))
            order = draw(st.sampled_from(["little", "big"]))
            data[pos:pos + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, order)
        else:
            data = bytearray(_line_edit(draw, bytes(data), kind))
    return bytes(data)


def _line_edit(draw, data: bytes, kind: str) -> bytes:
    rows = data.split(b"\n")
    if not rows:
        return data
    i = draw(st.integers(0, len(rows) - 1))
    j = draw(st.integers(0, len(rows) - 1))
    if kind == "drop_line":
        del rows[i]
    elif kind == "dup_line":
        rows.insert(j, rows[i])
    elif kind == "swap_lines":
        rows[i], rows[j] = rows[j], rows[i]
    elif kind == "join_lines" and i + 1 < len(rows):
        rows[i:i + 2] = [rows[i] + rows[i + 1]]
    elif kind in ("swap_fields", "odd_token"):
        sep = draw(st.sampled_from([b"\t", b" ", b",", b": "]))
        fields = rows[i].split(sep)
        a = draw(st.integers(0, len(fields) - 1))
        if kind == "swap_fields":
            b = draw(st.integers(0, len(fields) - 1))
            fields[a], fields[b] = fields[b], fields[a]
        else:
            fields[a] = draw(st.sampled_from(ODD_TOKENS))
        rows[i] = sep.join(fields)
    return b"\n".join(rows)


def inputs(valid: bytes, *, lines: bool = True):
    """Random bytes, or random edits of ``valid`` (mostly the latter: they get past the first check)."""
    return st.one_of(st.binary(max_size=512), edited(valid, lines=lines), edited(valid, lines=lines))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
