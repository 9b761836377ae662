"""Checks: what is measured and what passes (the catalogue, expectations, parsers)."""
