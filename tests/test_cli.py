"""End to end through the console entry point, on the bundled digits."""

import json

import pytest

from ssl_fed.cli import main


@pytest.mark.slow
def test_train_local_on_digits_learns_something_and_reports_epsilon(tmp_path, capsys):
    # Execute: a short private run of the joint task
    code = main(
        [
            "train-local",
            "data=digits",
            "task=joint",
            "privacy=dpsgd",
            "privacy.target_epsilon=8",
            "train.local_epochs=1",
            "eval.draws=2",
            f"out={tmp_path}",
        ]
    )

    # Assert
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 < metrics["epsilon"] <= 8.0 and metrics["delta"] == 1e-5
    assert "one image" in metrics["privacy_unit"]
    assert set(metrics["linear_probe"]) == {"1", "5", "10", "all"}
    assert metrics["linear_probe"]["all"] > 0.5  # chance is 0.1
    assert metrics["knn_accuracy"] > 0.5
    assert metrics["examples"] == 1257
    assert (tmp_path / "encoder.pt").exists()

    # Execute: the ledger as the site operator sees it
    assert main(["ledger", "show", f"state_dir={tmp_path}/state"]) == 0
    assert "ε spent" in capsys.readouterr().out


def test_in_batch_negatives_under_dp_exit_nonzero_explaining_sensitivity(tmp_path, capsys):
    code = main(
        [
            "train-local",
            "task=contrastive",
            "privacy=dpsgd",
            "task.negatives=batch",
            f"out={tmp_path}",
        ]
    )
    assert code == 2
    assert "sensitivity" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    "override,field",
    [
        ("train.batch_size=0", "train.batch_size"),
        ("privacy.target_epsilon=-1", "target_epsilon"),
        ("task.name=mae", "task.name"),
        ("data=folder", "data.path"),
    ],
)
def test_nonsense_config_values_name_the_field(override, field, capsys, tmp_path):
    assert main(["train-local", override, f"out={tmp_path}"]) == 2
    assert field in capsys.readouterr().err


def test_corrupt_image_file_is_named_and_nothing_is_trained(tmp_path, capsys):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    code = main(["train-local", "data=folder", f"data.path={folder}", f"out={tmp_path}/out"])
    assert code == 2
    assert "broken.png" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "train-local" in out and "ledger" in out and "simulate" in out


def tiny_warm_start(out, images=64):
    """A width-8 warm start from a one-epoch pretraining; returns its directory."""
    args = [
        "pretrain-synthetic",
        f"pretrain.num_images={images}",
        "pretrain.epochs=1",
        "train.batch_size=32",
        "encoder.width=8",
        "encoder.norm_groups=4",
        f"out={out}",
    ]
    assert main(args) == 0
    return out


@pytest.mark.slow
def test_pretrain_synthetic_then_train_local_from_the_warm_start(tmp_path, capsys):
    # Execute: a tiny privacy-free pretraining, then a private site run that starts from it
    warm = tiny_warm_start(tmp_path / "warm")
    card = json.loads((warm / "card.json").read_text())
    code = main(
        [
            "train-local",
            f"init={warm}",
            "encoder.width=8",
            "encoder.norm_groups=4",
            "train.local_epochs=1",
            "eval.draws=1",
            f"out={tmp_path}/site",
        ]
    )

    # Assert: the card says no site data or budget was used; the site run records its init
    assert code == 0
    assert card["site_data_used"] is False and card["site_budget_consumed"] is False
    metrics = json.loads((tmp_path / "site" / "metrics.json").read_text())
    assert metrics["init"]["kind"] == "warm-start" and metrics["init"]["path"] == str(warm)


def test_a_warm_start_of_the_wrong_shape_is_named(tmp_path, capsys):
    warm = tiny_warm_start(tmp_path / "warm", images=32)
    assert main(["train-local", f"init={warm}", f"out={tmp_path}/site"]) == 2
    err = capsys.readouterr().err
    assert "expected" in err and "found" in err


@pytest.mark.slow
def test_a_non_private_train_local_reproduces_bit_for_bit(tmp_path) -> None:
    # Prepare: the same non-private run twice (data order, augmentations and init from train.seed)
    args = ["train-local", "data=digits", "privacy=off", "train.local_epochs=1"]
    args += ["eval.draws=1", "eval.labels_per_class=[1]"]
    # Execute
    assert main([*args, f"out={tmp_path}/a"]) == 0
    assert main([*args, f"out={tmp_path}/b"]) == 0
    # Assert: identical weights (the model's initial weights came from the global RNG before)
    import torch

    a, b = torch.load(tmp_path / "a" / "encoder.pt"), torch.load(tmp_path / "b" / "encoder.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
