"""Shipped ONNX plate models (package data; see README.md here for provenance and licence)."""
