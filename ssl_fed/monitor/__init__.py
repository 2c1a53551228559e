"""Site-side drift monitoring in the global encoder's feature space, private by construction.

The exports are imported on first use (:mod:`ssl_fed.lazy`): the CLI registers
:mod:`ssl_fed.monitor.report` without importing torch and opacus.
"""

from typing import TYPE_CHECKING

from ssl_fed.lazy import lazy_exports

if TYPE_CHECKING:
    from ssl_fed.monitor.drift import ALARM_KEY, DriftMonitor, DriftReading
    from ssl_fed.monitor.release import MECHANISMS, RELEASES, keep_probability
    from ssl_fed.monitor.sketch import (
        FeatureMap,
        ReferenceSketch,
        build_sketch,
        mean_embedding,
        public_threshold,
        sensitivity,
    )

__all__ = [
    "ALARM_KEY",
    "MECHANISMS",
    "RELEASES",
    "DriftMonitor",
    "DriftReading",
    "FeatureMap",
    "ReferenceSketch",
    "build_sketch",
    "keep_probability",
    "mean_embedding",
    "public_threshold",
    "sensitivity",
]
_SKETCH = ("FeatureMap", "ReferenceSketch", "build_sketch", "mean_embedding", "public_threshold")
__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(("ALARM_KEY", "DriftMonitor", "DriftReading"), "drift"),
        **dict.fromkeys(("MECHANISMS", "RELEASES", "keep_probability"), "release"),
        **dict.fromkeys((*_SKETCH, "sensitivity"), "sketch"),
    },
)
