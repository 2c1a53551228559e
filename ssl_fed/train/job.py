"""The ``train-local`` job: one site, trained centrally (the non-federated baseline), evaluated.

It loads and validates the data before anything else, charges the site's ledger before training
(privacy on), and writes ``metrics.json`` and ``encoder.pt`` atomically at the end, so a failed
run never clobbers an earlier run's results.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ssl_fed.config import RootConfig, epsilon_budget
from ssl_fed.data import load_splits
from ssl_fed.eval import evaluate_encoder
from ssl_fed.models import SSLModel, build_model
from ssl_fed.privacy.engine import build_engine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.tasks import build_task
from ssl_fed.train.local import schedule_for, train_local
from ssl_fed.train.sampling import privacy_units


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def site_ledger(cfg: RootConfig, *, read_only: bool = False) -> PrivacyLedger:
    """Open the ledger under ``state_dir`` (default ``<out>/state``) with the site's budget.

    Its key and anchor live in ``privacy.key_dir`` (default ``<state_dir>.keys``). ``read_only``
    opens an existing ledger with its recorded budget and δ and writes nothing (``ledger show``).
    """
    state_dir = cfg.state_dir or str(Path(cfg.out) / "state")
    pr = cfg.privacy
    if read_only:
        return PrivacyLedger(state_dir, accountant=pr.accountant, key_dir=pr.key_dir)
    return PrivacyLedger(
        state_dir,
        budget=epsilon_budget(pr),
        delta=pr.delta,
        accountant=pr.accountant,
        key_dir=pr.key_dir,
        privacy_unit=pr.unit,
    )


def load_init(model: SSLModel, path: str | None) -> dict[str, Any] | None:
    """Load a warm-start encoder into ``model`` (shapes checked); return its card, if any."""
    if path is None:
        return None
    from ssl_fed.train.pretrain import load_warm_start

    state, card = load_warm_start(path, encoder=model.encoder)
    model.encoder.load_state_dict(state)
    return card


def init_summary(path: str | None, card: dict[str, Any] | None) -> dict[str, Any]:
    """How the encoder was initialised, for metrics.json and model cards."""
    if path is None or card is None:
        return {"kind": "random"}
    keys = ("family", "num_images", "epochs", "task", "site_data_used", "site_budget_consumed")
    return {"kind": "warm-start", "path": str(path), **{k: card[k] for k in keys if k in card}}


def run_train_local(cfg: RootConfig) -> dict[str, Any]:
    """Train, evaluate and record one site; return the metrics written to ``metrics.json``."""
    start = time.time()
    splits = load_splits(cfg.data)
    train = splits.train
    run_id = cfg.run_id or f"local-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    units = privacy_units(train, cfg)  # missing person ids are refused before any ledger exists
    schedule = schedule_for(cfg, units)
    engine = build_engine(cfg, lambda: site_ledger(cfg), schedule, n=units, run_id=run_id)
    model = build_model(cfg.encoder, train.channels, seed=cfg.train.seed)
    init_card = load_init(model, cfg.init)
    task = build_task(model, cfg.task, cfg.data.augment, train.image_size, train.channels)
    result = train_local(task, train, cfg, run_id=run_id, engine=engine)
    report: dict[str, Any] = {"linear_probe": None, "knn_accuracy": None}
    has_labels = train.labels is not None and splits.test is not None
    if has_labels and splits.test is not None:
        report = evaluate_encoder(model.encoder, train, splits.test, cfg.eval).to_dict()
    metrics: dict[str, Any] = {
        "run_id": run_id,
        "task": cfg.task.name,
        "examples": result.num_examples,
        "losses": result.losses,
        "epsilon": result.epsilon,
        **engine.describe(result.plan),
        "steps": result.steps,
        "init": init_summary(cfg.init, init_card),
        **report,
        "wall_time_s": round(time.time() - start, 2),
        "config": {"task": asdict(cfg.task), "privacy": asdict(cfg.privacy)},
    }
    out = Path(cfg.out)
    buffer = _state_bytes(result.encoder_state)
    write_atomic(out / "encoder.pt", buffer)
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return metrics


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
