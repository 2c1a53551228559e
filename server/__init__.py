"""The Flower ServerApp of ssl-fed (see README.md)."""
