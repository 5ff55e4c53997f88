# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module side of a module body: parameters from Ansible, the result back to it."""
from __future__ import annotations

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import call


def run_body(module, name: str) -> None:
    """Run module ``name``'s body with the parameters ``module`` (an AnsibleModule) validated, and exit."""
    result = call(name, module.params, module.check_mode)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)
