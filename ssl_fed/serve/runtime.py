"""Load any released form of the encoder as one batch function ``images -> features``.

Accepted: an export folder (``encoder.onnx`` preferred, else TorchScript ``encoder.pt``, with
``model_card.json``), a run folder (``checkpoints/last.pt``), or one of those files directly
(``*.onnx``, a TorchScript ``*.pt``, ``checkpoints/last.pt``). The input side and channel count
come from the card or checkpoint (ONNX files also carry them in their input shape), so a caller
resizes its images exactly as training did.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ssl_fed.export import CHECKPOINT, EXPORT_EXTRA, ExportError, FeatureEncoder, load_run

Batch = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ServedModel:
    """A loaded encoder: ``run(float32 [N, C, S, S] in [0, 1]) -> float32 [N, D]``."""

    run: Callable[[Batch], Batch]
    channels: int
    image_size: int
    kind: str
    path: Path
    card: dict[str, Any] | None


def _card_beside(path: Path) -> dict[str, Any] | None:
    card = path.parent / "model_card.json"
    return dict(json.loads(card.read_text())) if card.is_file() else None


def _torch_run(module: torch.nn.Module) -> Callable[[Batch], Batch]:
    def run(images: Batch) -> Batch:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        return np.asarray(out.numpy(), dtype=np.float32)

    return run


def onnx_session(path: Path, threads: int = 0, profile_prefix: str | None = None) -> Any:
    """Open an ONNX Runtime CPU session with ``threads`` intra-op threads (0: ORT's default).

    With ``profile_prefix``, ONNX Runtime's profiler records per-node kernel times to a JSON
    file under that prefix (``session.end_profiling()`` returns its path).

    Idle worker threads sleep instead of spinning: a site's machine is shared with its other
    work, and spinning threads burn cores that it needs (and, measured here on 2 busy cores,
    made 2 threads 10x slower than 1).
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ExportError(f"running {path} needs onnxruntime: {EXPORT_EXTRA}") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _load_onnx(path: Path, threads: int) -> ServedModel:
    session = onnx_session(path, threads)
    node = session.get_inputs()[0]
    _, channels, size, _ = node.shape

    def run(images: Batch) -> Batch:
        feed = {node.name: np.ascontiguousarray(images, dtype=np.float32)}
        return np.asarray(session.run(None, feed)[0], dtype=np.float32)

    return ServedModel(run, int(channels), int(size), "onnx", path, _card_beside(path))


def _load_checkpoint(run_dir: Path) -> ServedModel:
    ckpt, _, encoder, channels = load_run(run_dir)
    size = int(ckpt["config"]["data"]["image_size"])
    module = FeatureEncoder(encoder).eval()
    return ServedModel(_torch_run(module), channels, size, "checkpoint", run_dir / CHECKPOINT, None)


def _load_torchscript(path: Path) -> ServedModel:
    try:
        module = torch.jit.load(str(path)).eval()  # type: ignore[no-untyped-call]
    except RuntimeError as err:
        raise ExportError(
            f"{path} is not a TorchScript encoder ({str(err).splitlines()[0]}); give an export "
            "folder, an encoder.onnx / encoder.pt from `ssl-fed export`, or a run folder"
        ) from err
    card = _card_beside(path)
    if card is None:
        raise ExportError(f"{path} has no model_card.json beside it: keep the export folder whole")
    data = card["data"]
    return ServedModel(
        _torch_run(module),
        int(data["channels"]),
        int(data["image_size"]),
        "torchscript",
        path,
        card,
    )


def load_served(path: str | Path, *, threads: int = 0) -> ServedModel:
    """Load the encoder at ``path`` (see the module docstring for the accepted forms).

    Raises
    ------
    ExportError
        The path does not exist or holds none of the accepted forms; the message lists them.
    """
    path = Path(path)
    if path.is_dir():
        if (path / CHECKPOINT).is_file():
            return _load_checkpoint(path)
        for name in ("encoder.onnx", "encoder.pt"):
            if (path / name).is_file():
                return load_served(path / name, threads=threads)
    elif path.is_file():
        if path.suffix == ".onnx":
            return _load_onnx(path, threads)
        if path.name == "last.pt" and path.parent.name == "checkpoints":
            return _load_checkpoint(path.parent.parent)
        return _load_torchscript(path)
    raise ExportError(
        f"--model {path}: not found or not an encoder; give an export folder (`ssl-fed export "
        "--out`), a run folder holding checkpoints/last.pt, or an encoder.onnx / encoder.pt file"
    )
