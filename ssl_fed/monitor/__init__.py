"""Site-side drift monitoring in the global encoder's feature space, private by construction."""

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
