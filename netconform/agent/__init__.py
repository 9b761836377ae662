"""The probe agent: developed in this package, shipped into pods as one stdlib-only file.

`probe_agent.py` imports nothing outside the standard library (Python >= 3.8), so the kit mounts it from a
ConfigMap into any image that has `python3`, and the outside client runs the same file.

>>> SOURCE.name
'probe_agent.py'
"""

from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("probe_agent.py")
