"""The seam for a verified bound on each site's input under SecAgg (not implemented).

Under secure aggregation the server sees only the sum, so nothing it checks after unmasking can
bound a *single* site's contribution (:mod:`ssl_fed.attack.words`). A verified per-site bound
needs each site to prove, in zero knowledge, that the vector it masked satisfies the bound,
e.g. ``||x||_2 <= B`` or every word in ``[0, L-1]``:

- RoFL (Burkhalter, Lycklama, Viand, Küchler, Hithnawi, "RoFL: Robustness of Secure Federated
  Learning", IEEE S&P 2023): Pedersen commitments to the update plus Bulletproofs range proofs of
  its L2 / L∞ norm, checked by the server before the commitments are summed.
- ACORN (Bell, Gascón, Lepoint, Li, Mayer, Raykova, Yun, "ACORN: Input Validation for Secure
  Aggregation", USENIX Security 2023): input validation inside SecAgg with far cheaper proofs.

ssl-fed implements neither. This Protocol fixes where one would plug in: the site proves its
encoded input (before masking) at the masked-input stage; the server verifies each proof against
the site's commitment and drops the site from the round when it fails, before summing. The
masked words themselves must then be bound to the commitment, which changes the masking
(RoFL masks the commitments); so an implementation touches :mod:`ssl_fed.secagg.client` and
:mod:`ssl_fed.secagg.server`, not only this module.

Notes
-----
Until a verifier is wired in, the only guarantees are the ones docs/poisoning.md lists:
the per-coordinate clip binds honest sites only; the range check binds the decoded mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class InputBound:
    """The statement a site proves about its encoded input: ``||x||_2 <= l2`` (float units).

    ``linf`` (per coordinate, ``<= c``) is what the quantizer's range already implies for honest
    sites; a proof makes it hold for every site.
    """

    l2: float
    linf: float


class InputProver(Protocol):
    """Site side: commit to the encoded input and prove it meets the bound."""

    def commit_and_prove(
        self, encoded: NDArray[np.unsignedinteger], bound: InputBound, round_id: bytes
    ) -> tuple[bytes, bytes]:
        """Return ``(commitment, proof)`` for ``encoded`` in round ``round_id``."""
        ...


class InputVerifier(Protocol):
    """Server side: accept a site's input into the sum only if its proof verifies."""

    def verify(self, commitment: bytes, proof: bytes, bound: InputBound, round_id: bytes) -> bool:
        """Return whether ``proof`` shows that the committed input meets ``bound``."""
        ...
