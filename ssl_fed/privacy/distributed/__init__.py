"""Distributed DP under secure aggregation: each site adds an integer share of the noise.

Pipeline per site and round (Kairouz, Liu, Steinke, arXiv 2102.06387, §4; Agarwal, Kairouz, Liu,
arXiv 2110.04995, §4): randomized Hadamard rotation with a public per-round seed
(:mod:`.rotation`), scaling by ``1/γ`` and conditional randomized rounding of every unit's
clipped gradient (:mod:`.rounding`), the site's Skellam noise share and reduction modulo ``2^b``
(:mod:`.codec`). The server unmasks the sum, checks for wrap-around, unscales and un-rotates.
:mod:`.params` picks ``γ`` for the bits and states the sensitivities the accountant uses.
"""
