"""The lab's emulated Kubernetes API server: store, admission, PodSecurity, tables, TLS."""
