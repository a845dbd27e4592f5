"""Textual attendant UI: the booth terminal against the running service's API."""
