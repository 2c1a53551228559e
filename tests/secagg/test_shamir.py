"""ssl-fed's Shamir helper against Flower's: same wire format, any t shares rebuild, t-1 do not."""

from __future__ import annotations

import itertools
import os

import pytest
from flwr.common.secure_aggregation.crypto import shamir as flower_shamir

from ssl_fed.secagg import shamir


def test_shares_have_the_documented_layout() -> None:
    # Prepare: a 32-byte secret pads to 48 bytes: three 16-byte blocks
    secret = os.urandom(32)
    # Execute
    shares = shamir.create_shares(secret, 3, 5)
    # Assert
    assert [len(s) for s in shares] == [52] * 5
    assert [int.from_bytes(s[:4], "little") for s in shares] == [1, 2, 3, 4, 5]


def test_every_threshold_subset_rebuilds_the_secret() -> None:
    # Prepare
    secret = os.urandom(32)
    shares = shamir.create_shares(secret, 3, 5)
    # Execute / Assert
    for subset in itertools.combinations(shares, 3):
        assert shamir.combine_shares(list(subset)) == secret


def test_fewer_than_threshold_shares_do_not_rebuild_it() -> None:
    # Prepare
    secret = os.urandom(32)
    shares = shamir.create_shares(secret, 3, 5)
    # Execute: two shares interpolate a line, not the degree-2 polynomial
    try:
        got = shamir.combine_shares(shares[:2])
    except ValueError:
        got = None
    # Assert
    assert got != secret


@pytest.mark.parametrize("ours_split", [True, False])
def test_shares_are_interchangeable_with_flowers(ours_split: bool) -> None:
    # Prepare: split with one implementation, combine with the other
    secret = os.urandom(32)
    split = shamir.create_shares if ours_split else flower_shamir.create_shares
    combine = flower_shamir.combine_shares if ours_split else shamir.combine_shares
    # Execute
    shares = split(secret, 4, 7)
    # Assert
    assert combine(shares[2:6]) == secret
