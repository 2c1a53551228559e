"""Export a finished run's global encoder (TorchScript or ONNX) with an honest model card.

The exported module's ``forward`` is the encoder's ``features`` (the frozen representation the
probes evaluate), so a user gets exactly what the card's probe numbers describe. Every privacy
number on the card is *read* from the run (``metrics.json``, written from the sites' ledgers or
their reported ε), never typed: a card cannot claim more privacy than the run recorded.

ONNX is written by ``torch.onnx.export(dynamo=True)`` (it needs the ``onnx`` and ``onnxscript``
packages of the ``export`` extra) as one self-contained file: ``external_data=False`` keeps the
weights inside ``encoder.onnx`` (the encoder is far below ONNX's 2 GB protobuf limit), so no
``encoder.onnx.data`` has to travel beside it. ``--quantize int8`` adds an int8 copy
(:mod:`ssl_fed.serve.quantize`); its facts go on the same card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_fed.config import ConfigError
from ssl_fed.tasks.units import unit_label

CHECKPOINT = "checkpoints/last.pt"
EXPORT_EXTRA = "pip install 'ssl-fed[export]' (onnx, onnxscript, onnxruntime)"
FORMATS = {"torchscript": "encoder.pt", "onnx": "encoder.onnx"}
"""Export formats and the file each writes."""


class ExportError(ConfigError):
    """The run cannot be exported; the message names the missing file and the fix.

    A :class:`~ssl_fed.config.ConfigError`, so the CLI prints one ``error:`` line and exits 2.
    """


class FeatureEncoder(nn.Module):
    """Wrap an encoder so that ``forward(x)`` returns ``encoder.features(x)``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the frozen features of ``x`` (``[N, C, H, W]`` in ``[0, 1]``)."""
        out: torch.Tensor = self.encoder.features(x)  # type: ignore[operator]
        return out


def load_run(run: str | Path) -> tuple[dict[str, Any], dict[str, Any], nn.Module, int]:
    """Return ``(checkpoint, metrics, encoder, channels)`` of the run in ``run``."""
    from ssl_fed.config import to_root_config
    from ssl_fed.fed import arrays as fa
    from ssl_fed.models import build_model

    if not Path(run).is_dir():
        raise ExportError(
            f"run folder {run} does not exist: --run must be the out= folder of a finished run "
            "(it holds checkpoints/last.pt)"
        )
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise ExportError(
            f"{path} not found: --run must be a run folder (out=) holding checkpoints/last.pt; "
            "a deployed run writes it under the SuperLink's state dir (server start --state-dir)"
        )
    ckpt: dict[str, Any] = torch.load(path, weights_only=False)
    metrics_path = Path(run) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    cfg = to_root_config(ckpt["config"])
    names = list(ckpt["names"])
    first = next(i for i, n in enumerate(names) if n.startswith("encoder.") and "weight" in n)
    channels = int(ckpt["arrays"][first].shape[1])
    model = build_model(cfg.encoder, channels)
    fa.load_named_arrays(model, names, list(ckpt["arrays"]), share_heads=False)
    encoder: nn.Module = model.encoder.eval()
    return ckpt, metrics, encoder, channels


def model_card(ckpt: dict[str, Any], metrics: dict[str, Any], channels: int) -> dict[str, Any]:
    """Build the card's facts from the checkpoint and metrics (nothing typed by hand)."""
    cfg = ckpt["config"]
    eps = {str(k): float(v) for k, v in metrics.get("epsilon_per_site", {}).items()}
    privacy = cfg["privacy"]
    config_hash = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()
    history = ckpt.get("history", [])
    sites = sorted({s for h in history for s in h.get("completed", [])})
    return {
        "run_id": ckpt["run_id"],
        "privacy_unit": unit_label(privacy),
        "epsilon_max": max(eps.values(), default=None),
        "epsilon_per_site": eps,
        "delta": metrics.get("delta"),
        "accountant": privacy["accountant"] if privacy["enabled"] else None,
        "rounds": int(ckpt["round"]),
        "sites": sites,
        "secure_aggregation": metrics.get("secure_aggregation"),
        "aggregation": cfg["aggregation"],
        "data": {"image_size": cfg["data"]["image_size"], "channels": channels}
        | {"sites": metrics.get("sites_declared", {})},
        "initialisation": metrics.get("init", {"kind": "random"}),
        "linear_probe": metrics.get("linear_probe"),
        "knn_accuracy": metrics.get("knn_accuracy"),
        "evaluated_round": metrics.get("evaluated_round"),
        "config_sha256": config_hash,
        "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


EXTRA_SECTIONS = ("quantization", "distillation")
"""Card sections added by serving steps (int8 copy, distilled student), rendered when present."""


def card_markdown(card: dict[str, Any]) -> str:
    """Render the card as Markdown."""
    eps = card["epsilon_per_site"]
    each = ", ".join(f"site {k}: {v:.3f}" for k, v in eps.items()) or "n/a"
    emax = "n/a" if card["epsilon_max"] is None else f"{card['epsilon_max']:.3f}"
    return "\n".join(
        [
            f"# Model card: ssl-fed encoder (run {card['run_id']})",
            "",
            f"- **Privacy unit:** {card['privacy_unit']}",
            f"- **ε (max over sites):** {emax} at δ = {card['delta']}",
            f"- **ε per site:** {each}",
            f"- **Accountant:** {card['accountant']}",
            f"- **Rounds:** {card['rounds']}; **sites:** {card['sites']}",
            f"- **Secure aggregation:** {card['secure_aggregation']}; "
            f"parameters: `{json.dumps(card['aggregation'])}`",
            f"- **Data:** `{json.dumps(card['data'])}`",
            f"- **Initialisation:** `{json.dumps(card['initialisation'])}`",
            f"- **Linear probe:** {card['linear_probe']}; **kNN:** {card['knn_accuracy']} "
            f"(round {card['evaluated_round']})",
            *[
                f"- **{k.capitalize()}:** `{json.dumps(card[k])}`"
                for k in EXTRA_SECTIONS
                if k in card
            ],
            f"- **Config SHA-256:** `{card['config_sha256']}`",
            f"- **Exported:** {card['exported']}",
            "",
            "ε values are read from the run's metrics (the sites' own ledgers), not entered.",
            "",
        ]
    )


def require_onnx() -> None:
    """Raise :class:`ExportError` naming the ``export`` extra unless ONNX export can run."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"--format onnx needs the {err.name} package: {EXPORT_EXTRA}") from err


def write_encoder(module: nn.Module, fmt: str, out: Path, example: torch.Tensor) -> list[Path]:
    """Write ``module`` (``[N, C, H, W] -> [N, D]``) as ``fmt`` into ``out``; return the files.

    ONNX gets a dynamic batch axis, input ``images`` and output ``features``, no external data
    file, and GroupNorm's affine step as a depthwise 1x1 Conv (:mod:`ssl_fed.serve.graph`);
    any file the exporter still writes beside the model is returned too, so the caller lists
    everything it wrote.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: use one of {sorted(FORMATS)}")
    path = out / FORMATS[fmt]
    if fmt == "torchscript":
        torch.jit.trace(module, example).save(str(path))  # type: ignore[no-untyped-call]
        return [path]
    require_onnx()
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)  # "torchvision is not installed": no torchvision op is used
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                input_names=["images"],
                output_names=["features"],
                dynamic_shapes=({0: torch.export.Dim("n")},),
                verbose=False,
            )
    finally:
        registry.setLevel(level)
    from ssl_fed.serve.graph import fold_norm_affine, strip_debug_info

    fold_norm_affine(path)  # GroupNorm's affine as a depthwise Conv: same map, faster, quantizable
    strip_debug_info(path)  # the exporter's per-node stack traces: not needed to serve
    return [path, *(p for p in [path.with_name(path.name + ".data")] if p.exists())]


