"""Where the madengine.core collection lives, and how Ansible is told.

Installed with pip, the collection sits in site-packages/ansible_collections/madengine/core.
From a source tree the repository root *is* the collection, so a small symlink tree under
the user's cache makes it visible as ``ansible_collections/madengine/core``.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import sys
from functools import lru_cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _is_collection(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() and (path / "plugins" / "modules").is_dir()


@lru_cache(maxsize=1)
def collection_root() -> Path:
    """The directory holding galaxy.yml, plugins/, roles/, playbooks/."""
    installed = _PACKAGE_DIR.parent / "ansible_collections" / "madengine" / "core"
    if _is_collection(installed):
        return installed
    source = _PACKAGE_DIR.parent.parent  # driver/madengine -> repository root
    if _is_collection(source):
        return source
    raise RuntimeError(f"the madengine.core collection was not found beside {_PACKAGE_DIR}")


@lru_cache(maxsize=1)
def collections_path() -> Path:
    """A directory D with D/ansible_collections/madengine/core being the collection."""
    root = collection_root()
    if root.parent.name == "madengine" and root.parent.parent.name == "ansible_collections":
        return root.parent.parent.parent
    # One tree per source checkout: two checkouts must never re-point each other's link.
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "madengine" / "collections" / key
    link = cache / "ansible_collections" / "madengine" / "core"
    if not (link.is_symlink() and link.resolve() == root):
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".core.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(root, target_is_directory=True)
        os.replace(tmp, link)
    return cache


def playbook(name: str) -> Path:
    return collection_root() / "playbooks" / name


def local_inventory() -> Path:
    return collection_root() / "inventories" / "local" / "hosts.yml"


def module_utils(name: str):
    """The collection's module_utils module ``name`` (e.g. ``_nodes``): the driver reuses the
    engine's own code instead of writing it again."""
    top = str(collections_path())
    if top not in sys.path:
        sys.path.append(top)
    return importlib.import_module(f"ansible_collections.madengine.core.plugins.module_utils.{name}")
