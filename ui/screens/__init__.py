"""The attendant app's screens and views."""
