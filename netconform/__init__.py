"""netconform: a pytest-based network conformance suite for Kubernetes clusters."""

__version__ = "0.1.0"
