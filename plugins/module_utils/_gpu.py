# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which GPUs a node has, as the vendor tools report them.

The ``parse_*`` functions turn a tool's text into plain data and never run anything;
``detect_gpus`` calls the tools (argv lists, a timeout each) through ``run_tool``;
``gather_gpu_facts`` adds the context overrides and the verdict, giving the
``madengine_gpu`` fact. ``select_devices`` and ``visibility_env`` are what a model
run needs from those facts.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

DEFAULT_TIMEOUT = 20.0
AMD, NVIDIA, NONE = "AMD", "NVIDIA", "NONE"
AMD_TOOLS = ("amd-smi", "rocm-smi", "rocminfo")
NVIDIA_TOOLS = ("nvidia-smi",)
NVIDIA_QUERY = "--query-gpu=index,name,uuid,driver_version,memory.total,pci.bus_id"
COUNT_KEYS = ("n_gpus", "gpu_count", "num_gpus", "ngpus", "gpus_per_node")
FIRST_RENDER_MINOR = 128


# --------------------------------------------------------------------------- running tools

@dataclass
class ToolResult:
    argv: List[str]
    rc: Optional[int]
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: Optional[str] = None  # the tool could not be started
    timeout: float = DEFAULT_TIMEOUT

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and self.error is None


Runner = Callable[[Sequence[str]], ToolResult]


