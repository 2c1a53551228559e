"""Shared figure pieces of the privacy-utility benchmarks (utility.py, utility_fashion.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def reference_lines(ax: Any, rows: Sequence[dict[str, Any]], k: str, refs: Sequence[str]) -> None:
    """Draw each reference row's probe at ``k`` labels as a horizontal line (styles in order)."""
    for ref, style in zip(refs, (":", "--", "-."), strict=False):
        hit = [x for x in rows if x["row"] == ref]
        if hit:
            ax.axhline(hit[0]["probe"][k], linestyle=style, color="gray", label=ref)


def epsilon_axis(ax: Any, ylabel: str) -> None:
    """A log ε axis with ticks at the measured budgets 1, 3, 8 (δ = 1e-5)."""
    ax.set_xscale("log")
    ax.set_xticks([1, 3, 8], labels=["1", "3", "8"])
    ax.minorticks_off()
    ax.set_xlabel("ε per site (δ = 1e-5)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def save(fig: Any, axes: Sequence[Any], name: str) -> str:
    """Save ``fig`` beside this file as ``name``; return its path relative to the repository."""
    axes[0].legend(fontsize=7)
    path = Path(__file__).with_name(name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path.relative_to(Path(__file__).resolve().parents[1]))
