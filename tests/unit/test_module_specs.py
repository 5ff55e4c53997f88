"""Each module's documented options are exactly its argument spec (module and action plugin read the same one)."""
from __future__ import annotations

import importlib

import pytest
import yaml

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import ENTRYPOINTS, SPECS

MODULES = sorted(SPECS)


def test_every_module_has_a_spec_and_a_body():
    assert set(SPECS) == set(ENTRYPOINTS) == {"gpu_facts", "mad_discover", "mad_build", "mad_run", "perf_collect"}


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_the_argument_spec(name):
    module = importlib.import_module(f"ansible_collections.madengine.core.plugins.modules.{name}")
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = SPECS[name]["argument_spec"]
    assert set(documented) == set(spec)
    for option, doc in documented.items():
        assert doc["type"] == spec[option]["type"], option
        assert doc.get("default") == spec[option].get("default"), option
        assert doc.get("aliases", []) == spec[option].get("aliases", []), option
        assert doc.get("choices") == spec[option].get("choices"), option
        assert doc.get("elements") == spec[option].get("elements"), option
        assert doc.get("required", False) == spec[option].get("required", False), option


@pytest.mark.parametrize("name", MODULES)
def test_action_plugin_runs_the_same_body(name):
    action = importlib.import_module(f"ansible_collections.madengine.core.plugins.action.{name}")
    assert action.ActionModule.MODULE == name


def test_secrets_are_no_log():
    for name, spec in SPECS.items():
        for option, entry in spec["argument_spec"].items():
            if "password" in option or "token" in option:
                assert entry.get("no_log") is True, f"{name}.{option}"
