"""A site's data declaration: format and public size through the guard, to the model card.

Ground truth: the operator's node config (``data-format``, ``public-size``). The reply carries
those two integers and nothing else new; the exact n, paths and file names never appear.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_fed.export import model_card
from ssl_fed.fed.guard import QUERY_KEYS, GuardError, check_scalars
from ssl_fed.site.declared import describe_declared
from tests.deploy.test_site_policy_app import _call, _query, _site


def test_the_budget_reply_declares_format_and_public_size_only(tmp_path: Path) -> None:
    # Prepare: an .npz site of 60 images whose operator declared 48
    node = _site(tmp_path) | {"public-size": 48}
    undeclared = _site(tmp_path)

    # Execute
    budget = dict(_call(node, {}, _query()).content.metric_records["budget"])
    silent = dict(_call(undeclared, {}, _query()).content.metric_records["budget"])

    # Assert: npz is code 3; an undeclared size is 0 (the exact 60 never leaves)
    assert set(budget) == {"can-train", "site", "declined", "data-format", "public-size"}
    assert (budget["data-format"], budget["public-size"]) == (3, 48)
    assert (silent["data-format"], silent["public-size"]) == (3, 0)
    check_scalars(budget, QUERY_KEYS)


@pytest.mark.parametrize("bad", [{"data-format": 4}, {"public-size": -1}, {"public-size": 1.5}])
def test_the_guard_refuses_a_declaration_out_of_range(bad: dict[str, float]) -> None:
    with pytest.raises(GuardError):
        check_scalars({"can-train": 1, "site": 0} | bad, QUERY_KEYS)


def test_the_card_lists_each_sites_declaration_and_never_a_path(tmp_path: Path) -> None:
    # Prepare: what the server recorded from three sites (folder, npz, undeclared size)
    declared = {
        "0": describe_declared({"data-format": 2, "public-size": 300}, "digits"),
        "1": describe_declared({"data-format": 3, "public-size": 48}, "digits"),
        "2": describe_declared({"data-format": 2, "public-size": 0}, "digits"),
    }
    privacy = {"enabled": True, "accountant": "rdp", "unit": "image"}
    cfg = {"data": {"image_size": 8}, "aggregation": {}, "privacy": privacy}
    ckpt = {"config": cfg, "run_id": "r", "round": 3, "history": []}
    metrics = {"sites_declared": declared, "epsilon_per_site": {"0": 1.5, "1": 2.0}}

    # Execute
    card = model_card(ckpt, metrics, channels=1)

    # Assert
    assert card["data"]["sites"] == {
        "0": {"format": "folder", "public_size": 300},
        "1": {"format": "npz", "public_size": 48},
        "2": {"format": "folder", "public_size": None},
    }
    assert "name" not in card["data"]  # a deployed server's data.name says nothing of the sites
    assert card["epsilon_per_site"] == {"0": 1.5, "1": 2.0}
    assert card["privacy_unit"] and str(tmp_path) not in json.dumps(card)


def test_a_simulated_site_declares_a_partition_of_the_data_set() -> None:
    assert describe_declared({"data-format": 1, "public-size": 112}, "digits") == {
        "format": "partition of digits",
        "public_size": 112,
    }
