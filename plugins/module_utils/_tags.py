# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``--tags`` grammar: which models a selector picks, and the args it appends.

``X``        models named X or tagged X; ``all`` selects every model
``D/X``      among the models of ``scripts/D``: the one named ``D/X``, those tagged X
             (``D/all``: all of them)
``D:X``      older notation for the model ``D/X`` (D a directory, X without ``=``)
``S:k=v:f``  any selector S, then ``--k v`` and ``--f`` appended to each model's args
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError


class Taggable(Protocol):
    name: str
    tags: List[str]
    directory: Optional[str]


@dataclass
class Selector:
    raw: str
    target: str
    params: List[Tuple[str, Optional[str]]] = field(default_factory=list)

    @property
    def extra_args(self) -> str:
        return "".join(f" --{k}" if v is None else f" --{k} {v}" for k, v in self.params)


class Index:
    """Names, tags and directories of a package, for constant-time lookups."""

    def __init__(self, models: Sequence[Taggable]):
        self.models = models
        self.by_name: Dict[str, List[int]] = {}
        self.by_tag: Dict[str, List[int]] = {}
        self.by_dir: Dict[str, List[int]] = {}
        for i, model in enumerate(models):
            self.by_name.setdefault(model.name, []).append(i)
            for tag in model.tags:
                self.by_tag.setdefault(tag, []).append(i)
            if model.directory:
                self.by_dir.setdefault(model.directory, []).append(i)

    def known(self, word: str) -> bool:
        return word in self.by_name or word in self.by_tag

    def match(self, target: str) -> List[int]:
        if target == "all":
            return list(range(len(self.models)))
        if "/" in target:
            scope, wanted = target.split("/", 1)
            members = self.by_dir.get(scope)
            if members and wanted:
                if wanted == "all":
                    return list(members)
                hits = [i for i in members if self.models[i].name == target or wanted in self.models[i].tags]
                if hits:
                    return hits
        found = set(self.by_name.get(target, ())) | set(self.by_tag.get(target, ()))
        return sorted(found)


def parse_selector(raw: str, index: Index) -> Selector:
    parts = [p.strip() for p in raw.split(":")]
    if not parts[0]:
        raise InvalidInputError(f"the tag '{raw}' has no model name or tag before its ':' parts",
                                fix="Write it as name:key=value, e.g. dummy:batch_size=512")
    target, rest = parts[0], parts[1:]
    rest = [p for p in rest if p]
    if (rest and "/" not in target and target in index.by_dir and "=" not in rest[0]
            and (f"{target}/{rest[0]}" in index.by_name or not index.known(target))):
        target, rest = f"{target}/{rest[0]}", rest[1:]  # older D:X notation
    params: List[Tuple[str, Optional[str]]] = []
    for part in rest:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not key:
            raise InvalidInputError(f"the tag '{raw}' has a parameter without a name: ':{part}'",
                                    fix="Parameters are :key=value or :flag")
        params.append((key, value.strip() if sep and value.strip() else None))
    return Selector(raw=raw, target=target, params=params)


def split_tags(tags: Iterable[str]) -> List[str]:
    """Repeatable, comma-separated ``--tags`` values as one list."""
    return [t.strip() for raw in tags for t in str(raw).split(",") if t.strip()]


def _no_match(selector: Selector, index: Index, where: str) -> InvalidInputError:
    words = list(index.by_name) + [t for t in index.by_tag if t not in index.by_name]
    words += [f"{d}/all" for d in index.by_dir]
    near = difflib.get_close_matches(selector.target, words, n=5, cutoff=0.5)
    if not near:
        lowered = {w.lower(): w for w in words}
        near = [lowered[w] for w in difflib.get_close_matches(selector.target.lower(), list(lowered), n=5, cutoff=0.5)]
    if near:
        hint = "closest model names and tags: " + ", ".join(near)
    elif words:
        hint = f"the package has {len(index.models)} models, e.g. " + ", ".join(words[:5])
    else:
        hint = "the package has no models"
    what = f"the tag '{selector.raw}' matches no model"
    if selector.target != selector.raw:
        what += f" (looked for '{selector.target}')"
    return InvalidInputError(f"{what}; {hint}", where, "Run 'madengine discover' to list every model")


def select(models: Sequence[Taggable], tags: Iterable[str], where: str) -> List[Tuple[int, str]]:
    """(model index, args to append) for every selected model, in tag order, without repeats.

    No tags select every model (a listing). A selector that matches nothing is an error.
    """
    index = Index(models)
    selectors = [parse_selector(t, index) for t in split_tags(tags)] or [Selector("all", "all")]
    if not models:
        raise InvalidInputError("the MAD package has no models, so nothing can be selected", where,
                                "Add model entries to models.json or to scripts/<dir>/models.json")
    picked: List[Tuple[int, str]] = []
    seen = set()
    for selector in selectors:
        hits = index.match(selector.target)
        if not hits:
            raise _no_match(selector, index, where)
        extra = selector.extra_args
        for i in hits:
            if (i, extra) not in seen:
                seen.add((i, extra))
                picked.append((i, extra))
    return picked
