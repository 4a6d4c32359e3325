"""The house's guard rails, read from the source.

The import graph of ha/ and radvd/ is computed with ast from every import
statement (top level, inside functions, relative and absolute), so the rules
below hold for what the code says, not for what a test run happened to load:

- no import cycle anywhere in ha/ or radvd/;
- ha/wire and ha/core stay sans-I/O: no socket, asyncio, time, select,
  subprocess or pyroute2, directly or through another project module, and
  nothing from ha.net, ha.datapath or ha.daemon;
- ha/wire (bytes) does not import ha/core (protocol);
- only the daemon's wiring (ha/daemon/service.py, settings.py) and the
  config CLI (ha/haconf) use radvd;
- the firmware image leaves the lab tools (ha/lab) out.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ha", "radvd")

# modules that touch the outside world: sockets, event loops, clocks, processes, netlink
IO_MODULES = ("socket", "asyncio", "time", "select", "selectors", "subprocess", "pyroute2")
IO_WINGS = ("ha.net", "ha.datapath", "ha.daemon")


# --------------------------------------------------------------------------- the graph

def module_files(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py under the packages."""
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement of `source` loads, relative ones resolved.

    `from a.b import c` yields both a.b and a.b.c: which of the two is a module is
    decided against the known files by the caller.
    """
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(p for p in base_parts if p)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    names.discard("")
    return names


def resolve(name: str, modules: dict[str, Path]) -> list[str]:
    """The project modules that importing `name` runs: the deepest file, and its packages."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules]


def build_graph(root: Path = ROOT, packages=PACKAGES):
    """(edges inside the project, every raw import name) per module."""
    modules = module_files(root, packages)
    edges: dict[str, set[str]] = {}
    raw: dict[str, set[str]] = {}
    for name, path in modules.items():
        names = imported_names(path.read_text(), name, path.name == "__init__.py")
        raw[name] = names
        targets: set[str] = set()
        for n in names:
            targets.update(resolve(n, modules))
        targets.discard(name)
        # a package's own parents run before it; they are not an import of its code
        edges[name] = {t for t in targets if not _within(name, t)}
    return edges, raw


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in edges}
    for start in sorted(edges):
        if colour[start] != WHITE:
            continue
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in colour:
                    continue
                if colour[child] == GREY:
                    return path[path.index(child):] + [child]
                if colour[child] == WHITE:
                    colour[child] = GREY
                    path.append(child)
                    stack.append((child, iter(sorted(edges[child]))))
                    break
            else:
                colour[node] = BLACK
                path.pop()
                stack.pop()
    return None


def reaching(edges, raw, start: str, forbidden) -> list[str] | None:
    """The chain start -> ... -> X by which `start` loads a forbidden name, or None.

    `forbidden(name)` is asked of every raw import name (stdlib or project);
    project modules are followed, so a core module cannot borrow I/O through one.
    """
    seen = {start}
    queue = [[start]]
    while queue:
        chain = queue.pop(0)
        here = chain[-1]
        for name in sorted(raw.get(here, ())):
            if forbidden(name):
                return chain + [name]
        for nxt in sorted(edges.get(here, ())):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(chain + [nxt])
    return None


GRAPH, RAW = build_graph()


# --------------------------------------------------------------------------- the checker itself

def _write(tmp_path: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_checker_finds_a_cycle_through_a_function_level_relative_import(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "import os\nfrom . import c\n",
        "pkg/c.py": "def late():\n    from .a import x\n",
        "pkg/d.py": "import pkg.a\n",          # reaches the cycle but is not in it
    })
    edges, _ = build_graph(tmp_path, ("pkg",))
    assert edges["pkg.b"] == {"pkg.c"}
    cycle = find_cycle(edges)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"pkg.a", "pkg.b", "pkg.c"}


