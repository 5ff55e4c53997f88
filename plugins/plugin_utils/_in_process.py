# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action side of madengine's modules: the body runs in the controller when the target is the controller.

A module run the usual way costs a new interpreter, the module payload and the imports of
the docker SDK on every task and every loop item: about half a second to a second each,
more than a small model's whole run. When the task's connection is ``local`` (the
controller itself), nothing needs to travel: the action plugin validates the arguments
against the module's own spec and calls the same body (module_utils/_entrypoints.py) in
its worker process, which Ansible forks for this one task. Anything else -- a remote node,
``become``, ``async``, a controller Python without the body's libraries, or the variable
``madengine_in_process`` set to false -- runs the module as Ansible always does.
"""
from __future__ import annotations

import contextlib
import io
import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import SPECS, call, missing_library

_VALIDATION_KEYS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class ModuleAction(ActionBase):
    """Base of the action plugins named after madengine's modules; ``MODULE`` names the body."""

    MODULE = ""
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no effect since Ansible 2.10
        if self.runs_in_process(task_vars or {}):
            return merge_hash(result, self._run_in_process())
        wrap_async = self._task.async_val and not self._connection.has_native_async
        module_args = self.module_args(dict(self._task.args))
        result = merge_hash(result, self._execute_module(module_args=module_args, task_vars=task_vars,
                                                         wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
            result = self.after_module(result)
        return result

    def module_args(self, args: dict) -> dict:
        """The arguments the module gets on the target (a plugin keeps the controller's part)."""
        return args

    def after_module(self, result: dict) -> dict:
        """The controller's part of the task once the module returned from the target."""
        return result

    def runs_in_process(self, task_vars: dict) -> bool:
        """Whether the body can run here: a local connection, no become, no async, its libraries present."""
        wanted = self._templar.template(task_vars.get("madengine_in_process", True))
        return (boolean(wanted, strict=False)
                and self._connection.transport == "local"
                and not self._play_context.become
                and not self._task.async_val
                and missing_library(self.MODULE) is None)

    def _run_in_process(self) -> dict:
        environment: dict = {}
        self._compute_environment_string(environment)
        saved = dict(os.environ)
        # The task's environment first: option fallbacks read it, as they do in a module.
        os.environ.update({key: str(value) for key, value in environment.items()})
        # What the body prints (a package's get_models_json.py may) is the module's stderr, not the
        # worker's: kept with a failure, as Ansible keeps a failed module's stderr, dropped otherwise.
        printed = io.StringIO()
        try:
            validation = self._validate()
            if validation.error_messages:
                return remove_values(self._invalid(validation), validation._no_log_values)  # pylint: disable=protected-access
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                result = call(self.MODULE, validation.validated_parameters, bool(self._task.check_mode))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        if result.get("failed") and printed.getvalue():
            result["module_stderr"] = printed.getvalue()
        result.setdefault("changed", False)
        warnings = list(validation._warnings) + list(result.pop("warnings", None) or [])  # pylint: disable=protected-access
        if warnings:
            result["warnings"] = [f"Both option {w['option']} and its alias {w['alias']} are set."
                                  if isinstance(w, dict) else w for w in warnings]
        # Values of no_log parameters never leave in a result, as AnsibleModule ensures for modules.
        return remove_values(result, validation._no_log_values)  # pylint: disable=protected-access

    def _validate(self):
        spec = SPECS[self.MODULE]
        validator = ArgumentSpecValidator(
            spec["argument_spec"], **{key: spec[key] for key in _VALIDATION_KEYS if key in spec})
        return validator.validate(dict(self._task.args))

    def _invalid(self, validation) -> dict:
        """The message AnsibleModule gives for the same arguments."""
        msg = validation.errors.msg
        if isinstance(validation.errors[0], UnsupportedError):
            msg = f"Unsupported parameters for ({self._task.resolved_action or self.MODULE}) module: {msg}"
        return {"failed": True, "msg": msg, "exit_code": 4, "error_kind": "invalid_input"}
