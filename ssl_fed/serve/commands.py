"""Serving subcommands of ``ssl-fed``: ``export``, ``embed`` and ``distill``.

Thin handlers over :mod:`ssl_fed.export` and :mod:`ssl_fed.serve`; each returns an exit code and
every user error (:class:`~ssl_fed.export.ExportError`, ``ConfigError``, ``DataError``) reaches
``ssl_fed.cli`` as one ``error:`` line with exit code 2. Each command lists every file it wrote.
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ["onnx", "torchscript"]
"""Choices of ``--format`` (kept in sync with :data:`ssl_fed.export.FORMATS` by a test)."""


def cmd_export(args: argparse.Namespace) -> int:
    """Export the final global encoder (optionally plus an int8 copy) and its model card."""
    from ssl_fed.export import export_run

    for path in export_run(args.run, args.format, args.out, quantize=args.quantize):
        print(f"wrote {path}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed a folder or ``.npz`` of images into ``features.npy`` plus its row index."""
    from ssl_fed.serve.embed import embed
    from ssl_fed.serve.runtime import load_served

    model = load_served(args.model, threads=args.threads)
    summary = embed(
        model,
        Path(args.data),
        Path(args.out),
        batch_size=args.batch_size,
        on_bad_file=args.on_bad_file,
    )
    print(f"embedded {summary.rows} images -> [{summary.rows}, {summary.dim}] ({model.kind})")
    if summary.skipped:
        first = ", ".join(str(p) for p in summary.skipped[:3])
        print(f"skipped {len(summary.skipped)} unreadable file(s) (first: {first})")
    print(f"wrote {summary.features}")
    print(f"wrote {summary.index}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Distil the exported teacher into a narrower student on synthetic images."""
    from ssl_fed.serve.distill import DistillOptions, distill

    given = {"images_per_epoch": args.images, "epochs": args.epochs}
    opts = DistillOptions(
        width=args.width, seed=args.seed, **{k: v for k, v in given.items() if v is not None}
    )
    written = distill(
        Path(args.teacher), Path(args.out), opts, fmt=args.format, quantize=args.quantize
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export``, ``embed`` and ``distill`` to the ``ssl-fed`` parser."""
    p = sub.add_parser("export", help="export the global encoder and its model card")
    p.add_argument("--run", required=True, help="run folder (holds checkpoints/last.pt)")
    p.add_argument("--format", choices=FORMATS, default="torchscript")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="also write encoder.int8.onnx, calibrated on synthetic images (needs --format onnx)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("embed", help="embed a folder or .npz of images with an encoder")
    p.add_argument("--model", required=True, help="export folder, run folder, .onnx or .pt file")
    p.add_argument("--data", required=True, help="image folder, .npz, or IDX images file")
    p.add_argument("--out", required=True, help="features file (.npy); index beside it")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (and chunk)")
    p.add_argument("--on-bad-file", choices=["error", "skip"], default="error")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("distill", help="distil an exported encoder into a smaller student")
    p.add_argument("--teacher", required=True, help="folder written by `ssl-fed export`")
    p.add_argument("--width", type=int, required=True, help="student width (teacher: 32)")
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--quantize", choices=["int8"], help="also write an int8 copy (ONNX)")
    p.add_argument(
        "--images", type=int, help="synthetic images per epoch (default: DistillOptions, 4096)"
    )
    p.add_argument("--epochs", type=int, help="training epochs (default: DistillOptions, 60)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_distill)
