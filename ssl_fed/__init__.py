"""ssl-fed: federated self-supervised pretraining under DP-SGD and secure aggregation."""

__version__ = "0.1.0"
