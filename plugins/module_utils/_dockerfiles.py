# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which Dockerfiles a model builds: ``<prefix>.*`` filtered by their ``# CONTEXT`` line.

A Dockerfile says which context it is for in its first 5 lines, e.g.
``# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}``. A file is kept when every
key it shares with the context has an equal value; a file without the line fits
every context. Finding nothing is not an error here: the model carries
``dockerfile_error`` and the build reports it as that model's failure.
"""
from __future__ import annotations

import ast
import os
import re
from typing import Any, Dict, List, Optional, Tuple

CONTEXT_LINE = re.compile(r"^\s*#\s*CONTEXT\s+(.*?)\s*$")
HEAD_LINES = 5


class DockerfileFinder:
    """Lists each directory and reads each Dockerfile head once (thousands of models share them)."""

    def __init__(self, mad_dir: str, context: dict):
        self.mad_dir = mad_dir
        self.context = context
        self._listings: Dict[str, List[str]] = {}
        self._contexts: Dict[str, Tuple[Optional[dict], Optional[str]]] = {}
        self._selected: Dict[str, Tuple[List[str], Optional[str]]] = {}
        self.warnings: List[str] = []

    def _listing(self, directory: str) -> List[str]:
        if directory not in self._listings:
            try:
                with os.scandir(os.path.join(self.mad_dir, directory)) as entries:
                    self._listings[directory] = sorted(e.name for e in entries if e.is_file())
            except OSError:
                self._listings[directory] = []
        return self._listings[directory]

    def candidates(self, prefix: str) -> List[str]:
        """Files named ``<prefix>.*`` (paths relative to the MAD dir), as upstream's ``ls``."""
        directory, base = os.path.split(prefix)
        start = base + "."
        return [os.path.join(directory, name) for name in self._listing(directory)
                if name.startswith(start) and not name.endswith(".dockerignore")]

    def context_of(self, path: str) -> Tuple[Optional[dict], Optional[str]]:
        """(CONTEXT dict or {} when absent, problem) for one Dockerfile."""
        if path not in self._contexts:
            self._contexts[path] = self._read_context(path)
            problem = self._contexts[path][1]
            if problem:
                self.warnings.append(f"{path}: {problem}; the file is not used")
        return self._contexts[path]

    def _read_context(self, path: str) -> Tuple[Optional[dict], Optional[str]]:
        try:
            with open(os.path.join(self.mad_dir, path), encoding="utf-8", errors="replace") as handle:
                head = [handle.readline() for _line in range(HEAD_LINES)]
        except OSError as err:
            return None, f"cannot be read ({err.strerror})"
        for line in head:
            match = CONTEXT_LINE.match(line)
            if not match:
                continue
            try:
                value = ast.literal_eval(match.group(1))
            except (ValueError, SyntaxError):
                return None, f"its CONTEXT line is not a Python dict literal: {match.group(1)!r}"
            if not isinstance(value, dict):
                return None, f"its CONTEXT line is not a dict: {match.group(1)!r}"
            return value, None
        return {}, None

    def select(self, prefix: str) -> Tuple[List[str], Optional[str]]:
        """(kept Dockerfiles, error when none is kept) for a model's ``dockerfile`` prefix."""
        if prefix not in self._selected:
            self._selected[prefix] = self._select(prefix, self.context)
        kept, error = self._selected[prefix]
        return list(kept), error

    def _select(self, prefix: str, context: dict) -> Tuple[List[str], Optional[str]]:
        if not prefix:
            return [], "the model has no 'dockerfile' (a path prefix such as docker/<name>)"
        files = self.candidates(prefix)
        if not files:
            directory = os.path.dirname(prefix) or "."
            present = [os.path.join(directory, n) for n in self._listing(directory)]
            shown = ", ".join(present[:10]) + (" ..." if len(present) > 10 else "") if present else "none"
            return [], (f"no Dockerfile matches {prefix}.* (files in {directory}/: {shown})")
        kept = [f for f in files if fits(self.context_of(f)[0], context)]
        if kept:
            return kept, None
        described = "; ".join(
            f"{f} has CONTEXT {self.context_of(f)[0]!r}" if self.context_of(f)[1] is None
            else f"{f} {self.context_of(f)[1]}" for f in files)
        compared = {k for f in files for k in (self.context_of(f)[0] or {})} | {"gpu_vendor", "guest_os"}
        used = {k: context[k] for k in sorted(compared) if k in context}
        return [], f"no Dockerfile of {prefix}.* fits the context {used!r}: {described}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return a == b


def fits(dockerfile_context: Optional[dict], context: dict) -> bool:
    """True when every key the Dockerfile shares with the context has an equal value."""
    if dockerfile_context is None:
        return False
    return all(_same(value, context[key]) for key, value in dockerfile_context.items() if key in context)


def select_dockerfiles(mad_dir: str, prefix: str, context: dict) -> Tuple[List[str], Optional[str]]:
    """One model's Dockerfiles for a context (e.g. after gpu_facts found the vendor)."""
    return DockerfileFinder(mad_dir, context).select(prefix)
