"""The lab's own manifests (kube-system and the `kubernetes` Service) as YAML templates.

Each file is one or more YAML documents with `${NAME}` placeholders (`string.Template`); `render` fills
them and returns the objects, and refuses a placeholder left without a value.

>>> [o["metadata"]["name"] for o in render("lab-cni-pod.yaml", NODE="node-2")]
['lab-cni-node-2']
"""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

import yaml


def render(name: str, **values: object) -> list[dict[str, Any]]:
    """The documents of manifest `name` with every `${KEY}` replaced by `values[KEY]`."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    try:
        filled = Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise ValueError(f"manifest {name}: no value for ${{{exc.args[0]}}}") from None
    return [doc for doc in yaml.safe_load_all(filled) if doc]
