"""Typed access to SecAgg+ payloads: flat dicts of ConfigRecord values (str, int, bytes, lists).

Every field read from a peer goes through these helpers, which raise :class:`ProtocolError` naming
the field and the expected form. The server turns that into "reject this site", never a crash.
Node ids travel as 8-byte big-endian strings, since Flower node ids may exceed int64.

Vectors travel in NumPy's ``.npy`` format (what Flower's ``Array`` stores for ``numpy.ndarray``):
:func:`npy_bytes` frames an array with one copy (header + raw buffer joined, where ``np.save``
into a ``BytesIO`` and ``getvalue`` copy twice), and :func:`npy_view` reads one back as a
zero-copy read-only view after checking the header (where ``np.load`` copies). A malformed frame
raises :class:`ProtocolError`.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.params import PROTOCOL_VERSION

Payload = dict[str, Any]


class ProtocolError(ValueError):
    """A peer sent a message that does not follow the protocol (wrong stage, field or size)."""


def ids_to_bytes(ids: list[int]) -> bytes:
    """Pack node ids as concatenated 8-byte big-endian integers."""
    return b"".join(struct.pack(">Q", i) for i in ids)


def get_ids(p: Mapping[str, Any], key: str) -> list[int]:
    """Unpack a list of distinct node ids written by :func:`ids_to_bytes`."""
    raw = get_bytes(p, key)
    if len(raw) % 8:
        raise ProtocolError(f"field {key!r} must hold 8-byte node ids, got {len(raw)} bytes")
    ids = [v for (v,) in struct.iter_unpack(">Q", raw)]
    if len(set(ids)) != len(ids):
        raise ProtocolError(f"field {key!r} repeats a node id")
    return ids


def get_bytes(p: Mapping[str, Any], key: str, size: int | None = None) -> bytes:
    """Read a bytes field, optionally of an exact size."""
    v = p.get(key)
    if not isinstance(v, bytes):
        raise ProtocolError(f"field {key!r} must be bytes, got {type(v).__name__}")
    if size is not None and len(v) != size:
        raise ProtocolError(f"field {key!r} must be {size} bytes, got {len(v)}")
    return v


def get_bytes_list(
    p: Mapping[str, Any], key: str, count: int, size: int | None = None
) -> list[bytes]:
    """Read a list of ``count`` bytes values, each optionally of an exact size."""
    v = p.get(key)
    if not isinstance(v, list) or len(v) != count or not all(isinstance(x, bytes) for x in v):
        raise ProtocolError(f"field {key!r} must be a list of {count} bytes values")
    if size is not None and any(len(x) != size for x in v):
        raise ProtocolError(f"every entry of {key!r} must be {size} bytes")
    return list(v)


def get_int(p: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    """Read an int field within ``[lo, hi]``."""
    v = p.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ProtocolError(f"field {key!r} must be an int in [{lo}, {hi}], got {v!r}")
    return v


def get_float(p: Mapping[str, Any], key: str) -> float:
    """Read a float field."""
    v = p.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ProtocolError(f"field {key!r} must be a number, got {v!r}")
    return float(v)


def check_header(p: Mapping[str, Any], stage: str, round_id: bytes) -> None:
    """Check protocol version, stage name and round id of a payload.

    A version mismatch raises with both versions, so an operator can see which side to upgrade.
    """
    version = p.get("version")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version mismatch: this side speaks {PROTOCOL_VERSION!r}, peer sent "
            f"{version!r}; install the same ssl-fed version on server and sites"
        )
    if p.get("stage") != stage:
        raise ProtocolError(f"expected stage {stage!r}, got {p.get('stage')!r}")
    if p.get("round_id") != round_id:
        raise ProtocolError("payload belongs to a different round")


def header(stage: str, round_id: bytes) -> Payload:
    """Start a payload with version, stage and round id."""
    return {"version": PROTOCOL_VERSION, "stage": stage, "round_id": round_id}


def npy_bytes(array: NDArray[Any]) -> bytes:
    """Frame a C-contiguous array as ``.npy`` (format 1.0) bytes with a single copy of its data."""
    if not array.flags.c_contiguous or array.dtype.hasobject:
        raise ValueError("only C-contiguous arrays of plain numbers can be framed")
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
    return b"".join((head.getvalue(), array.data.cast("B")))


def npy_view(data: bytes) -> NDArray[Any]:
    """Read ``.npy`` bytes as a read-only array sharing ``data``'s memory (no copy).

    Only numeric dtypes are accepted and the payload must fill the frame exactly.
    """
    fp = io.BytesIO(data)
    try:
        if np.lib.format.read_magic(fp) != (1, 0):
            raise ProtocolError("array frame is not .npy format 1.0")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    except ValueError as err:
        raise ProtocolError(f"malformed .npy array header: {err}") from err
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise ProtocolError(f"array dtype {dtype} is not a plain numeric type")
    count = math.prod(shape)
    if len(data) != fp.tell() + count * dtype.itemsize:
        raise ProtocolError(f"array frame holds {len(data)} bytes, header says {shape} {dtype}")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=fp.tell())
    return flat.reshape(shape, order="F" if fortran else "C")
