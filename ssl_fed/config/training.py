"""Validation of the ``privacy``, ``train``, ``eval`` and ``pretrain`` groups and the run keys."""

from __future__ import annotations

from pathlib import Path

from ssl_fed.config.errors import require, require_finite_positive
from ssl_fed.config.schema import (
    EvalConfig,
    PretrainConfig,
    PrivacyConfig,
    RootConfig,
    TrainConfig,
)


def validate_privacy(pr: PrivacyConfig) -> None:
    """Check ``privacy.*`` (checked even when ``enabled=false``: a typo is still a typo)."""
    require_finite_positive(pr.target_epsilon, "privacy.target_epsilon", "use ε > 0")
    require_finite_positive(
        pr.epsilon_budget, "privacy.epsilon_budget", "use a positive ε or null (= target_epsilon)"
    )
    require(0 < pr.delta < 1, "privacy.delta", pr.delta, "use 0 < δ < 1/n (e.g. 1e-5)")
    require_finite_positive(pr.max_grad_norm, "privacy.max_grad_norm", "use C > 0")
    require(
        pr.grad_method in {"ghost", "vmap", "hooks"},
        "privacy.grad_method",
        pr.grad_method,
        "use ghost (ghost-norm clipping), vmap (torch.func over units) or hooks (one pass)",
    )
    require(pr.unit in {"image", "person"}, "privacy.unit", pr.unit, "image|person")
    require(pr.noise in {"local", "distributed"}, "privacy.noise", pr.noise, "local|distributed")
    require(12 <= pr.ddp_bits <= 52, "privacy.ddp_bits", pr.ddp_bits, "use 12..52 bits")
    require(
        pr.min_noisy_sites is None or pr.min_noisy_sites >= 1,
        "privacy.min_noisy_sites",
        pr.min_noisy_sites,
        "use >= 1, or null (= SecAgg's minimum survivors)",
    )
    require(
        pr.max_images_per_person >= 1,
        "privacy.max_images_per_person",
        pr.max_images_per_person,
        "use a public cap >= 1 on the images one sampled person contributes",
    )
    require(pr.accountant in {"rdp", "prv"}, "privacy.accountant", pr.accountant, "rdp|prv")
    require_finite_positive(
        pr.noise_multiplier,
        "privacy.noise_multiplier",
        "use σ > 0, or null to calibrate σ from target_epsilon",
    )
    require_finite_positive(
        pr.max_noise_multiplier, "privacy.max_noise_multiplier", "use a σ ceiling > 0, or null"
    )


def validate_train(tr: TrainConfig) -> None:
    """Check ``train.*`` (the local training loop)."""
    require(tr.local_epochs >= 1, "train.local_epochs", tr.local_epochs, "use >= 1")
    require(tr.local_steps >= 1, "train.local_steps", tr.local_steps, "use >= 1")
    require(tr.batch_size >= 1, "train.batch_size", tr.batch_size, "use >= 1")
    require_finite_positive(tr.lr, "train.lr", "use a learning rate > 0")
    require(tr.optimizer in {"adam", "sgd"}, "train.optimizer", tr.optimizer, "adam|sgd")
    require(tr.max_rounds >= 1, "train.max_rounds", tr.max_rounds, "use >= 1")
    require(
        tr.vmap_chunk_size is None or tr.vmap_chunk_size >= 1,
        "train.vmap_chunk_size",
        tr.vmap_chunk_size,
        "use >= 1 or null",
    )


def validate_eval(ev: EvalConfig) -> None:
    """Check ``eval.*`` (frozen-feature evaluation)."""
    require(
        all(k == -1 or k >= 1 for k in ev.labels_per_class),
        "eval.labels_per_class",
        ev.labels_per_class,
        "use positive counts, or -1 for all labels",
    )
    require(ev.draws >= 1 and ev.knn_k >= 1, "eval.draws/knn_k", (ev.draws, ev.knn_k), ">= 1")
    require(ev.every >= 1, "eval.every", ev.every, "evaluate every N >= 1 rounds")


def validate_pretrain(pt: PretrainConfig) -> None:
    """Check ``pretrain.*`` (``ssl-fed pretrain-synthetic``)."""
    require(pt.num_images >= 16, "pretrain.num_images", pt.num_images, "use at least 16 images")
    require(pt.epochs >= 1, "pretrain.epochs", pt.epochs, "use >= 1")


def validate_run_keys(cfg: RootConfig) -> None:
    """Check the top-level keys: ``out`` names a directory, ``init`` is a warm start."""
    require(bool(cfg.out.strip()), "out", cfg.out, "name an output directory, e.g. out=runs/a")
    require(
        cfg.init is None or Path(cfg.init).is_dir(),
        "init",
        cfg.init,
        "point it at a directory written by `ssl-fed pretrain-synthetic` (encoder.pt, card.json)",
    )


def validate_output(cfg: RootConfig) -> None:
    """Check ``out`` on disk before a command writes there: a directory, not a finished run.

    A finished run (``metrics.json``) is kept unless ``overwrite=true`` (or ``resume=true``).
    """
    out = Path(cfg.out)
    require(not out.exists() or out.is_dir(), "out", cfg.out, "it is a file; name a directory")
    finished = (out / "metrics.json").exists() and not (cfg.overwrite or cfg.resume)
    require(
        not finished, "out", cfg.out, "it holds a finished run; use a new out= or overwrite=true"
    )
