"""One data-holding site: where its data and ledger live (``node``) and one round (``rounds``).

Pure library code (no Flower): the ClientApp (:mod:`client.app`, through the adapter
:mod:`ssl_fed.fed.site`) and the site's warm worker (:mod:`ssl_fed.deploy.worker`) call it.
"""
