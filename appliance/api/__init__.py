"""The local HTTP API (Starlette): `app` assembles one module per resource group."""
