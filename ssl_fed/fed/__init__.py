"""Federation pieces shared by the server and client apps (the only flwr importers in ssl_fed).

``arrays`` (which tensors leave a site, deltas), ``guard`` (fail-closed reply checks),
``budget`` (the site's answer to the server's budget query), ``runconfig`` (Hydra <-> Flower
run config) and ``secagg`` (the one module that touches Flower's SecAgg+).
"""
