"""Licence plate recognition: camera frames in, trusted plate reads out."""
