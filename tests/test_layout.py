"""The house as docs/architecture.md draws it, checked from the code's own imports: the hall
daemon and the store are siblings that meet only in daemon/batches.py, the rules are pure,
runtime packages never import harness code, the device code imports nothing from the host, and
no two modules share a file name. If one of these failed, a newcomer could no longer tell from
the folders where a thing lives, a hall server would need the store's code (or the simulator's)
to run, or a traceback would name a file that exists twice."""
import ast
import collections
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("daemon", "tools", "hardware", "protocol", "firmware")


def _modules():
    """(repo path, dotted name under haochaping) of every Python file that installs."""
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            yield rel, "haochaping." + ".".join(rel.with_suffix("").parts)


def _imports(path, text=None):
    """Absolute haochaping.* names that a file imports (relative imports resolved)."""
    rel = path.relative_to(ROOT)
    package = ["haochaping", *rel.parent.parts]
    out = set()
    source = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(mod + "." + a.name for a in node.names)
    return {m for m in out if m.startswith("haochaping.")}


def _importers(prefix):
    return {rel: _imports(ROOT / rel) for rel, mod in _modules() if mod.startswith(prefix)}


def _offenders(prefix, forbidden, allowed=()):
    bad = []
    for rel, names in _importers(prefix).items():
        for name in sorted(names):
            if name.startswith(forbidden) and not name.startswith(tuple(allowed)):
                bad.append("%s imports %s" % (rel, name))
    return bad


def test_no_two_modules_share_a_file_name():
    seen = collections.defaultdict(list)
    for rel, _ in _modules():
        if rel.name not in ("__init__.py", "__main__.py"):
            seen[rel.name].append(str(rel))
    twice = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not twice, "rename one of each: %s" % twice


@pytest.mark.parametrize("prefix, forbidden, why", [
    ("haochaping.daemon", ("haochaping.tools",),
     "runtime packages never import harness or CLI code"),
    ("haochaping.daemon.hall", ("haochaping.daemon.store",),
     "the hall daemon runs without the store's code; they meet in daemon/batches.py"),
    ("haochaping.daemon.store", ("haochaping.daemon.hall",),
     "the store runs without the hall daemon's code; they meet in daemon/batches.py"),
    ("haochaping.firmware", ("haochaping.daemon", "haochaping.tools", "haochaping.hardware"),
     "what is flashed to a terminal imports nothing from the host"),
    ("haochaping.protocol", ("haochaping.daemon", "haochaping.tools", "haochaping.hardware",
                             "haochaping.firmware"),
     "the wire format stands on its own, on both runtimes"),
])
def test_imports_keep_to_the_house(prefix, forbidden, why):
    assert _offenders(prefix, forbidden) == [], why


def test_the_rules_are_pure_and_stand_apart():
    """The regulation imports only itself, the project's errors and the levels of the protocol."""
    allowed = ("haochaping.daemon.rules", "haochaping.daemon.errors", "haochaping.protocol")
    assert _offenders("haochaping.daemon.rules", ("haochaping.",), allowed) == []


def test_the_check_sees_a_forbidden_import():
    """The import reader itself: a relative import that climbs into the store is caught."""
    probe = ROOT / "daemon" / "hall" / "probe.py"
    names = _imports(probe, "from ..store import cases\nimport haochaping.tools.sim\n")
    assert {"haochaping.daemon.store.cases", "haochaping.tools.sim"} <= names
