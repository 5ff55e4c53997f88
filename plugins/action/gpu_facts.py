# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of madengine.core.gpu_facts: in the controller's process when the target is the controller."""
from __future__ import annotations

# Imported with the plugin, which the controller loads before it forks the task's worker:
# every in-process run finds the GPU detection loaded already.
from ansible_collections.madengine.core.plugins.module_utils import _gpu  # noqa: F401 pylint: disable=unused-import
from ansible_collections.madengine.core.plugins.plugin_utils._in_process import ModuleAction


class ActionModule(ModuleAction):
    MODULE = "gpu_facts"
