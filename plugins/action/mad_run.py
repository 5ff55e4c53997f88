# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of madengine.core.mad_run: in the controller's process when the target is the controller.

On a remote node it also copies the run log to the controller (O(fetch_log_to)) over the
task's own connection, right after the run: no separate fetch task per node.
"""
from __future__ import annotations

import os

# Imported with the plugin, which the controller loads before it forks the task's worker:
# every in-process run finds the docker SDK and the run logic loaded already.
from ansible_collections.madengine.core.plugins.module_utils import _run  # noqa: F401 pylint: disable=unused-import
from ansible_collections.madengine.core.plugins.plugin_utils._in_process import ModuleAction


class ActionModule(ModuleAction):
    MODULE = "mad_run"

    def after_module(self, result: dict) -> dict:
        folder = self._task.args.get("fetch_log_to")
        node_log = result.get("log_file")
        if not folder or not node_log or self._task.check_mode:
            return result
        local = os.path.join(os.path.expanduser(folder), os.path.basename(node_log))
        try:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            self._connection.fetch_file(node_log, local)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a lost log must not lose the result
            result.setdefault("warnings", []).append(f"the run log {node_log} stays on the node: {exc}")
            return result
        result.update(log_file=local, node_log_file=node_log)
        return result
