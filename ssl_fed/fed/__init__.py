"""Federation pieces shared by the server and client apps (the only flwr importers in ssl_fed)."""