def test_checker_passes_an_acyclic_graph_and_sees_parent_packages(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from ..base import X\n",
        "pkg/sub/leaf.py": "from pkg.sub import helper\nimport pkg.base as b\n",
        "pkg/base.py": "import socket\n",
    })
    edges, raw = build_graph(tmp_path, ("pkg",))
    assert find_cycle(edges) is None
    assert edges["pkg.sub"] == {"pkg.base"}
    assert edges["pkg.sub.leaf"] == {"pkg.base"}       # its own parents are not edges
    assert reaching(edges, raw, "pkg.sub.leaf", lambda n: n == "socket") == \
        ["pkg.sub.leaf", "pkg.base", "socket"]


def test_checker_sees_a_package_importing_its_own_child_back(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg import child\n",
        "pkg/child.py": "import pkg.other\n",
        "pkg/other.py": "from pkg import child\n",
    })
    edges, _ = build_graph(tmp_path, ("pkg",))
    assert set(find_cycle(edges)) == {"pkg.child", "pkg.other"}


# --------------------------------------------------------------------------- the house

def test_the_graph_covers_every_wing():
    wings = {m.split(".")[1] for m in GRAPH if m.startswith("ha.") and m.count(".") >= 1}
    assert {"wire", "core", "net", "datapath", "daemon", "config", "haconf"} <= wings
    # function-level imports are edges: the scheduler loads its ND codec lazily
    assert "ha.wire.icmpv6" in GRAPH["radvd.scheduler"]


def test_no_import_cycle_in_ha_or_radvd():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


SANS_IO = sorted(m for m in GRAPH if _within(m, "ha.wire") or _within(m, "ha.core"))


@pytest.mark.parametrize("module", SANS_IO)
def test_wire_and_core_do_no_io(module):
    def io(name: str) -> bool:
        return any(_within(name, m) for m in IO_MODULES) or any(_within(name, w) for w in IO_WINGS)
    chain = reaching(GRAPH, RAW, module, io)
    assert chain is None, f"{module} is sans-I/O but loads {chain[-1]}: " + " -> ".join(chain)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, "ha.wire")))
def test_wire_does_not_import_core(module):
    chain = reaching(GRAPH, RAW, module, lambda n: _within(n, "ha.core"))
    assert chain is None, f"{module} is a codec but loads the protocol: " + " -> ".join(chain)


# the daemon's wiring (service runs the RA sender, settings hands radvd.config's
# check to the denali.conf loader) and the CLI that imports and exports radvd.conf
RADVD_ALLOWED = ("ha.daemon.service", "ha.daemon.settings", "ha.haconf")
WINGS = sorted({".".join(m.split(".")[:2]) for m in GRAPH if m.startswith("ha.")} | {"ha"})


@pytest.mark.parametrize("wing", WINGS)
def test_only_the_daemon_wiring_and_haconf_use_radvd(wing):
    offenders = sorted(
        f"{m} imports {n}"
        for m, names in RAW.items()
        if (m == wing if wing == "ha" else _within(m, wing))
        and not any(_within(m, a) for a in RADVD_ALLOWED)
        for n in names if _within(n, "radvd"))
    assert not offenders, "; ".join(offenders)


# --------------------------------------------------------------------------- the image

def test_build_sh_leaves_the_lab_out_of_the_image():
    """Run build.sh's own copy selection on this tree: ha/lab must not be in it."""
    text = (ROOT / "build.sh").read_text()
    m = re.search(r"\(cd \"\$HERE\" && (find \"\$pkg\" .*?\))\s*\|", text)
    assert m, "build.sh: the find that selects the project's files was not found"
    listed = set()
    for pkg in PACKAGES:
        out = subprocess.run(["bash", "-c", m.group(1)], cwd=ROOT, env={**os.environ, "pkg": pkg},
                             capture_output=True, text=True, check=True).stdout
        listed.update(out.split())
    assert "ha/daemon/main.py" in listed and "ha/config/denali.spec" in listed
    assert "radvd/service.py" in listed
    shipped_lab = sorted(f for f in listed if f.startswith("ha/lab/"))
    assert not shipped_lab, f"build.sh would ship the lab tools: {shipped_lab}"
