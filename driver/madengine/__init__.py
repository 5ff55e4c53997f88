"""madengine: build, run and compare AI-model benchmarks from MAD packages."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("madengine")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"
