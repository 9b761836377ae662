"""Parsers of tool output and kernel files the checks read (pure)."""
