"""Upstream-compatible import path for dynamic MAD packages.

``scripts/<dir>/get_models_json.py`` files written for upstream madengine say
``from madengine.utils.discover_models import CustomModel``. This is the very class
the madengine.core collection uses when it runs those files, so ``isinstance``
checks and subclasses work the same wherever the file is imported.
"""
from __future__ import annotations

import sys

try:
    from ansible_collections.madengine.core.plugins.module_utils._custom_model import CustomModel
except ImportError:  # a source tree: make the collection importable, then retry
    from madengine import collection

    sys.path.append(str(collection.collections_path()))
    from ansible_collections.madengine.core.plugins.module_utils._custom_model import CustomModel

__all__ = ["CustomModel"]
