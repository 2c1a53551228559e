"""The federation layer: the only library package that imports Flower (tests/test_boundary.py).

Apps: ``serverapp`` (the ServerApp), ``clientapp`` (the ClientApp), ``simulation`` (a federation
on one machine); ``server/``, ``client/`` and ``simulations/`` are thin adapters over them.
Server side: ``rounds`` (budget query, sampling, applying the mean delta), ``aggregators`` (the
registry ``aggregation.name`` selects from: ``secagg``, ``flower-secaggplus``, ``plain``),
``secagg`` / ``secagg_driver`` (ssl-fed's SecAgg+ over the Message API), ``legacy`` (Flower's
stock SecAgg+), ``plain``, ``tracking`` and ``progress`` (evaluation, metrics, TensorBoard).
Site side: ``secagg_mod``, ``guard`` (fail-closed reply checks), ``budget`` and ``policy``.
Shared: ``arrays`` (which tensors leave a site), ``layout`` and ``messages`` (train records),
``runconfig`` (Hydra <-> Flower run config). ``aggregators``, ``layout`` and ``secagg`` import
without Flower, because config validation reaches them.
"""
