"""The declared dependencies are exactly what ``bridge/`` imports.

Walks every module of ``bridge/`` with :mod:`ast` (``import x``, ``from x import y``, and
the lazy ``importlib.import_module("x")`` / ``find_spec("x")`` of optional backends),
maps each third-party import name to its PyPI distribution, and compares the result with
``[project] dependencies`` and ``[project.optional-dependencies]`` of pyproject.toml:

* an import whose distribution is declared nowhere fails (it only works by accident, when
  something else pulled it in);
* a declaration that no module imports fails, unless :data:`NOT_IMPORTED` says why it is
  needed anyway;
* an import that only happens inside a function (an optional backend) must be declared,
  either as a dependency or in an extra; one at module level must be a core dependency,
  unless the whole module belongs to an extra (:data:`EXTRA_MODULES`).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bridge"

#: Import name -> PyPI distribution, for every third-party name ``bridge/`` may import.
#: Checked against the installed metadata by test_the_import_table_agrees_with_installed_metadata.
IMPORT_TO_DIST = {
    "PIL": "Pillow",
    "SpoutGL": "SpoutGL",
    "ai_edge_litert": "ai-edge-litert",
    "annotated_types": "annotated-types",
    "av": "av",
    "controlnet_aux": "controlnet-aux",
    "cv2": "opencv-python-headless",
    "cyndilib": "cyndilib",
    "diffusers": "diffusers",
    "huggingface_hub": "huggingface_hub",
    "numpy": "numpy",
    "onnxruntime": "onnxruntime",
    "packaging": "packaging",
    "pydantic": "pydantic",
    "pythonosc": "python-osc",
    "safetensors": "safetensors",
    "torch": "torch",
    "transformers": "transformers",
    "yaml": "PyYAML",
}

#: Imported, but provided by the host application rather than installed with us.
HOST_PROVIDED = {"scope": "Daydream Scope imports the plugin (bridge.scope_plugin) from inside its own environment"}

#: Declared but never imported by ``bridge/``, and why they are needed anyway.
NOT_IMPORTED = {
    "accelerate": "diffusers' from_pretrained loads weights with it (low_cpu_mem_usage)",
    "peft": "diffusers' load_lora_weights needs it (the LCM-LoRA of the SD 1.5/SDXL presets)",
}

#: Modules that belong to an extra as a whole: their top-level imports may come from it.
EXTRA_MODULES = {
    "bridge/avatar/": "avatar",
    "bridge/bench/avatar.py": "avatar",
    "bridge/transports/ndi.py": "ndi",
}


def _norm(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1))


def _pyproject() -> dict:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    import tomli  # the [test] extra installs it on Python 3.10

    return tomli.loads(text)


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """(core dependencies, extra -> its dependencies), as normalised distribution names."""
    project = _pyproject()["project"]
    core = {_req_name(r) for r in project["dependencies"]}
    extras = {name: {_req_name(r) for r in reqs} for name, reqs in project.get("optional-dependencies", {}).items()}
    return core, extras


def _lazy_name(call: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x...")`` / ``find_spec("x")`` (also an f-string's literal head)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "find_spec", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


def bridge_imports() -> dict[str, dict[str, set[str]]]:
    """Top-level import name -> {"top": files importing it at module level, "lazy": inside functions}."""
    found: dict[str, dict[str, set[str]]] = {}

    def add(name: str, path: str, lazy: bool) -> None:
        top = name.split(".")[0]
        if top and top != "bridge" and top not in sys.stdlib_module_names:
            found.setdefault(top, {"top": set(), "lazy": set()})["lazy" if lazy else "top"].add(path)

    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        # statements at module level (also inside module-level if/try) are "top"
        top_nodes = set()
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            top_nodes.add(node)
            if isinstance(node, (ast.If, ast.Try)):
                stack += node.body + node.orelse + getattr(node, "finalbody", []) + [s for h in getattr(node, "handlers", []) for s in h.body]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, rel, node not in top_nodes)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                add(node.module, rel, node not in top_nodes)
            elif isinstance(node, ast.Call):
                name = _lazy_name(node)
                if name:
                    add(name, rel, True)
    return found


def _dist(name: str) -> str:
    assert name in IMPORT_TO_DIST, (f"bridge/ imports {name!r}, which is in no dependency table: add its PyPI distribution to "
                                    f"IMPORT_TO_DIST here and declare it in pyproject.toml (a dependency, or an extra if optional)")
    return _norm(IMPORT_TO_DIST[name])


def test_every_import_of_bridge_is_declared():
    core, extras = declared()
    everywhere = core.union(*extras.values())
    undeclared = []
    for name, where in sorted(bridge_imports().items()):
        if name in HOST_PROVIDED:
            continue
        dist = _dist(name)
        if dist not in everywhere:
            undeclared.append(f"{name} ({dist}) imported by {sorted(where['top'] | where['lazy'])[:3]}")
    assert not undeclared, "imported but not declared in pyproject.toml: " + "; ".join(undeclared)


def test_module_level_imports_are_core_dependencies():
    core, extras = declared()
    wrong = []
    for name, where in sorted(bridge_imports().items()):
        if name in HOST_PROVIDED:
            continue
        dist = _dist(name)
        for path in sorted(where["top"]):
            extra = next((e for prefix, e in EXTRA_MODULES.items() if path.startswith(prefix)), None)
            if dist in core or (extra is not None and dist in extras.get(extra, set())):
                continue
            wrong.append(f"{path} imports {name} at module level but {dist} is not a core dependency"
                         + (f" nor in the [{extra}] extra" if extra else " (import it inside the function that needs it, and put it in an extra)"))
    assert not wrong, "; ".join(wrong)


def test_every_declared_dependency_is_imported_or_explained():
    core, extras = declared()
    imported = {_dist(name) for name in bridge_imports() if name not in HOST_PROVIDED}
    unused = []
    for group, names in [("dependencies", core)] + [(f"[{e}]", n) for e, n in extras.items() if e != "test"]:
        for dist in sorted(names):
            if dist not in imported and dist not in {_norm(n) for n in NOT_IMPORTED}:
                unused.append(f"{dist} in {group}")
    assert not unused, "declared but never imported by bridge/ (remove it, or say in NOT_IMPORTED why it is needed): " + ", ".join(unused)


def test_the_test_extra_is_what_the_tests_import():
    _, extras = declared()
    imported = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {_norm(a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(_norm(node.module.split(".")[0]))
    assert extras["test"] <= imported, f"declared in [test] but no test imports it: {sorted(extras['test'] - imported)}"


def test_optional_backends_are_in_an_extra_not_in_the_core():
    core, extras = declared()
    for name in ("SpoutGL", "cyndilib", "controlnet_aux", "diffusers", "transformers"):
        dist = _norm(IMPORT_TO_DIST[name])
        assert dist not in core, f"{dist} is an optional backend: it belongs in an extra"
        assert any(dist in deps for deps in extras.values()), f"{dist} is in no extra"
    assert "mediapipe" not in core.union(*extras.values())
    assert "tqdm" not in core, "tqdm is not imported"


def test_the_import_table_agrees_with_installed_metadata():
    """Where a package is installed here, its metadata maps the import name to the distribution in the table."""
    installed = packages_distributions()
    checked = 0
    for name, dist in IMPORT_TO_DIST.items():
        if name in installed:
            assert _norm(dist) in {_norm(d) for d in installed[name]}, f"{name} comes from {installed[name]} here, not {dist}"
            checked += 1
    assert checked >= 10  # numpy, cv2, torch, pydantic, yaml, ... are installed by the test command


def test_the_walker_sees_lazy_and_module_level_imports():
    found = bridge_imports()
    assert "bridge/transports/spout.py" in found["SpoutGL"]["lazy"]  # importlib.import_module("SpoutGL")
    assert found["controlnet_aux"]["lazy"]  # importlib.import_module(f"controlnet_aux.{module}")
    assert "bridge/vision/runtime.py" in found["numpy"]["top"]
    assert "bridge/vision/runtime.py" in found["ai_edge_litert"]["lazy"]
