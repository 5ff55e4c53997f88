# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``additional_docker_run_options``: a model's extra ``docker run`` flags, validated.

The string is split like a shell would (``shlex``) and each known option becomes a field
of :class:`RunOptions`, which maps onto Docker SDK arguments. Nothing here is ever handed
to a shell; an option we do not know is an :class:`InvalidInputError` naming it.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([bkmgt]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave",
                 "rprivate", "nocopy"}


@dataclass
class RunOptions:
    """What a model's extra ``docker run`` flags ask for. ``None``/empty = not given."""

    environment: Dict[str, str] = field(default_factory=dict)
    binds: List[str] = field(default_factory=list)
    devices: List[str] = field(default_factory=list)
    cap_add: List[str] = field(default_factory=list)
    security_opt: List[str] = field(default_factory=list)
    group_add: List[str] = field(default_factory=list)
    ulimits: List[Dict[str, object]] = field(default_factory=list)
    tmpfs: Dict[str, str] = field(default_factory=dict)
    extra_hosts: Dict[str, str] = field(default_factory=dict)
    labels: Dict[str, str] = field(default_factory=dict)
    shm_size: Optional[int] = None
    mem_limit: Optional[int] = None
    ipc_mode: Optional[str] = None
    network_mode: Optional[str] = None
    privileged: bool = False
    user: Optional[str] = None
    working_dir: Optional[str] = None
    entrypoint: Optional[List[str]] = None
    hostname: Optional[str] = None
    cpuset_cpus: Optional[str] = None
    tokens: List[str] = field(default_factory=list)


def _size(value: str, option: str, where: str) -> int:
    match = _SIZE.match(value.strip())
    if not match:
        raise InvalidInputError(
            f"{option} needs a size such as 16G or 512m, got {value!r}", where,
            "Use a number with an optional unit b, k, m, g or t")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _env(value: str, opts: RunOptions, option: str, where: str) -> None:
    name, sep, val = value.partition("=")
    if not _ENV_NAME.match(name):
        raise InvalidInputError(f"{option} {value!r} is not NAME=value", where)
    if not sep:  # docker copies a bare NAME from the caller's environment
        if name not in os.environ:
            return
        val = os.environ[name]
    opts.environment[name] = val


def _volume(value: str, opts: RunOptions, option: str, where: str) -> None:
    parts = value.split(":")
    if len(parts) < 2 or len(parts) > 3 or not parts[0] or not parts[1].startswith("/"):
        raise InvalidInputError(
            f"{option} {value!r} is not HOST_PATH:CONTAINER_PATH[:ro|rw]", where,
            "Give an absolute container path; anonymous volumes are not supported")
    if len(parts) == 3 and not set(parts[2].split(",")) <= _VOLUME_MODES:
        raise InvalidInputError(f"{option} {value!r} has an unknown mode {parts[2]!r}", where)
    opts.binds.append(value)


def _device(value: str, opts: RunOptions, option: str, where: str) -> None:
    parts = value.split(":")
    if not parts[0].startswith("/") or len(parts) > 3:
        raise InvalidInputError(
            f"{option} {value!r} is not HOST_DEVICE[:CONTAINER_DEVICE[:rwm]]", where)
    opts.devices.append(value)


def _ulimit(value: str, opts: RunOptions, option: str, where: str) -> None:
    name, sep, limits = value.partition("=")
    soft, _sep, hard = limits.partition(":")
    try:
        soft_i = int(soft)
        hard_i = int(hard) if hard else soft_i
    except ValueError:
        soft_i = hard_i = None  # type: ignore[assignment]
    if not name or not sep or soft_i is None:
        raise InvalidInputError(f"{option} {value!r} is not NAME=SOFT[:HARD]", where,
                                "For example --ulimit memlock=-1:-1")
    opts.ulimits.append({"name": name, "soft": soft_i, "hard": hard_i})


def _key_value(target: str, sep: str) -> Callable[[str, RunOptions, str, str], None]:
    def handle(value: str, opts: RunOptions, option: str, where: str) -> None:
        key, found, val = value.partition(sep)
        if not key or (sep == ":" and not found):
            raise InvalidInputError(f"{option} {value!r} is not KEY{sep}VALUE", where)
        getattr(opts, target)[key] = val
    return handle


