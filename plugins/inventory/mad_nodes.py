# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: mad_nodes
short_description: MAD node, pod and SLURM files as an Ansible inventory
version_added: 0.1.0
description:
  - Reads the inventory files of the MAD world (MAD-FORMAT section 7) as an Ansible inventory.
  - C(nodes) entries become SSH hosts in group C(gpu_nodes), with C(ansible_host), C(ansible_port)
    (default 22), C(ansible_user) and C(ansible_ssh_private_key_file) set from C(address), C(port),
    C(username) and C(ssh_key_path), and the variables C(madengine_gpu_count), C(madengine_gpu_vendor),
    C(madengine_node_labels) and C(madengine_node_environment) (the environment the node's runs get).
    Each node also joins C(label_<key>_<value>) for each label and C(gpu_vendor_<vendor>)
    (lower case, characters other than letters, digits and C(_) turned into C(_)).
  - C(pods) entries (Kubernetes) become hosts of group C(k8s_pods) that carry variables only
    (C(madengine_k8s_node_selector), C(madengine_k8s_resources), C(madengine_gpu_vendor),
    C(madengine_node_labels)); their tasks run on the controller (C(ansible_connection=local)),
    which talks to the Kubernetes API.
  - The C(slurm_cluster) login node becomes an SSH host of group C(slurm_login) with
    C(madengine_slurm_partitions) and C(madengine_slurm_modules).
  - The hosts named in O(build_hosts) form group C(build_hosts); C(localhost) there means the
    controller itself (local connection), added as a host.
  - Two ways to use it. A config file (name ending in C(.mad_nodes.yml) / C(.mad_nodes.yaml), or any
    YAML file) whose C(plugin) key is C(madengine.core.mad_nodes) and whose O(path) points at an
    existing MAD node file, or which holds O(nodes), O(pods) or O(slurm_cluster) inline; it works with
    the default C(auto) inventory plugin. Or a MAD node file used directly, named C(*.mad_nodes.json),
    C(*.mad_nodes.yml), C(*.mad_nodes.yaml) or C(mad_nodes.{json,yml,yaml}); this needs the plugin
    enabled, for example C(ANSIBLE_INVENTORY_ENABLED=madengine.core.mad_nodes,auto,yaml,ini).
  - Values are trusted as those of a YAML inventory are (templates in them render where they are used).
    A file with an unknown key, a missing required key or a value of the wrong type fails with the
    file, the entry and the key named.
  - Set C(ANSIBLE_INVENTORY_UNPARSED_FAILED=true) to make Ansible stop on such a file instead of
    warning and going on with an empty inventory. A bad file used directly is reported as an error,
    but Ansible then lets its C(yaml) plugin read the file (as an inventory with no hosts) and goes
    on; the config-file form stops.
author:
  - madengine maintainers (@madengine)
requirements:
  - jsonschema (Python library, on the controller)
extends_documentation_fragment:
  - ansible.builtin.constructed
options:
  plugin:
    description: The name of this plugin; marks a config file as this plugin's.
    type: str
    required: true
    choices: [madengine.core.mad_nodes]
  path:
    description:
      - A MAD node file (JSON or YAML with top-level C(nodes), C(pods) and/or C(slurm_cluster)).
      - Relative to the directory of the config file. Relative C(ssh_key_path) values in it are
        relative to its own directory.
      - Mutually exclusive with O(nodes), O(pods) and O(slurm_cluster).
    type: str
  nodes:
    description: SSH GPU nodes given inline, as in a MAD node file.
    type: list
    elements: dict
  pods:
    description: Kubernetes pods given inline, as in a MAD node file.
    type: list
    elements: dict
  slurm_cluster:
    description: A SLURM cluster given inline, as in a MAD node file.
    type: dict
  build_hosts:
    description:
      - Hosts put in group C(build_hosts), where images are built.
      - Host names of the file, or C(localhost) for the controller.
      - An empty list makes no C(build_hosts) group (give it from another inventory source).
    type: list
    elements: str
    default: [localhost]
"""

EXAMPLES = r"""
# cluster.mad_nodes.yml -- point at an existing MAD node file
plugin: madengine.core.mad_nodes
path: nodes.json
keyed_groups:
  - key: madengine_gpu_count
    prefix: gpus

---
# inline.mad_nodes.yml -- nodes given in the config file
plugin: madengine.core.mad_nodes
build_hosts: [gpu-01]
nodes:
  - hostname: gpu-01
    address: 10.0.0.11
    username: mad
    ssh_key_path: ~/.ssh/id_ed25519
    gpu_count: 8
    gpu_vendor: AMD
    labels: {env: production, rack: r1}
    environment: {NCCL_SOCKET_IFNAME: eth0}

# Use:  ansible-inventory -i cluster.mad_nodes.yml --graph
# A MAD node file used directly (named *.mad_nodes.json):
#   ANSIBLE_INVENTORY_ENABLED=madengine.core.mad_nodes,auto,yaml,ini \
#     ansible-inventory -i lab.mad_nodes.json --list
"""

import os
import re
from collections.abc import Mapping

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.madengine.core.plugins.module_utils._errors import MadError
from ansible_collections.madengine.core.plugins.module_utils import _nodes

_NAME = "madengine.core.mad_nodes"
_PYTHON = "{{ ansible_playbook_python }}"  # the controller's, wherever the playbook runs (AWX too)
_DIRECT_NAMES = ("mad_nodes.json", "mad_nodes.yml", "mad_nodes.yaml")
_CONFIG_MARK = re.compile(r"""(^|[{,\s])["']?plugin["']?\s*:\s*["']?madengine\.core\.mad_nodes(["'\s,}#]|$)""", re.M)


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = _NAME
    trusted_by_default = True  # the user's own file, trusted as a YAML inventory is

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        name = os.path.basename(path)
        if name.endswith(_DIRECT_NAMES):  # also covers *.mad_nodes.json etc.
            return True
        if not name.endswith((".yml", ".yaml", ".json")):
            return False
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return bool(_CONFIG_MARK.search(handle.read(65536)))
        except OSError:
            return False

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        raw = self._load(path)
        direct = not (isinstance(raw, Mapping) and "plugin" in raw)
        if direct:
            self.set_options(direct={"plugin": _NAME})
            document, source = raw, path
        else:
            document, source = self._from_config(path)
        try:
            hosts = _nodes.inventory_hosts(
                self._plain(document), source, build_hosts=self.get_option("build_hosts"), python=_PYTHON)
        except MadError as err:
            if direct:
                # Ansible shows a plugin's failure only when no later plugin takes the
                # file, and the yaml plugin takes any .json/.yml file: say it here.
                self.display.error(err.message)
            raise AnsibleParserError(err.message) from None
        for host in hosts:
            self._add(host)

    def _load(self, path):
        try:
            return self.loader.load_from_file(path, cache="none")
        except Exception as exc:
            raise AnsibleParserError(f"cannot read the MAD inventory {path}: {exc}") from exc

    def _from_config(self, path):
        config = self._read_config_data(path)
        known = set(self._options) | {"plugin"}
        for key in config:
            if key not in known:
                hint = _nodes.closest(str(key), sorted(known))
                raise AnsibleParserError(
                    f"unknown option {key!r} in {path}" + (f"; did you mean {hint!r}?" if hint else "")
                    + f" (valid options: {', '.join(sorted(known))})")
        inline = {key: config[key] for key in _nodes.SECTIONS if key in config}
        node_file = self.get_option("path")
        if node_file and inline:
            raise AnsibleParserError(
                f"{path} gives both 'path' and inline {', '.join(inline)}; keep one of them")
        if not node_file:
            if not inline:
                raise AnsibleParserError(
                    f"{path} names no MAD node file: set 'path' (a file with top-level 'nodes:') "
                    "or give nodes, pods or slurm_cluster inline")
            return inline, path
        node_file = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(node_file))
        if not os.path.isfile(node_file):
            raise AnsibleParserError(f"the MAD node file {node_file} named by 'path' in {path} does not exist")
        return self._load(node_file), node_file

    @staticmethod
    def _plain(value):
        """Plain Python values, so the schema check sees what the file said."""
        if isinstance(value, Mapping):
            return {str(key): InventoryModule._plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [InventoryModule._plain(item) for item in value]
        for kind in (bool, int, float, str):
            if isinstance(value, kind):
                return kind(value)
        return value

    def _add(self, host):
        self.inventory.add_host(host.name)
        for group in host.groups:
            self.inventory.add_group(group)
            self.inventory.add_child(group, host.name)
        for key, value in host.variables.items():
            self.inventory.set_variable(host.name, key, value)
        strict = self.get_option("strict")
        variables = self.inventory.get_host(host.name).get_vars()
        self._set_composite_vars(self.get_option("compose"), variables, host.name, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, host.name, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host.name, strict=strict)
