"""Serving a released encoder at a site: load it, embed images, quantize it, distill it.

Everything here is post-processing of the released encoder, or uses only synthetic images: DP
guarantees survive post-processing (Dwork & Roth, "The Algorithmic Foundations of Differential
Privacy", 2014, Prop. 2.1), so none of it costs any site privacy budget. Distilling or
calibrating on site data would have to go through the site's ledger, so it is not done.
"""
