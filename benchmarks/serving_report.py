"""Tables, verdicts and per-op profiles for `benchmarks/serving.py` (formatting only)."""

from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path
from typing import Any

from ssl_fed.serve.quantize import synthetic_images
from ssl_fed.serve.runtime import onnx_session

TARGETS = "int8: >= 3x smaller, >= 1.5x fp32 throughput at batch 256, <= 1 point probe loss; "
TARGETS += "distilled: >= 4x fewer parameters, <= 2 points probe loss"
VARIANTS = ("fp32", "int8", "distilled", "distilled + int8")


def describe(card: dict[str, Any]) -> str:
    """Say where an encoder came from, from its export card (nothing typed by hand)."""
    init = card.get("initialisation") or {}
    data = card["data"]
    size = f"{data['image_size']}x{data['image_size']}x{data['channels']}"
    if card.get("rounds"):
        eps = card["epsilon_max"]
        return (
            f"federated run {card['run_id']}: {card['rounds']} rounds, {len(card['sites'])} sites, "
            f"ε max {eps:.2f} at δ {card['delta']}, {card['secure_aggregation']}, "
            f"init {init.get('kind', 'random')}; input {size}"
        )
    return (
        f"pretrain-synthetic warm start ({init.get('family')}, {init.get('num_images')} images, "
        f"{init.get('epochs')} epochs; no site data, ε 0); input {size}"
    )


def op_profile(path: Path, runs: int = 10) -> dict[str, float]:
    """Share of kernel time per ONNX op type (%, top 6) at batch 256, 1 thread (ORT profiler)."""
    with tempfile.TemporaryDirectory(prefix="ssl-fed-prof-") as tmp:
        session = onnx_session(path, threads=1, profile_prefix=str(Path(tmp) / "p"))
        node = session.get_inputs()[0]
        _, channels, size, _ = node.shape
        x = synthetic_images(256, int(size), int(channels), seed=7)
        for _ in range(runs):
            session.run(None, {node.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    total: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
    whole = sum(total.values()) or 1
    return {op: round(100 * t / whole, 1) for op, t in total.most_common(6)}


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown table, one line per (encoder, variant)."""
    lines = [
        "| encoder | model | params | file KiB | latency b=1 ms (1t / 2t) | throughput b=256 "
        "img/s (1t / 2t) | probe k=10 / all % |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        tag, variant = name.split(" / ")
        lines.append(
            f"| {tag} | {variant} | {r['params']:,} | {r['bytes'] / 1024:.0f} | "
            f"{r['latency_ms_1t']:.3f} / {r['latency_ms_2t']:.3f} | "
            f"{r['throughput_1t']:,.0f} / {r['throughput_2t']:,.0f} | "
            f"{100 * r['probe']['10']:.1f} / {100 * r['probe']['all']:.1f} |"
        )
    return lines


def _loss(base: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    return {k: 100 * (base["probe"][k] - other["probe"][k]) for k in ("10", "all")}


def verdicts(tag: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """Targets met or missed for one encoder's four variants."""
    r = {v: rows[f"{tag} / {v}"] for v in VARIANTS}
    lines = []
    for base, quant in (("fp32", "int8"), ("distilled", "distilled + int8")):
        b, q = r[base], r[quant]
        smaller = b["bytes"] / q["bytes"]
        speed = {t: q[f"throughput_{t}t"] / b[f"throughput_{t}t"] for t in (1, 2)}
        loss = _loss(b, q)
        ok = smaller >= 3 and min(speed.values()) >= 1.5 and max(loss.values()) <= 1
        lines.append(
            f"- {tag}, {quant} vs {base}: {smaller:.2f}x smaller (target >= 3x), throughput "
            f"{speed[1]:.2f}x / {speed[2]:.2f}x at 1 / 2 threads (target >= 1.5x), probe loss "
            f"{loss['10']:+.1f} / {loss['all']:+.1f} points at 10 / all (target <= 1): "
            f"{'met' if ok else 'missed'}"
        )
    fewer = r["fp32"]["params"] / r["distilled"]["params"]
    loss = _loss(r["fp32"], r["distilled"])
    ok = fewer >= 4 and max(loss.values()) <= 2
    lines.append(
        f"- {tag}, distilled vs fp32: {fewer:.2f}x fewer parameters (target >= 4x), probe loss "
        f"{loss['10']:+.1f} / {loss['all']:+.1f} points at 10 / all (target <= 2): "
        f"{'met' if ok else 'missed'}"
    )
    return lines
