"""The `netconform` command line."""
