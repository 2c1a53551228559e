"""The ClientApp ``flwr run`` loads (``[tool.flwr.app.components] clientapp``).

A thin adapter: the handlers, mods and guard live in the library
(:func:`ssl_fed.fed.clientapp.make_client_app`); the site's work runs in-process (simulation) or
in its warm worker (:mod:`ssl_fed.deploy.worker`, ``ssl-fed site start``).
"""

from ssl_fed.fed.clientapp import make_client_app

app = make_client_app()
"""The ClientApp of a ``flwr run`` or a deployed site (config from the run config)."""

__all__ = ["app", "make_client_app"]
