"""The ServerApp ``flwr run`` loads (``[tool.flwr.app.components] serverapp``).

A thin adapter: the app, its rounds, aggregators and tracking live in the library
(:func:`ssl_fed.fed.serverapp.make_server_app`); the run's config arrives as Flower's flat run
config and is composed by :func:`ssl_fed.fed.runconfig.from_run_config`.
"""

from ssl_fed.fed.serverapp import make_server_app

app = make_server_app()
"""The ServerApp of a ``flwr run`` (config from the run config)."""

__all__ = ["app", "make_server_app"]
