"""lotedge: offline-first parking-lot edge appliance."""

__version__ = "0.1.0"
