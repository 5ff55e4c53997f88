# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of madengine.core.mad_build: in the controller's process when the target is the controller.

On another build host the manifest still lives on the controller: the plugin hands the
host the earlier manifest (so unchanged images keep their entries) and writes the new one
where O(manifest_file) says, on the controller.
"""
from __future__ import annotations

import os

# Imported with the plugin, which the controller loads before it forks the task's worker:
# every in-process run finds the docker SDK and the build logic loaded already.
from ansible_collections.madengine.core.plugins.module_utils import _build  # noqa: F401 pylint: disable=unused-import
from ansible_collections.madengine.core.plugins.module_utils._entrypoints import read_previous_manifest
from ansible_collections.madengine.core.plugins.module_utils._manifest import write_manifest
from ansible_collections.madengine.core.plugins.plugin_utils._in_process import ModuleAction


class ActionModule(ModuleAction):
    MODULE = "mad_build"

    def module_args(self, args: dict) -> dict:
        manifest_file = args.pop("manifest_file", None)
        if manifest_file and args.get("previous_manifest") is None:
            args["previous_manifest"] = read_previous_manifest(os.path.expanduser(manifest_file))
        return args

    def after_module(self, result: dict) -> dict:
        manifest_file = self._task.args.get("manifest_file")
        if not manifest_file or "manifest" not in result or self._task.check_mode:
            return result
        try:
            result["manifest_file"] = write_manifest(result["manifest"], os.path.expanduser(manifest_file))
        except OSError as exc:
            result.update(failed=True, exit_code=1, error_kind="error",
                          msg=f"cannot write the build manifest {manifest_file} on the controller: {exc.strerror}")
        return result
