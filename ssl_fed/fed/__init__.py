"""Federation pieces shared by the server and client apps (with ssl_fed.secagg, the flwr importers).

``arrays`` (which tensors leave a site, deltas), ``messages`` (train message layouts and a round's
outcome), ``guard`` (fail-closed reply checks), ``budget`` (the site's answer to the server's budget
query), ``runconfig`` (Hydra <-> Flower run config) and ``secagg`` (the one seam module through
which every secure-aggregation implementation, ssl-fed's own and Flower's stock SecAgg+, is used).
"""
