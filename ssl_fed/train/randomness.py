"""Per-unit random streams: every draw that shapes one image's contribution is that image's own.

Under DP-SGD the randomness of a step (Poisson inclusion, group ids, augmentation parameters, the
multiplicity draws) must not let one image change another image's contribution. A shared stream
does exactly that: with a generator seeded once per step, removing image ``j`` shifts every later
image's draws (measured through ``train_local``: 8.8·C for rotation against a claimed C). Here
each draw is a pure function of ``(run key, step, unit id, purpose, counter)``:

* the **run key** is 32 secret bytes from :mod:`secrets` per training under DP; with privacy off
  it is derived from the public ``train.seed`` and the round, so non-private runs reproduce;
* the **unit id** is a content hash of the image tensor plus its occurrence rank among identical
  images (dataset order), never its position: removing an image shifts positions, not hashes;
* per image, ``k_i = BLAKE2b(key=run key, unit id)`` (64 bits) is computed once per training;
  per step and purpose, SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
  generators", OOPSLA 2014) mixes ``k_i`` with a BLAKE2b digest of ``(step, purpose)`` and a
  counter, vectorized over images in numpy ``uint64``: a counter-based generator, so no state is
  shared between images.

Notes
-----
Guarantee this module provides (the coupling behind DESIGN §1, "Randomness under DP"). Let
``D' = D ∪ {x}``. Run both trainings with the same run key. Every image ``y ≠ x`` has the same
unit id in ``D`` and ``D'`` (its hash does not depend on the other images; for an exact
duplicate of ``x`` the two datasets are identical up to which copy carries the last rank, and
identical images contribute identically), hence the same ``k_y``, hence the same inclusion
uniform, group id, augmentation parameters and multiplicity draws at every step. The only
difference between the two steps is therefore ``x``'s own presence and views: one per-image unit
(sensitivity C) or the one group ``x`` joins (sensitivity 2C, see :mod:`ssl_fed.tasks.units`).
Inclusion is ``u_i < q`` with ``u_i`` uniform and, across images, independent (distinct keys
from a keyed hash), which is Poisson sampling at rate q as the accountant assumes. The key is
secret and fresh per training, so the draws are unpredictable to anyone outside the site;
reusing a key across trainings would correlate their sampling, which the accountant does not
model. The Gaussian noise is not drawn here: it stays on the OS-entropy generator of
:mod:`ssl_fed.privacy.dpsgd`, independent of the data. With privacy off none of this is a
guarantee, only reproducibility.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

import numpy as np
import torch
from numpy.typing import NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 2.0**-53

U64 = NDArray[np.uint64]


def splitmix64(x: U64) -> U64:
    """SplitMix64's output function applied to ``x + golden gamma`` (elementwise, wrapping)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


@lru_cache(maxsize=4096)
def _salt(step: int, purpose: str) -> np.uint64:
    digest = hashlib.blake2b(f"{step}\x00{purpose}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def unit_ids(images: torch.Tensor) -> list[bytes]:
    """Stable id of every image: BLAKE2b of its float32 pixels plus its rank among duplicates."""
    flat = images.detach().to(torch.float32).contiguous().reshape(len(images), -1).numpy()
    seen: dict[bytes, int] = {}
    ids: list[bytes] = []
    for row in flat:
        digest = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        rank = seen.get(digest, 0)
        seen[digest] = rank + 1
        ids.append(digest + rank.to_bytes(8, "little"))
    return ids


def draw_run_key(private: bool, seed: int, round: int) -> bytes:
    """Secret 32 bytes from :mod:`secrets` under DP; else derived from ``train.seed`` and round."""
    if private:
        return secrets.token_bytes(32)
    return hashlib.blake2b(f"ssl-fed/public-seed/{seed}/{round}".encode(), digest_size=32).digest()


class UnitStreams:
    """The keyed streams of one training: one 64-bit key per image, draws by (step, purpose)."""

    def __init__(self, run_key: bytes, ids: list[bytes]) -> None:
        keys = [
            int.from_bytes(hashlib.blake2b(i, key=run_key, digest_size=8).digest(), "little")
            for i in ids
        ]
        self.keys: U64 = np.array(keys, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.keys)

    def uniforms(self, step: int, purpose: str, count: int, index: NDArray[np.int64]) -> U64:
        """Raw 64-bit draws ``[len(index), count]`` of the images at ``index``."""
        base = splitmix64(self.keys[index] ^ _salt(step, purpose))
        with np.errstate(over="ignore"):
            counters = np.arange(count, dtype=np.uint64) * _GOLDEN
            return splitmix64(base[:, None] + counters[None, :])

    def uniform(
        self, step: int, purpose: str, count: int, index: NDArray[np.int64]
    ) -> torch.Tensor:
        """Uniforms in the open interval (0, 1), ``float64 [len(index), count]`` (53 bits)."""
        bits = self.uniforms(step, purpose, count, index) >> np.uint64(11)
        return torch.from_numpy((bits.astype(np.float64) + 0.5) * _TO_UNIT)

    def poisson_batch(self, step: int, sample_rate: float) -> NDArray[np.int64]:
        """Positions of the images included at ``step``: each independently with prob. q."""
        everyone = np.arange(len(self.keys), dtype=np.int64)
        u = self.uniform(step, "poisson", 1, everyone)[:, 0].numpy()
        return everyone[u < sample_rate]

    def at(self, step: int, index: NDArray[np.int64]) -> BatchDraws:
        """Return the draws of the images at ``index`` for ``step`` (views, group ids)."""
        return BatchDraws(self, step, index)


class BatchDraws:
    """Per-image uniforms of one step's batch, by purpose: ``draws(purpose, count) -> [B, count]``.

    Implements :class:`ssl_fed.data.views.UniformSource`, so views and group ids take their
    randomness from the images' own streams.
    """

    def __init__(self, streams: UnitStreams, step: int, index: NDArray[np.int64]) -> None:
        self.streams, self.step, self.index = streams, step, index

    def __call__(self, purpose: str, count: int) -> torch.Tensor:
        """Uniforms in (0, 1) for every image of the batch: ``float64 [B, count]``."""
        return self.streams.uniform(self.step, purpose, count, self.index)
