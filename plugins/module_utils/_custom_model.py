# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model class that dynamic MAD packages build their models from.

Packages written for upstream madengine say
``from madengine.utils.discover_models import CustomModel`` in
``scripts/<dir>/get_models_json.py``; that name resolves to this class (see
``_package.upstream_import``), with the same fields, defaults and hooks.
"""
from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field


@dataclass
class CustomModel:
    """One model of a dynamic package; ``list_models()`` returns a list of these."""

    name: str
    dockerfile: str = ""
    dockercontext: str = ""
    scripts: str = ""
    url: str = ""
    cred: str = ""
    owner: str = ""
    data: str = ""
    n_gpus: str = "-1"
    timeout: int = 7200
    training_precision: str = ""
    tags: typing.List[str] = field(default_factory=list)
    args: str = ""
    multiple_results: str = ""
    skip_gpu_arch: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def update_model(self) -> None:
        """Hook called once when the model is selected, before its paths are resolved.

        Override it to fill fields lazily (e.g. args from a config file). Changing
        ``name`` or ``tags`` here has no effect: selection has already used them.
        """
