"""What a site declares about its data: its format and its public size, never paths or n.

The budget query's reply carries two integers (:func:`declared_scalars`): the data format (a code
into :data:`DATA_FORMATS`) and the size N the operator declared (node config ``public-size``, or
the run's ``data.public_size``; in a simulation the operator's partition plan,
:func:`~ssl_fed.site.node.declared_size`). The server keeps the last declaration per site label
(``metrics.json`` ``sites_declared``) and the exported model card lists it
(:func:`describe_declared`), so a user of the encoder sees which kinds of data, and roughly how
much, trained it.

Notes
-----
Nothing here is a function of the site's private data: the format is the operator's choice of
reader and N is the operator's public declaration, the same N that makes q = B / N public (ε,
which the site reports, already determines it). Without a declared N the site sends 0 and its
exact n never leaves. No path, file or class name is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the guard imports this module: keep its import light
    from ssl_fed.config import RootConfig
    from ssl_fed.site.node import SiteInfo

DATA_FORMATS = ("partition", "folder", "npz")
"""Declared data formats; code = index + 1 (0: not declared). ``partition``: a simulation's
share of ``data.name``; ``folder``: an image folder; ``npz``: an ``.npz`` array file."""

MAX_PUBLIC_SIZE = 2**31 - 1
"""Upper bound the guard accepts on a declared size."""


def declared_scalars(cfg: RootConfig, info: SiteInfo) -> dict[str, int]:
    """Return the site's declaration: ``data-format`` code and ``public-size`` (0: none)."""
    from ssl_fed.site.node import site_config

    fmt = "partition" if info.partition_id is not None else info.data_format
    size = site_config(cfg, info).data.public_size
    return {"data-format": DATA_FORMATS.index(fmt) + 1, "public-size": int(size or 0)}


def describe_declared(scalars: Mapping[str, Any], data_name: str) -> dict[str, Any]:
    """Return a card entry ``{"format", "public_size"}`` from a site's declared scalars."""
    code = int(scalars.get("data-format", 0))
    fmt = DATA_FORMATS[code - 1] if 1 <= code <= len(DATA_FORMATS) else "not declared"
    if fmt == "partition":
        fmt = f"partition of {data_name}"
    size = int(scalars.get("public-size", 0))
    return {"format": fmt, "public_size": size if size > 0 else None}