def _append(target: str) -> Callable[[str, RunOptions, str, str], None]:
    def handle(value: str, opts: RunOptions, option: str, where: str) -> None:
        getattr(opts, target).append(value)
    return handle


def _set(target: str) -> Callable[[str, RunOptions, str, str], None]:
    def handle(value: str, opts: RunOptions, option: str, where: str) -> None:
        setattr(opts, target, value)
    return handle


def _set_size(target: str) -> Callable[[str, RunOptions, str, str], None]:
    def handle(value: str, opts: RunOptions, option: str, where: str) -> None:
        setattr(opts, target, _size(value, option, where))
    return handle


def _entrypoint(value: str, opts: RunOptions, option: str, where: str) -> None:
    opts.entrypoint = [value] if value else []


def _privileged(value: str, opts: RunOptions, option: str, where: str) -> None:
    if value.lower() not in ("true", "1", "false", "0"):
        raise InvalidInputError(f"{option} takes no value, got {value!r}", where)
    opts.privileged = value.lower() in ("true", "1")


_Handler = Callable[[str, RunOptions, str, str], None]

# option name -> (takes a value, handler); aliases share a handler.
_OPTIONS: Dict[str, Tuple[bool, _Handler]] = {
    "--shm-size": (True, _set_size("shm_size")),
    "--memory": (True, _set_size("mem_limit")),
    "-m": (True, _set_size("mem_limit")),
    "--ipc": (True, _set("ipc_mode")),
    "--network": (True, _set("network_mode")),
    "--net": (True, _set("network_mode")),
    "--privileged": (False, _privileged),
    "--cap-add": (True, _append("cap_add")),
    "--security-opt": (True, _append("security_opt")),
    "--ulimit": (True, _ulimit),
    "-e": (True, _env),
    "--env": (True, _env),
    "-v": (True, _volume),
    "--volume": (True, _volume),
    "--device": (True, _device),
    "--group-add": (True, _append("group_add")),
    "-u": (True, _set("user")),
    "--user": (True, _set("user")),
    "-w": (True, _set("working_dir")),
    "--workdir": (True, _set("working_dir")),
    "--entrypoint": (True, _entrypoint),
    "-h": (True, _set("hostname")),
    "--hostname": (True, _set("hostname")),
    "--cpuset-cpus": (True, _set("cpuset_cpus")),
    "--add-host": (True, _key_value("extra_hosts", ":")),
    "--tmpfs": (True, _key_value("tmpfs", ":")),
    "-l": (True, _key_value("labels", "=")),
    "--label": (True, _key_value("labels", "=")),
}


def parse_run_options(text: str, where: str = "additional_docker_run_options") -> RunOptions:
    """Parse ``docker run`` flags into :class:`RunOptions`; unknown ones are errors."""
    opts = RunOptions()
    if not text or not text.strip():
        return opts
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise InvalidInputError(f"cannot split {text!r}: {exc}", where,
                                "Check the quotes in the options") from None
    opts.tokens = list(tokens)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, value = token, None
        if token.startswith("--") and "=" in token:
            name, value = token.split("=", 1)
        elif token.startswith("-") and not token.startswith("--") and len(token) > 2:
            name, value = token[:2], token[2:].lstrip("=")  # -eFOO=1, -v=/a:/b
        if name not in _OPTIONS:
            raise InvalidInputError(
                f"unsupported docker run option {name!r}", where,
                "Supported: " + ", ".join(sorted(k for k in _OPTIONS if k.startswith("--"))))
        takes_value, handler = _OPTIONS[name]
        if not takes_value:
            handler("true" if value is None else value, opts, name, where)
            i += 1
            continue
        if value is None:
            if i + 1 >= len(tokens):
                raise InvalidInputError(f"{name} needs a value", where)
            value = tokens[i + 1]
            i += 1
        handler(value, opts, name, where)
        i += 1
    return opts
