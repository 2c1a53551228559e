"""Refusals for ``privacy.noise=distributed``: combinations whose guarantee cannot be stated.

Distributed noise is only private against the server if the server sees nothing but the sum:
every site adds a *fraction* of the noise, so one site's update alone is barely noised. Hence
ssl-fed's own SecAgg+ is required (Flower's stock SecAgg+ quantizes floats into a fixed range
and cannot carry modular integer noise shares). The analysis is one noisy gradient step per
round (DP-FedSGD); several local steps would need Heikkilä, arXiv 2407.19286, which is not
implemented, so ``train.local_steps > 1`` is refused.
"""

from __future__ import annotations

from ssl_fed.config import ConfigError, RootConfig


def expected_min_noisy_sites(cfg: RootConfig) -> int:
    """``privacy.min_noisy_sites``, else SecAgg's minimum survivors for this federation."""
    if cfg.privacy.min_noisy_sites is not None:
        return cfg.privacy.min_noisy_sites
    from ssl_fed.fed.secagg import expected_sites, secagg_config
    from ssl_fed.secagg.params import resolve_round

    n = max(3, expected_sites(cfg))
    return resolve_round(n, secagg_config(cfg.aggregation)).min_survivors


def check_distributed(cfg: RootConfig) -> None:
    """Raise :class:`ConfigError` (one line: reason and fix) if distributed noise is unsafe."""
    name = cfg.aggregation.name
    if name == "plain":
        raise ConfigError(
            "privacy.noise=distributed with aggregation=plain is refused: without secure "
            "aggregation the server would see each site's update carrying only a 1/K share of the "
            "noise; use aggregation=secagg or privacy.noise=local"
        )
    if name != "secagg":
        raise ConfigError(
            f"privacy.noise=distributed with aggregation={name} is refused: it needs ssl-fed's own "
            "SecAgg+ (modular integer sums); Flower's stock SecAgg+ quantizes floats into a fixed "
            "range and cannot carry integer noise shares; use aggregation=secagg"
        )
    if not cfg.privacy.enabled:
        raise ConfigError(
            "privacy.noise=distributed needs privacy on (privacy=dpsgd); with privacy off there is "
            "no noise to distribute"
        )
    if cfg.train.local_steps > 1:
        raise ConfigError(
            f"train.local_steps={cfg.train.local_steps} with privacy.noise=distributed is refused: "
            "the distributed analysis here is one noisy step per round (DP-FedSGD); several local "
            "steps need arXiv 2407.19286, which is not implemented; use train.local_steps=1"
        )
    if cfg.data.public_size is None or cfg.data.public_size < cfg.train.batch_size:
        raise ConfigError(
            f"privacy.noise=distributed needs data.public_size >= train.batch_size (got "
            f"{cfg.data.public_size}): every site samples at the public rate q = batch_size / "
            "public_size, from which the server and the sites derive σ; set data.public_size"
        )
    if cfg.privacy.unit != "image":
        raise ConfigError(
            f"privacy.unit={cfg.privacy.unit} with privacy.noise=distributed is not wired yet: "
            "the DP-FedSGD round samples images; use privacy.unit=image or privacy.noise=local"
        )
    from ssl_fed.fed.secagg import expected_sites

    m, n = expected_min_noisy_sites(cfg), expected_sites(cfg)
    if m > n:
        raise ConfigError(
            f"privacy.min_noisy_sites={m} exceeds the {n} sites sampled per round: no round could "
            "be unmasked; lower it or sample more sites"
        )