def run_tool(argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> ToolResult:
    """Run one tool; a hung tool is killed with its whole process group after ``timeout``."""
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return ToolResult(argv, None, error=exc.strerror or str(exc), timeout=timeout)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The group, not just the child: a wrapper script's children would keep the pipes open.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
        return ToolResult(argv, None, _text(out), _text(err), timed_out=True, timeout=timeout)
    return ToolResult(argv, proc.returncode, _text(out), _text(err), timeout=timeout)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace") if data else ""


def default_tool_dirs() -> List[str]:
    """PATH, then where ROCm installs its tools when they are not on PATH."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    extra = [os.path.join(os.environ["ROCM_PATH"], "bin")] if os.environ.get("ROCM_PATH") else []
    for d in extra + ["/opt/rocm/bin"]:
        if d not in dirs:
            dirs.append(d)
    return dirs


def find_tool(name: str, dirs: Sequence[str]) -> Optional[str]:
    return shutil.which(name, path=os.pathsep.join(dirs)) if dirs else None


def tool_problem(tool: str, res: ToolResult) -> str:
    """One line saying why a tool gave no usable answer."""
    if res.error:
        return f"{tool} could not be started: {res.error}"
    if res.timed_out:
        return f"{tool} did not answer within {res.timeout:g} s and was stopped"
    return f"{tool} is installed but the driver does not answer: {_first_line(res)}"


def _unreadable(tool: str, res: ToolResult, exc: Exception) -> str:
    snippet = " ".join(res.stdout.split())[:160]
    return f"{tool} answered with output madengine cannot read ({exc})" + (f": {snippet}" if snippet else "")


def _first_line(res: ToolResult) -> str:
    for text in (res.stderr, res.stdout):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return f"exit status {res.rc} and no output"


# --------------------------------------------------------------------------- parsing helpers

def load_json_output(text: str) -> Any:
    """The JSON document in a tool's output, skipping warning lines printed before it."""
    text = text.strip()
    if not text:
        raise ValueError("no output")
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^[ \t]*[\[{]", text, re.M):
        try:
            return decoder.raw_decode(text[match.end() - 1:])[0]
        except ValueError:
            continue
    raise ValueError("no JSON document in the output")


def _known(value: Any) -> Optional[str]:
    """A reported value as text; None for the tools' ways of saying 'unknown'."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.upper() in ("N/A", "NA", "UNKNOWN", "NONE", "[N/A]", "UNSUPPORTED"):
        return None
    return text


def normalize_bus_id(value: Any) -> Optional[str]:
    """'00000000:1B:00.0' / '0000:c3:00.0' / '1b:00.0' -> '0000:1b:00.0'."""
    text = _known(value)
    if not text:
        return None
    m = re.fullmatch(r"(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])", text)
    if not m:
        return None
    domain = int(m.group(1) or "0", 16)
    return f"{domain:04x}:{int(m.group(2), 16):02x}:{int(m.group(3), 16):02x}.{m.group(4)}"


def normalize_gfx(value: Any) -> Optional[str]:
    """'gfx90a:sramecc+:xnack-' -> 'gfx90a'; anything not a gfx target -> None."""
    text = _known(value)
    if not text:
        return None
    m = re.fullmatch(r"(?:amdgcn-amd-amdhsa--)?(gfx[0-9a-f]{3,4})(?::.*)?", text.strip().lower())
    return m.group(1) if m else None


def _gpu_entries(data: Any) -> List[dict]:
    """amd-smi prints a list of per-GPU objects, newer releases wrap it in {"gpu_data": [...]}."""
    if isinstance(data, dict):
        data = data.get("gpu_data", [])
    if not isinstance(data, list):
        raise ValueError("expected a list of GPUs")
    return [e for e in data if isinstance(e, dict)]


def _index(value: Any, fallback: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return fallback


# --------------------------------------------------------------------------- AMD: amd-smi

def parse_amd_smi_list(text: str) -> List[dict]:
    """`amd-smi list --json` -> [{index, bus_id, uuid}] in GPU index order."""
    gpus = []
    for pos, entry in enumerate(_gpu_entries(load_json_output(text))):
        gpus.append({"index": _index(entry.get("gpu"), pos),
                     "bus_id": normalize_bus_id(entry.get("bdf")),
                     "uuid": _known(entry.get("uuid"))})
    return sorted(gpus, key=lambda g: g["index"])


def parse_amd_smi_static(text: str) -> Dict[int, dict]:
    """`amd-smi static --asic --driver --json` -> {index: {product, architecture, driver_version}}."""
    found = {}
    for pos, entry in enumerate(_gpu_entries(load_json_output(text))):
        asic = entry.get("asic") if isinstance(entry.get("asic"), dict) else {}
        driver = entry.get("driver") if isinstance(entry.get("driver"), dict) else {}
        bus = entry.get("bus") if isinstance(entry.get("bus"), dict) else {}
        found[_index(entry.get("gpu"), pos)] = {
            "product": _known(asic.get("market_name")),
            "architecture": normalize_gfx(asic.get("target_graphics_version") or asic.get("gfx_version")),
            "driver_version": _known(driver.get("version") or driver.get("driver_version")),
            "bus_id": normalize_bus_id(bus.get("bdf")),
        }
    return found


def parse_amd_smi_version(text: str) -> Dict[str, Optional[str]]:
    """`amd-smi version` ('AMDSMI Tool: 25.4.2+aca1101 | ... | ROCm version: 6.4.1 | ...')."""
    def field_of(label: str) -> Optional[str]:
        m = re.search(re.escape(label) + r":\s*([^|\n]+)", text)
        return _known(m.group(1)) if m else None

    return {"tool_version": field_of("AMDSMI Tool"), "rocm_version": field_of("ROCm version"),
            "driver_version": field_of("amdgpu version")}


# --------------------------------------------------------------------------- AMD: rocm-smi, rocminfo

def _rocm_smi_cards(text: str) -> Dict[int, dict]:
    data = load_json_output(text)
    if not isinstance(data, dict):
        raise ValueError("expected an object keyed by card")
    cards = {}
    for key, value in data.items():
        m = re.fullmatch(r"card(\d+)", str(key))
        if m and isinstance(value, dict):
            cards[int(m.group(1))] = {str(k).strip().lower(): v for k, v in value.items()}
    return cards


def parse_rocm_smi_product(text: str) -> Dict[int, dict]:
    """`rocm-smi --showproductname --json` -> {index: {product, architecture}}."""
    found = {}
    for index, card in _rocm_smi_cards(text).items():
        found[index] = {"product": _known(card.get("card series")),
                        # only a well-formed target counts: some releases print a decimal KFD code
                        "architecture": normalize_gfx(card.get("gfx version"))}
    if not found:
        raise ValueError("no card in the output")
    return found


def parse_rocm_smi_bus(text: str) -> Dict[int, Optional[str]]:
    """`rocm-smi --showbus --json` -> {index: bus_id}."""
    return {i: normalize_bus_id(c.get("pci bus")) for i, c in _rocm_smi_cards(text).items()}


def parse_rocm_smi_driver(text: str) -> Optional[str]:
    """`rocm-smi --showdriverversion --json` -> the amdgpu driver version."""
    data = load_json_output(text)
    system = data.get("system", {}) if isinstance(data, dict) else {}
    for key, value in system.items() if isinstance(system, dict) else []:
        if str(key).strip().lower() == "driver version":
            return _known(value)
    return None


def parse_rocminfo(text: str) -> List[dict]:
    """`rocminfo` -> the GPU agents in order: [{architecture, product, bus_id}]."""
    agents: List[dict] = []
    current: Optional[dict] = None
    for line in text.splitlines():
        if re.fullmatch(r"\s*Agent \d+\s*", line):
            current = {}
            agents.append(current)
            continue
        m = re.match(r"^  ([A-Za-z][^:]*):\s*(.*?)\s*$", line)  # agent-level keys only
        if current is not None and m and m.group(1) not in current:
            current[m.group(1)] = m.group(2)
    gpus = []
    for agent in agents:
        if agent.get("Device Type", "").upper() != "GPU":
            continue
        bus_id = None
        if agent.get("BDFID", "").isdigit():
            bdf = int(agent["BDFID"])
            domain = int(agent["Domain"]) if agent.get("Domain", "").isdigit() else 0
            bus_id = f"{domain:04x}:{bdf >> 8 & 0xff:02x}:{bdf >> 3 & 0x1f:02x}.{bdf & 0x7}"
        gpus.append({"architecture": normalize_gfx(agent.get("Name")),
                     "product": _known(agent.get("Marketing Name")), "bus_id": bus_id})
    if not gpus and not agents:
        raise ValueError("no HSA agent in the output")
    return gpus


def rocm_version_of(tool_path: str) -> Optional[str]:
    """ROCm writes its version to <rocm>/.info/version beside bin/ ('6.1.2-119' -> '6.1.2')."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(tool_path)))
    try:
        with open(os.path.join(root, ".info", "version"), encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return text.split("-")[0] or None


# --------------------------------------------------------------------------- NVIDIA: nvidia-smi

def parse_nvidia_query(text: str) -> List[dict]:
    """`nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.total,pci.bus_id
    --format=csv,noheader` -> [{index, product, architecture, uuid, driver_version, memory_mib, bus_id}]."""
    gpus = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 6 or not row[0].strip().isdigit():
            raise ValueError(f"unexpected line {', '.join(row)!r}")
        index, name, uuid, driver, memory, bus = (c.strip() for c in row)
        mem = re.match(r"(\d+)", memory)
        gpus.append({"index": int(index), "product": _known(name),
                     "architecture": nvidia_short_name(name), "uuid": _known(uuid),
                     "driver_version": _known(driver), "memory_mib": int(mem.group(1)) if mem else None,
                     "bus_id": normalize_bus_id(bus)})
    if not gpus:
        raise ValueError("no GPU in the output")
    return sorted(gpus, key=lambda g: g["index"])


def parse_nvidia_header(text: str) -> Dict[str, Optional[str]]:
    """The banner of plain `nvidia-smi`: '| NVIDIA-SMI 535.129.03  Driver Version: ...  CUDA Version: 12.2 |'."""
    cuda = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", text)
    driver = re.search(r"Driver Version:\s*([0-9][0-9.]*)", text)
    return {"cuda_version": cuda.group(1) if cuda else None,
            "driver_version": driver.group(1) if driver else None}


_NVIDIA_BRANDS = {"NVIDIA", "TESLA", "GEFORCE", "QUADRO"}


def nvidia_short_name(name: str) -> Optional[str]:
    """The product's short name used as its architecture: 'NVIDIA A100-SXM4-80GB' -> 'A100'."""
    tokens = (name or "").split()
    while tokens and tokens[0].upper() in _NVIDIA_BRANDS:
        tokens.pop(0)
    if not tokens:
        return None
    first = tokens[0].split("-")[0]
    if first.upper() in ("RTX", "GTX") and len(tokens) > 1:
        second = tokens[1].split("-")[0]
        return second if re.fullmatch(r"[A-Z]\d+", second) else first.upper() + second
    return first


# --------------------------------------------------------------------------- render nodes

def render_nodes_by_bus(sysfs_root: str = "/sys", dev_root: str = "/dev") -> Tuple[Dict[str, str], str]:
    """{bus id: '/dev/dri/renderDN'} from udev's by-path links, else from sysfs."""
    mapping: Dict[str, str] = {}
    by_path = os.path.join(dev_root, "dri", "by-path")
    for name in _listdir(by_path):
        m = re.fullmatch(r"pci-(.+)-render", name)
        if not m:
            continue
        try:
            node = os.path.basename(os.readlink(os.path.join(by_path, name)))
        except OSError:
            continue
        bus = normalize_bus_id(m.group(1))
        if bus and re.fullmatch(r"renderD\d+", node):
            mapping[bus] = "/dev/dri/" + node
    if mapping:
        return mapping, "by-path"
    drm = os.path.join(sysfs_root, "class", "drm")
    for name in _listdir(drm):
        if re.fullmatch(r"renderD\d+", name):
            bus = normalize_bus_id(os.path.basename(os.path.realpath(os.path.join(drm, name, "device"))))
            if bus:
                mapping[bus] = "/dev/dri/" + name
    return mapping, ("sysfs" if mapping else "none")


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def assign_render_nodes(gpus: List[dict], sysfs_root: str, dev_root: str) -> Tuple[str, List[str]]:
    """Give every AMD GPU its render node; returns (how they were found, problems)."""
    mapping, source = render_nodes_by_bus(sysfs_root, dev_root)
    found = [mapping.get(g.get("bus_id") or "") for g in gpus]
    if mapping and all(found) and len(set(found)) == len(found):
        for gpu, node in zip(gpus, found):
            gpu["device"] = node
        return source, []
    problems = []
    if mapping:
        missing = ", ".join(str(g["index"]) for g, node in zip(gpus, found) if not node)
        problems.append(f"no render node found in {source} for GPU(s) {missing or '(duplicates)'}; "
                        f"assumed renderD{FIRST_RENDER_MINOR} + GPU index")
    for pos, gpu in enumerate(gpus):
        gpu["device"] = f"/dev/dri/renderD{FIRST_RENDER_MINOR + pos}"
    return "derived", problems


# --------------------------------------------------------------------------- detection

@dataclass
class Detection:
    vendor: str = NONE
    tool: Optional[str] = None
    gpus: List[dict] = field(default_factory=list)
    driver_version: Optional[str] = None
    rocm_version: Optional[str] = None
    cuda_version: Optional[str] = None
    problems: List[str] = field(default_factory=list)
    device_source: Optional[str] = None
    installed: List[str] = field(default_factory=list)


def _gpu(index: int, **values: Any) -> dict:
    gpu = {"index": index, "product": None, "architecture": None, "bus_id": None,
           "device": None, "uuid": None, "memory_mib": None}
    gpu.update({k: v for k, v in values.items() if k in gpu})
    return gpu


def _with_rocminfo(gpus: List[dict], rocminfo: Optional[str], run: Runner, problems: List[str]) -> None:
    """Fill in architecture/product from rocminfo where the SMI tool left them unknown."""
    if not rocminfo or all(g["architecture"] and g["product"] for g in gpus):
        return
    res = run([rocminfo])
    if not res.ok:
        problems.append(tool_problem("rocminfo", res))
        return
    try:
        agents = parse_rocminfo(res.stdout)
    except ValueError as exc:
        problems.append(_unreadable("rocminfo", res, exc))
        return
    by_bus = {a["bus_id"]: a for a in agents if a["bus_id"]}
    for pos, gpu in enumerate(gpus):
        agent = by_bus.get(gpu["bus_id"] or "") or (agents[pos] if pos < len(agents) else None)
        if agent:
            gpu["architecture"] = gpu["architecture"] or agent["architecture"]
            gpu["product"] = gpu["product"] or agent["product"]


def probe_amd_smi(amd_smi: str, rocminfo: Optional[str], run: Runner) -> Detection:
    found = Detection(vendor=AMD, tool="amd-smi")
    res = run([amd_smi, "list", "--json"])
    if not res.ok:
        found.problems.append(tool_problem("amd-smi", res))
        return found
    try:
        listed = parse_amd_smi_list(res.stdout)
    except ValueError as exc:
        found.problems.append(_unreadable("amd-smi", res, exc))
        return found
    details: Dict[int, dict] = {}
    res = run([amd_smi, "static", "--asic", "--driver", "--json"])
    try:
        details = parse_amd_smi_static(res.stdout) if res.ok else {}
        if not res.ok:
            found.problems.append(tool_problem("amd-smi", res))
    except ValueError as exc:
        found.problems.append(_unreadable("amd-smi", res, exc))
    for item in listed:
        extra = details.get(item["index"], {})
        found.gpus.append(_gpu(item["index"], uuid=item["uuid"],
                               bus_id=item["bus_id"] or extra.get("bus_id"),
                               product=extra.get("product"), architecture=extra.get("architecture")))
    drivers = [d.get("driver_version") for d in details.values() if d.get("driver_version")]
    found.driver_version = drivers[0] if drivers else None
    _with_rocminfo(found.gpus, rocminfo, run, found.problems)
    res = run([amd_smi, "version"])
    if res.ok:
        version = parse_amd_smi_version(res.stdout)
        found.rocm_version = version["rocm_version"]
        found.driver_version = found.driver_version or version["driver_version"]
    found.rocm_version = found.rocm_version or rocm_version_of(amd_smi)
    return found


def probe_rocm_smi(rocm_smi: Optional[str], rocminfo: Optional[str], run: Runner) -> Detection:
    """The older tools: rocm-smi for the cards, rocminfo for the targets (or alone)."""
    found = Detection(vendor=AMD)
    if rocm_smi:
        res = run([rocm_smi, "--showproductname", "--json"])
        products: Dict[int, dict] = {}
        try:
            products = parse_rocm_smi_product(res.stdout) if res.ok and res.stdout.strip() else {}
            if not products:
                found.problems.append(tool_problem("rocm-smi", res))
        except ValueError as exc:
            found.problems.append(_unreadable("rocm-smi", res, exc))
        if products:
            found.tool = "rocm-smi"
            buses: Dict[int, Optional[str]] = {}
            res = run([rocm_smi, "--showbus", "--json"])
            if res.ok:
                try:
                    buses = parse_rocm_smi_bus(res.stdout)
                except ValueError as exc:
                    found.problems.append(_unreadable("rocm-smi", res, exc))
            res = run([rocm_smi, "--showdriverversion", "--json"])
            if res.ok:
                try:
                    found.driver_version = parse_rocm_smi_driver(res.stdout)
                except ValueError as exc:
                    found.problems.append(_unreadable("rocm-smi", res, exc))
            for index in sorted(products):
                found.gpus.append(_gpu(index, bus_id=buses.get(index), **products[index]))
            _with_rocminfo(found.gpus, rocminfo, run, found.problems)
        found.rocm_version = rocm_version_of(rocm_smi)
    if not found.gpus and rocminfo:
        res = run([rocminfo])
        try:
            agents = parse_rocminfo(res.stdout) if res.ok else []
            if not res.ok:
                found.problems.append(tool_problem("rocminfo", res))
            elif agents:
                found.tool = "rocminfo"
                found.gpus = [_gpu(**dict(a, index=i)) for i, a in enumerate(agents)]
        except ValueError as exc:
            found.problems.append(_unreadable("rocminfo", res, exc))
        found.rocm_version = found.rocm_version or rocm_version_of(rocminfo)
    return found


def probe_nvidia_smi(nvidia_smi: str, run: Runner) -> Detection:
    found = Detection(vendor=NVIDIA, tool="nvidia-smi")
    res = run([nvidia_smi, NVIDIA_QUERY, "--format=csv,noheader"])
    if not res.ok:
        found.problems.append(tool_problem("nvidia-smi", res))
        return found
    try:
        listed = parse_nvidia_query(res.stdout)
    except ValueError as exc:
        found.problems.append(_unreadable("nvidia-smi", res, exc))
        return found
    for item in listed:
        found.gpus.append(_gpu(**dict(item, device=str(item["index"]))))
    found.driver_version = listed[0]["driver_version"]
    res = run([nvidia_smi])
    if res.ok:
        found.cuda_version = parse_nvidia_header(res.stdout)["cuda_version"]
    found.device_source = "nvidia-smi"
    return found


def detect_gpus(vendor: Optional[str] = None, *, tool_dirs: Optional[Sequence[str]] = None,
                sysfs_root: str = "/sys", dev_root: str = "/dev", timeout: float = DEFAULT_TIMEOUT,
                run: Optional[Runner] = None) -> Detection:
    """Ask the installed vendor tools; the first vendor whose tools list GPUs wins."""
    dirs = list(tool_dirs) if tool_dirs is not None else default_tool_dirs()
    run = run or (lambda argv: run_tool(argv, timeout))
    attempts: List[Detection] = []
    installed: List[str] = []
    if vendor in (None, AMD):
        tools = {name: find_tool(name, dirs) for name in AMD_TOOLS}
        installed += [n for n, p in tools.items() if p]
        if tools["amd-smi"]:
            attempts.append(probe_amd_smi(tools["amd-smi"], tools["rocminfo"], run))
        if (tools["rocm-smi"] or tools["rocminfo"]) and not (attempts and attempts[-1].gpus):
            attempts.append(probe_rocm_smi(tools["rocm-smi"], tools["rocminfo"], run))
        if attempts and attempts[-1].gpus:
            found = attempts[-1]
            found.device_source, problems = assign_render_nodes(found.gpus, sysfs_root, dev_root)
            found.problems += problems
    if vendor in (None, NVIDIA) and not any(a.gpus for a in attempts):
        nvidia_smi = find_tool("nvidia-smi", dirs)
        if nvidia_smi:
            installed.append("nvidia-smi")
            attempts.append(probe_nvidia_smi(nvidia_smi, run))
    for attempt in attempts:
        if attempt.gpus:
            attempt.installed = installed
            return attempt
    # Nothing answered: report every tool's complaint under the first vendor found installed.
    found = Detection(vendor=attempts[0].vendor if attempts else (vendor or NONE), installed=installed)
    for attempt in attempts:
        found.problems += attempt.problems
        found.rocm_version = found.rocm_version or attempt.rocm_version
    return found


# --------------------------------------------------------------------------- context

def parse_context(value: Any, where: str = "the additional context") -> dict:
    """A context given as a dict, JSON text or a Python dict literal."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise InvalidInputError(f"the context must be a JSON object, not {type(value).__name__}", where,
                                'Write it as JSON, e.g. {"gpu_vendor": "AMD"}')
    try:
        data = json.loads(value)
    except ValueError:
        try:
            data = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError) as exc:
            raise InvalidInputError(f"the context is neither JSON nor a Python dict literal ({exc})",
                                    where, 'Write it as JSON, e.g. {"gpu_vendor": "AMD"}') from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"the context must be an object, not {type(data).__name__}", where,
                                'Write it as JSON, e.g. {"gpu_vendor": "AMD"}')
    return data


def parse_gpu_list(value: Any, where: str = "docker_gpus") -> Optional[List[int]]:
    """'0,2-4' -> [0, 2, 3, 4]; 'all' -> None (every GPU)."""
    fix = "Write GPU indices and ranges such as '0,2-4' (or 'all')"
    if isinstance(value, bool):
        raise InvalidInputError(f"{where} {value!r} is not a GPU list", "the additional context", fix)
    if isinstance(value, int):
        items: List[str] = [str(value)]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        items = value.split(",")
    else:
        raise InvalidInputError(f"{where} {value!r} is not a GPU list", "the additional context", fix)
    indices = set()
    for item in items:
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise InvalidInputError(f"{where} {value!r} is not a GPU list (bad part {item.strip()!r})",
                                    "the additional context", fix)
        indices.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return sorted(indices)


def _context_vendor(ctx: dict) -> Optional[str]:
    raw = ctx.get("gpu_vendor")
    if raw is None or raw == "":
        return None
    text = str(raw).strip().upper()
    for vendor in (AMD, NVIDIA):
        if vendor in text:  # upstream contexts also say e.g. 'AMD_GPU'
            return vendor
    raise InvalidInputError(f"gpu_vendor {raw!r} is neither AMD nor NVIDIA", "the additional context",
                            "Set gpu_vendor to AMD or NVIDIA, or leave it out to detect it")


def _context_count(ctx: dict, problems: List[str]) -> Optional[Tuple[str, int]]:
    given = []
    for key in COUNT_KEYS:
        raw = ctx.get(key)
        if raw is None or raw == "":
            continue
        try:
            number = int(str(raw).strip())
        except ValueError:
            raise InvalidInputError(f"{key} {raw!r} is not a number of GPUs", "the additional context",
                                    f"Set {key} to a whole number such as 8") from None
        if number < -1:
            raise InvalidInputError(f"{key} {raw!r} is not a number of GPUs", "the additional context",
                                    f"Set {key} to a whole number such as 8 (-1 = all)")
        if number >= 0:
            given.append((key, number))
    if len({number for _key, number in given}) > 1:
        problems.append("the context gives different GPU counts ("
                        + ", ".join(f"{k}={n}" for k, n in given) + f"); {given[0][0]} is used")
    return given[0] if given else None


def _context_architecture(ctx: dict) -> Optional[str]:
    build_args = ctx.get("docker_build_arg") if isinstance(ctx.get("docker_build_arg"), dict) else {}
    for raw in (build_args.get("MAD_SYSTEM_GPU_ARCHITECTURE"), ctx.get("MAD_SYSTEM_GPU_ARCHITECTURE")):
        if raw is not None and str(raw).strip():
            return str(raw).strip()
    return None


def _derived_device(vendor: str, index: int) -> Optional[str]:
    if vendor == AMD:
        return f"/dev/dri/renderD{FIRST_RENDER_MINOR + index}"
    return str(index) if vendor == NVIDIA else None


# --------------------------------------------------------------------------- the fact

def gather_gpu_facts(context: Optional[dict] = None, *, tool_dirs: Optional[Sequence[str]] = None,
                     sysfs_root: str = "/sys", dev_root: str = "/dev",
                     timeout: float = DEFAULT_TIMEOUT, node: Optional[str] = None,
                     run: Optional[Runner] = None, expected: Optional[dict] = None) -> dict:
    """The ``madengine_gpu`` fact: detection, then the context's overrides, then the verdict.

    ``expected`` is what the inventory declares for the node ({"vendor", "count"}); where
    the tools say otherwise, that is one more problem (the tools are believed).
    """
    ctx = dict(context or {})
    forced_vendor = _context_vendor(ctx)
    found = detect_gpus(forced_vendor, tool_dirs=tool_dirs, sysfs_root=sysfs_root,
                        dev_root=dev_root, timeout=timeout, run=run)
    problems = list(found.problems)
    overrides: List[str] = []
    vendor = found.vendor
    if forced_vendor and (forced_vendor != vendor or not found.gpus):
        vendor = forced_vendor
        overrides.append("gpu_vendor")
    gpus = [dict(g) for g in found.gpus]

    count = _context_count(ctx, problems)
    if count is not None and count[1] != len(gpus):
        key, number = count[0], count[1]
        if vendor == NONE:
            problems.append(f"the context sets {key}={number} but no GPU vendor is known; "
                            "set gpu_vendor as well")
        else:
            gpus = gpus[:number] + [_gpu(i, device=_derived_device(vendor, i))
                                    for i in range(len(gpus), number)]
            overrides.append(key)

    render_ds = ctx.get("gpu_renderDs")
    if vendor == AMD and isinstance(render_ds, list) and render_ds:
        if len(render_ds) < len(gpus) or not all(str(r).strip().isdigit() for r in render_ds):
            raise InvalidInputError(f"gpu_renderDs {render_ds!r} does not give a render node number "
                                    f"for each of the {len(gpus)} GPUs", "the additional context",
                                    "List one renderD number per GPU, e.g. [128, 136]")
        for gpu, minor in zip(gpus, render_ds):
            gpu["device"] = f"/dev/dri/renderD{int(str(minor).strip())}"
        overrides.append("gpu_renderDs")

    selected = gpus
    if ctx.get("docker_gpus") not in (None, ""):
        wanted = parse_gpu_list(ctx["docker_gpus"])
        if wanted is not None:
            by_index = {g["index"]: g for g in gpus}
            missing = [i for i in wanted if i not in by_index]
            if missing and gpus:
                have = ", ".join(str(i) for i in sorted(by_index))
                raise InvalidInputError(
                    f"docker_gpus {ctx['docker_gpus']!r} names GPU {', '.join(map(str, missing))} "
                    f"but this node has GPU {have}", "the additional context",
                    "Name only GPUs the node has, or leave docker_gpus out to use all of them")
            if not missing:
                selected = [by_index[i] for i in wanted]
                overrides.append("docker_gpus")

    architecture = _context_architecture(ctx)
    if architecture:
        overrides.append("MAD_SYSTEM_GPU_ARCHITECTURE")
    else:
        archs = [g["architecture"] for g in selected if g["architecture"]]
        architecture = archs[0] if archs else None
        if len(set(archs)) > 1:
            problems.append(f"the GPUs are of different architectures ({', '.join(sorted(set(archs)))}); "
                            f"reporting {architecture}")
    products = [g["product"] for g in selected if g["product"]]

    facts = {
        "node": node or socket.gethostname(),
        "vendor": vendor,
        "architecture": architecture,
        "product": products[0] if products else None,
        "count": len(selected),
        "devices": [g["device"] for g in selected],
        "indices": [g["index"] for g in selected],
        "total_count": len(gpus),
        "gpus": gpus,
        "driver_version": found.driver_version,
        "rocm_version": found.rocm_version,
        "cuda_version": found.cuda_version,
        "tool": found.tool,
        "tools_installed": found.installed,
        "device_source": found.device_source,
        "overrides": overrides,
        "problems": problems,
    }
    facts["problems"] += _against_inventory(facts, expected or {})
    facts["can_run_gpu_models"], facts["reason"] = verdict(facts)
    return facts


def _against_inventory(facts: dict, expected: dict) -> List[str]:
    problems = []
    vendor = str(expected.get("vendor") or "").strip().upper()
    if vendor and vendor != facts["vendor"]:
        problems.append(f"the inventory declares {vendor} GPUs but this node has {facts['vendor']}")
    count = expected.get("count")
    if count not in (None, "") and str(count).strip().isdigit() and int(str(count)) != facts["total_count"]:
        problems.append(f"the inventory declares {int(str(count))} GPUs but this node has {facts['total_count']}")
    return problems


def verdict(facts: dict) -> Tuple[bool, str]:
    """Can this node run models that need GPUs, and why (one line)."""
    count, vendor = facts.get("count", 0), facts.get("vendor", NONE)
    if count > 0:
        what = f"{count} {vendor} GPU{'s' if count != 1 else ''}"
        arch = facts.get("architecture") or "architecture unknown"
        source = f"reported by {facts['tool']}" if facts.get("tool") else "as the context says"
        return True, f"{what}, {arch}, {source}"
    if facts.get("problems"):
        return False, facts["problems"][0]
    if vendor == NONE:
        return False, "no GPU tool found: looked for amd-smi, rocm-smi, rocminfo and nvidia-smi"
    if not facts.get("tools_installed"):
        tools = "amd-smi, rocm-smi or rocminfo" if vendor == AMD else "nvidia-smi"
        return False, f"gpu_vendor is {vendor} but {tools} is not installed"
    return False, f"{facts.get('tool') or 'the GPU tool'} reports no {vendor} GPU"


# --------------------------------------------------------------------------- for a model run

def parse_n_gpus(n_gpus: Any) -> int:
    """A model's n_gpus ('1', '-1', '0', or an int) as an int; -1 means all GPUs of the node."""
    text = str(n_gpus).strip() if n_gpus is not None else ""
    if not re.fullmatch(r"-1|\d+", text):
        raise InvalidInputError(f"n_gpus {n_gpus!r} is not a GPU count", "the model entry",
                                "Use '-1' (all GPUs of the node), '0' (no GPU) or a whole number")
    return int(text)


def select_devices(facts: dict, n_gpus: Any) -> Tuple[List[str], Optional[str]]:
    """The devices a model with this ``n_gpus`` gets, or ([], why not).

    -1 = all GPUs of the node, 0 = none, N = the first N of the node's usable GPUs
    (the ``devices`` of the facts: detection order, after docker_gpus).
    """
    wanted = parse_n_gpus(n_gpus)
    devices = list(facts.get("devices") or [])
    if wanted == 0:
        return [], None
    needs = "all GPUs of the node" if wanted == -1 else f"{wanted} GPU{'s' if wanted != 1 else ''}"
    if not devices:
        return [], f"the model needs {needs} but this node has none usable: {facts.get('reason') or 'no GPU'}"
    if wanted == -1:
        return devices, None
    if wanted > len(devices):
        scope = " (docker_gpus selects them)" if "docker_gpus" in (facts.get("overrides") or []) else ""
        return [], f"the model needs {needs} but this node offers {len(devices)}{scope}"
    return devices[:wanted], None


def visible_devices_value(devices: Sequence[str]) -> str:
    """Inside the container the assigned GPUs are renumbered from 0: '0,1,...'."""
    return ",".join(str(i) for i in range(len(devices)))


def visibility_env(facts: dict, devices: Sequence[str]) -> Dict[str, str]:
    """The GPU visibility variables for a container given ``devices`` (see MAD-FORMAT 4)."""
    if not devices:
        return {}
    value = visible_devices_value(devices)
    if facts.get("vendor") == AMD:
        return {"HIP_VISIBLE_DEVICES": value, "ROCR_VISIBLE_DEVICES": value}
    if facts.get("vendor") == NVIDIA:
        return {"CUDA_VISIBLE_DEVICES": value}
    return {}


def docker_device_options(facts: dict, devices: Sequence[str]) -> Dict[str, Any]:
    """docker SDK ``containers.run`` keyword arguments that hand ``devices`` to a container."""
    if not devices:
        return {}
    if facts.get("vendor") == AMD:
        paths = ["/dev/kfd"] + list(devices)
        return {"devices": [f"{p}:{p}:rwm" for p in paths], "group_add": ["video"]}
    if facts.get("vendor") == NVIDIA:
        return {"device_requests": [{"driver": "nvidia", "device_ids": [str(d) for d in devices],
                                     "capabilities": [["gpu"]]}]}
    return {}
