"""The Flower ClientApp of an ssl-fed site (see README.md)."""
