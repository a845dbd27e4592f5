"""Functional core: pure domain logic. No IO, no asyncio, no clock reads: time is an argument."""
