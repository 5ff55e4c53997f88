# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Additional context: parse, merge (file first, inline wins) and validate.

The inline context is JSON, a Python dict literal (as upstream accepts), or a
dict (AWX extra-vars). Every key the reference implementation accepts is
accepted; a key madengine does not act on yet yields a one-line warning; any other
key is an error naming the closest valid key.
"""
from __future__ import annotations

import ast
import copy
import difflib
import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

GPU_VENDORS = ("AMD", "NVIDIA")
GUEST_OS = ("UBUNTU", "CENTOS", "ROCKY")
DEFAULT_GUEST_OS = "UBUNTU"
EXAMPLE = '--additional-context \'{"gpu_vendor": "AMD", "guest_os": "UBUNTU"}\''

Checker = Callable[[str, Any], Any]


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _bad(key: str, expected: str, value: Any) -> InvalidInputError:
    return InvalidInputError(
        f"context key '{key}' must be {expected}, not {_type_name(value)} ({value!r:.60})",
        "the additional context", f"Fix the value, e.g. {EXAMPLE}")


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(key, "a string", value)
    return value


def _text(key: str, value: Any) -> str:
    """A string, or a number written without quotes ("0,1" and 2 both mean GPUs)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _bad(key, "a string", value)
    return str(value)


def _boolean(key: str, value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        raise _bad(key, "true or false", value)
    return value


def _flag(key: str, value: Any) -> Any:
    """Upstream coerces these from strings and numbers too."""
    if value is not None and not isinstance(value, (bool, str, int, float)):
        raise _bad(key, "a boolean", value)
    return value


def _integer(key: str, value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, "an integer", value)
    return value


def _timeout(key: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _bad(key, "a number of seconds (0 = no limit)", value)
    return int(value) if float(value).is_integer() else value


def _object(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _bad(key, "an object", value)
    return value


def _string_map(key: str, value: Any) -> dict:
    """{name: value} with scalar values, kept as strings (env vars, build args, mounts)."""
    _object(key, value)
    out = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise _bad(f"{key}", "an object with string keys", value)
        if isinstance(item, bool):
            item = str(item).lower()
        if not isinstance(item, (str, int, float)):
            raise _bad(f"{key}.{name}", "a string", item)
        out[name] = str(item)
    return out


def _strings(key: str, value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(key, "a list of strings", value)
    return value


def _integers(key: str, value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _bad(key, "a list of integers", value)
    return value


def _object_list(required: str) -> Checker:
    def check(key: str, value: Any) -> list:
        if not isinstance(value, list):
            raise _bad(key, f"a list of objects with '{required}'", value)
        for index, item in enumerate(value):
            where = f"{key}[{index}]"
            if not isinstance(item, dict):
                raise _bad(where, f"an object with '{required}'", item)
            if not isinstance(item.get(required), str) or not item[required]:
                raise InvalidInputError(
                    f"context key '{where}' needs '{required}' (a string)", "the additional context",
                    f"e.g. {{\"{key}\": [{{\"{required}\": \"...\"}}]}}")
        return value
    return check


def _choice(choices: Tuple[str, ...]) -> Checker:
    def check(key: str, value: Any) -> str:
        text = _string(key, value).strip().upper()
        if text not in choices:
            raise InvalidInputError(
                f"context key '{key}' is '{value}'; it must be one of {', '.join(choices)}",
                "the additional context")
        return text
    return check


# key -> (checker, acted on by madengine today)
KEYS: Dict[str, Tuple[Checker, bool]] = {
    "gpu_vendor": (_choice(GPU_VENDORS), True),
    "guest_os": (_choice(GUEST_OS), True),
    "docker_build_arg": (_string_map, True),
    "docker_env_vars": (_string_map, True),
    "docker_mounts": (_string_map, True),
    "docker_gpus": (_text, True),
    "docker_cpus": (_text, True),
    "model_args": (_string, True),
    "tools": (_object_list("name"), True),
    "pre_scripts": (_object_list("path"), True),
    "post_scripts": (_object_list("path"), True),
    "encapsulate_script": (_string, True),
    "timeout": (_timeout, True),
    "data": (_text, True),
    "slurm": (_object, True),
    "k8s": (_object, True),
    "distributed": (_object, True),
    # Accepted for compatibility with the reference implementation; not acted on yet.
    "gpu_renderDs": (_integers, False),
    "MAD_CONTAINER_IMAGE": (_string, False),
    "MAD_ROCM_PATH": (_string, False),
    "mirrorlocal": (_string, False),
    "rocenv_mode": (_text, False),
    "gen_sys_env_details": (_flag, False),
    "generate_sys_env_details": (_flag, False),
    "log_error_pattern_scan": (_flag, False),
    "log_error_benign_patterns": (_strings, False),
    "log_error_patterns": (_strings, False),
    "gpus_per_node": (_integer, False),
    "gpu_count": (_integer, False),
    "n_gpus": (_text, False),
    "num_gpus": (_integer, False),
    "ngpus": (_integer, False),
    "ctx_test": (_text, False),
    "host_os": (_string, False),
    "numa_balancing": (_text, False),
    "skip_perf_collection": (_flag, False),
    "env_vars": (_string_map, False),
    "vllm": (_object, False),
    "kubernetes": (_object, False),
    "deploy": (_object, False),
    "debug": (_boolean, False),
    "live_output": (_flag, False),
    "monitor": (_flag, False),
    "cleanup_on_failure": (_flag, False),
    "shared_data": (_text, False),
    "deployment_config": (_object, False),
}


def closest(word: str, candidates: List[str], n: int = 1) -> List[str]:
    """Nearest spellings, case-insensitively (``GPU_vendor`` -> ``gpu_vendor``)."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[f] for f in found]


def parse_inline(raw: Any) -> dict:
    """``--additional-context``: a dict, JSON text, or a Python dict literal."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return copy.deepcopy(raw)
    if not isinstance(raw, str):
        raise InvalidInputError(f"the additional context must be a JSON object, not {_type_name(raw)}",
                                fix=f"e.g. {EXAMPLE}")
    text = raw.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as json_error:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise InvalidInputError(
                f"the additional context is neither JSON nor a Python dict literal: {json_error.msg} "
                f"at line {json_error.lineno}, column {json_error.colno}",
                fix=f"Quote it for the shell, e.g. {EXAMPLE}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"the additional context must be a JSON object, not {_type_name(value)}",
                                fix=f"e.g. {EXAMPLE}")
    return value


def load_file(path: str) -> dict:
    """``--additional-context-file``: a JSON object."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        raise InvalidInputError(f"the additional context file {path} does not exist",
                                fix="Check the path given to --additional-context-file") from None
    except IsADirectoryError:
        raise InvalidInputError(f"the additional context file {path} is a directory") from None
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"the additional context file is not valid JSON: {err.msg}",
                                f"{path}, line {err.lineno}, column {err.colno}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"the additional context file {path} cannot be read: {err}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"the additional context file must hold a JSON object, not {_type_name(value)}",
                                path)
    return value


def merge(base: dict, override: dict) -> dict:
    """Recursive update, as upstream does: nested objects merge, other values replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(context: dict) -> Tuple[dict, List[str]]:
    """Check every key and type; returns the normalised context and warnings."""
    out: dict = {}
    warnings: List[str] = []
    for key, value in context.items():
        spec = KEYS.get(key)
        if spec is None:
            near = closest(str(key), list(KEYS))
            hint = f"did you mean '{near[0]}'?" if near else "valid keys: " + ", ".join(sorted(KEYS))
            raise InvalidInputError(f"unknown context key '{key}': {hint}", "the additional context",
                                    "Every context key is listed in MAD-FORMAT.md section 2")
        checker, acted = spec
        out[key] = checker(key, value)
        if not acted:
            warnings.append(f"context key '{key}' is accepted for compatibility but not acted on yet")
    out.setdefault("guest_os", DEFAULT_GUEST_OS)
    return out, warnings


def build_context(inline: Any = None, path: Optional[str] = None) -> Tuple[dict, List[str]]:
    """File first, inline wins; validated. Returns (context, warnings)."""
    merged = load_file(os.path.expanduser(path)) if path else {}
    merged = merge(merged, parse_inline(inline))
    return validate(merged)