def write_card(card: dict[str, Any], out: Path) -> list[Path]:
    """Write ``model_card.json`` and ``model_card.md``; return both paths."""
    (out / "model_card.json").write_text(json.dumps(card, indent=2))
    (out / "model_card.md").write_text(card_markdown(card))
    return [out / "model_card.json", out / "model_card.md"]


def export_run(
    run: str | Path, fmt: str, out: str | Path, *, quantize: str | None = None
) -> list[Path]:
    """Export the encoder of ``run`` as ``fmt`` plus the card; return every path written.

    Parameters
    ----------
    run
        A finished run's folder (``out=``), holding ``checkpoints/last.pt``.
    fmt
        ``torchscript`` or ``onnx``.
    out
        Destination folder (created).
    quantize
        ``"int8"`` also writes ``encoder.int8.onnx`` (ONNX only), calibrated on synthetic
        images; the card's ``quantization`` section records how and what it cost.

    Raises
    ------
    ExportError
        A missing run or checkpoint, an unknown format, int8 without ONNX, or a missing extra;
        raised before anything is written.
    """
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize {quantize}: only int8 is supported")
    if quantize and fmt != "onnx":
        raise ExportError("--quantize int8 quantizes the ONNX encoder: add --format onnx")
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: use one of {sorted(FORMATS)}")
    if fmt == "onnx":
        require_onnx()
    ckpt, metrics, encoder, channels = load_run(run)
    size = int(ckpt["config"]["data"]["image_size"])
    module = FeatureEncoder(encoder).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, channels, size, size)  # batch 2: GroupNorm traces no size-1 branch
    written = write_encoder(module, fmt, out, example)
    card = model_card(ckpt, metrics, channels)
    if quantize:
        from ssl_fed.serve.quantize import quantize_export

        card["quantization"], int8_path = quantize_export(written[0], size, channels)
        written.append(int8_path)
    return [*written, *write_card(card, out)]
