"""Pure models shared by the engine and the reports: no Kubernetes, no I/O.

`partition` reads which node pairs are cut (FM-13); `scope_inference` finds the smallest description, in
the matrix's coordinates (subject, target, layer/protocol), of the cells that fail.
"""
