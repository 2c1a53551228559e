"""Data formats kept one per file: every module here is imported by :mod:`ssl_fed.data.loaders`.

A module registers its format with :func:`ssl_fed.data.registry.register_path_format` (or
``register_data_format``); ``configs/data/<name>.yaml`` selects it. ``docs/extending.md`` walks
through one.
"""
