"""A privacy-free warm start: pretrain the encoder on procedurally generated images.

DP-SGD from a random start on a small site sits at the noise floor; a good public start lets the
site's budget go to adaptation instead (Tramèr & Boneh, arXiv 2011.11660). Images drawn by a
program (:mod:`ssl_fed.data.synthetic`; Baradad et al., arXiv 2106.05963; Kataoka et al.,
FractalDB, ACCV 2020) are no one's data, so this pretraining runs with privacy off, charges no
ledger and spends no site's budget. Because nothing private is involved, the contrastive task may
use ordinary in-batch negatives (``task.negatives=batch``) and large batches.

The result is a *warm-start directory*: ``encoder.pt`` (the encoder's ``state_dict``),
``heads.pt`` (the pretext heads, which stay with whoever trains next), and a card
(``card.json`` for programs, ``card.md`` for people) that states where the weights came from:
no site data, epsilon 0 for every site, the generator family, image count, seed, task, epochs
and encoder configuration. Each file is written atomically.

Settings that work on digits (family, task, temperature and lr chosen on a validation split of
the training part, epochs and batch for issue 15 on the probe below; see
``benchmarks/RESULTS.md``): ``family="strokes"``, 8,000 images, ``task.name=contrastive``,
``task.negatives=batch``, temperature 0.2, batch 128 (the schema's), Adam lr 2e-3, 10 epochs
(630 steps). The cost is one forward/backward per image view, so it grows with epochs x images,
not with steps: issue 15 moved from 40 epochs of batch 512 (640 steps) to 10 epochs of batch
128, 25% of the compute in as many, smaller steps. On ``benchmarks/warm_start_synthetic.py``'s
frozen probe (digits' held-out 30%, 5 label draws; one seed each, same session) k=10 stayed at
94.1 (all labels 99.1 -> 98.7); fewer steps lost more: 8 epochs of 128 93.8, 6 of 128 92.8,
8 of 256 93.6, 12 of 256 93.7, 12 of 512 92.1.
The joint task (rotation + contrastive) probed the same and cost 2.5x the time; ``dead_leaves``
is weaker on digits (it is meant for RGB natural images) but still beats raw pixels.
"""

from __future__ import annotations

import copy
import io
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import ssl_fed
from ssl_fed.config import RootConfig
from ssl_fed.data.synthetic import generate_synthetic
from ssl_fed.models import SSLModel, build_model
from ssl_fed.tasks import build_task
from ssl_fed.train.job import write_atomic
from ssl_fed.train.local import train_local

CARD_KIND = "ssl-fed synthetic warm start"
FILES = ("encoder.pt", "heads.pt", "card.json", "card.md")


class WarmStartError(ValueError):
    """A warm-start directory is missing, unreadable, or does not fit the encoder."""


def resolve_channels(cfg: RootConfig, channels: int | None) -> int:
    """Channels of the synthetic images: ``channels``, else ``data.channels``, else digits' 1."""
    if channels is not None:
        return channels
    if cfg.data.channels is not None:
        return cfg.data.channels
    if cfg.data.name == "digits":
        return 1
    raise ValueError(
        f"data.channels is null for data.name={cfg.data.name!r}, so the warm start cannot know "
        "whether the site's images are grayscale or RGB; set data.channels=1 or 3"
    )


def pretrain_synthetic(
    cfg: RootConfig,
    *,
    family: str,
    num_images: int,
    epochs: int,
    channels: int | None = None,
) -> tuple[SSLModel, dict[str, Any]]:
    """Train a fresh model on ``num_images`` synthetic images with privacy off.

    Images match ``cfg.data.image_size`` and the site's channels; the model, task (``cfg.task``,
    typically contrastive or joint), optimizer and batch size come from ``cfg``. Generation and
    initialisation are seeded by ``cfg.train.seed``. Training goes through the same
    :func:`~ssl_fed.train.local.train_local` loop as a site, on a copy of ``cfg`` with
    ``privacy.enabled=False`` and no ledger: no personal data is involved.

    Returns
    -------
    model, card
        The trained :class:`~ssl_fed.models.SSLModel` and a JSON-ready card describing it.
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs} is invalid: use >= 1")
    start = time.time()
    run = copy.deepcopy(cfg)
    run.privacy.enabled = False
    run.train.local_epochs = epochs
    run.train.max_rounds = 1
    seed = run.train.seed
    n_channels = resolve_channels(run, channels)
    data = generate_synthetic(
        family, num_images, image_size=run.data.image_size, channels=n_channels, seed=seed
    )
    torch.manual_seed(seed)
    model = build_model(run.encoder, n_channels)
    task = build_task(model, run.task, run.data.augment, data.image_size, n_channels)
    result = train_local(task, data, run, ledger=None, run_id=f"warm-start-{family}-{seed}")
    card: dict[str, Any] = {
        "kind": CARD_KIND,
        "site_data_used": False,
        "site_budget_consumed": False,
        "epsilon_per_site": 0.0,
        "privacy": "none needed: trained only on procedurally generated images (no one's data); "
        "no site's ledger was charged",
        "family": family,
        "num_images": num_images,
        "image_size": data.image_size,
        "channels": n_channels,
        "seed": seed,
        "task": asdict(run.task),
        "augment": asdict(run.data.augment),
        "epochs": epochs,
        "batch_size": run.train.batch_size,
        "lr": run.train.lr,
        "optimizer": run.train.optimizer,
        "steps": result.steps,
        "losses": result.losses,
        "encoder": asdict(run.encoder),
        "encoder_shapes": {k: list(v.shape) for k, v in model.encoder.state_dict().items()},
        "wall_time_s": round(time.time() - start, 2),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ssl_fed_version": ssl_fed.__version__,
    }
    return model, card


def _tensor_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def card_markdown(card: dict[str, Any]) -> str:
    """Render the card for people: provenance first, then the training settings."""
    task = card["task"]
    enc = card["encoder"]
    return "\n".join(
        [
            "# Synthetic warm start",
            "",
            "- **Site data used:** none. Trained only on procedurally generated images.",
            "- **Privacy budget consumed:** none (epsilon 0 for every site; no ledger charged).",
            f"- **Generator family:** `{card['family']}`, {card['num_images']} images, "
            f"{card['image_size']}x{card['image_size']}, {card['channels']} channel(s), "
            f"seed {card['seed']}",
            f"- **Task:** `{task['name']}` (negatives={task['negatives']}, "
            f"temperature={task['temperature']}), {card['epochs']} epochs, "
            f"batch {card['batch_size']}, lr {card['lr']} ({card['optimizer']}), "
            f"{card['steps']} steps",
            f"- **Encoder:** `{enc['name']}` width {enc['width']}, "
            f"GroupNorm groups {enc['norm_groups']}",
            f"- **Final losses:** {card['losses']}",
            f"- **Created:** {card['created_utc']} (ssl-fed {card['ssl_fed_version']}), "
            f"{card['wall_time_s']} s",
            "",
        ]
    )


def save_warm_start(model: SSLModel, card: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``encoder.pt``, ``heads.pt``, ``card.json`` and ``card.md`` into ``out_dir``.

    Each file is written atomically (temporary file + rename), so a crash never leaves a
    half-written file that a later load would mistake for a warm start. Returns ``out_dir``.
    """
    out = Path(out_dir)
    heads = {name: head.state_dict() for name, head in model.heads.items()}
    write_atomic(out / "encoder.pt", _tensor_bytes(model.encoder.state_dict()))
    write_atomic(out / "heads.pt", _tensor_bytes(heads))
    write_atomic(out / "card.md", card_markdown(card).encode())
    write_atomic(out / "card.json", json.dumps(card, indent=2).encode())
    return out


def _read_card(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise WarmStartError(f"{file} is missing: a warm-start directory needs {list(FILES)}")
    try:
        card = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WarmStartError(f"{file} is not valid JSON ({err}); re-run the pretraining") from err
    if not isinstance(card, dict) or card.get("kind") != CARD_KIND:
        raise WarmStartError(f"{file} is not a synthetic warm-start card (kind != {CARD_KIND!r})")
    return card


def _read_state(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise WarmStartError(f"{file} is missing: a warm-start directory needs {list(FILES)}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WarmStartError(f"{file} is corrupt or not a torch file ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WarmStartError(f"{file} does not hold an encoder state_dict (name -> tensor)")
    return state


def check_shapes(
    found: dict[str, torch.Tensor], expected: dict[str, list[int]], file: Path, against: str
) -> None:
    """Raise :class:`WarmStartError` naming ``file`` unless ``found`` has ``expected``'s shapes."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = {
        k: (expected[k], list(found[k].shape))
        for k in sorted(set(expected) & set(found))
        if list(found[k].shape) != list(expected[k])
    }
    if missing or extra or wrong:
        shown = [f"{k}: expected {e}, found {f}" for k, (e, f) in wrong.items()]
        if len(shown) > 4:
            shown = [*shown[:4], f"and {len(shown) - 4} more"]
        details = "; ".join(
            shown
            + ([f"missing {missing}"] if missing else [])
            + ([f"unexpected {extra}"] if extra else [])
        )
        raise WarmStartError(
            f"{file} does not fit {against}: {details}. Pretrain the warm start with the same "
            "encoder config and data.channels as the run that loads it"
        )


def load_warm_start(
    path: str | Path, *, encoder: torch.nn.Module | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a warm-start directory: ``(encoder state_dict, card)``.

    The encoder weights are checked against the shapes the card recorded and, when ``encoder``
    is given, against that encoder's own ``state_dict`` (so a width or channel mismatch fails
    here, naming the file and the expected and found shapes, not deep inside ``load_state_dict``).

    Raises
    ------
    WarmStartError
        For a missing directory or file, an unreadable/corrupt file, or a shape mismatch.
    """
    root = Path(path)
    if not root.is_dir():
        raise WarmStartError(f"warm-start directory {root} does not exist; run the pretraining")
    card = _read_card(root / "card.json")
    state = _read_state(root / "encoder.pt")
    recorded = card.get("encoder_shapes")
    if not isinstance(recorded, dict):
        raise WarmStartError(f"{root / 'card.json'} has no encoder_shapes; re-run the pretraining")
    check_shapes(state, recorded, root / "encoder.pt", "the shapes its card records")
    if encoder is not None:
        wanted = {k: list(v.shape) for k, v in encoder.state_dict().items()}
        check_shapes(state, wanted, root / "encoder.pt", "the encoder being initialised")
    return state, card
