"""The house as README's Layout section draws it: packages are layers, imports only point down
(module-level and function-level alike), no import cycle, and every module is listed."""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "vits_jax")
# bottom to top; a module may import its own layer's package or any lower one
LAYERS = ["config", "nn", "core", "voice", "tokenizer", "synth", "training", "app"]
TOP = {"__init__", "__main__"}            # the public name table and `python -m vits_jax`


def _modules() -> dict[str, str]:
    """dotted name -> file, for every module under vits_jax/."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(name: str, path: str) -> set[str]:
    """Every vits_jax module `name` imports, at any depth of the file (function-level too).
    `from pkg import mod` counts as importing pkg.mod (and pkg only for names that are not modules)."""
    modules = _modules()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("vits_jax"):
                subs = {f"{target}.{a.name}" for a in node.names} & set(modules)   # `from . import x`
                found.update(subs)
                if len(subs) < len(node.names):
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vits_jax"))
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in TOP:
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_imports_point_down_only():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name.split(".")[-1] in TOP and name.count(".") <= 1:
            continue
        for target in _imports(name, path):
            target = next((t for t in (target, target.rsplit(".", 1)[0]) if t in modules), None)
            if target is not None and target != "vits_jax" and _layer(target) > _layer(name):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports pointing up:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        if name == "vits_jax" or name.endswith("__main__"):
            continue      # the lazy public name table imports on first use, by design
        targets = set()
        for t in _imports(name, path):
            t = next((x for x in (t, t.rsplit(".", 1)[0]) if x in modules), None)
            if t and t != name and t != "vits_jax":
                targets.add(t)
        graph[name] = targets
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt in graph and not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if not state.get(node):
            visit(node)


def test_every_module_is_in_the_readme_layout():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("\n## ")] if "\n## " in layout else layout
    listed = set(re.findall(r"[\w]+\.py", layout))
    missing = [name for name in _modules() if os.path.basename(_modules()[name]) != "__init__.py"
               and os.path.basename(_modules()[name]) not in listed]
    assert not missing, f"modules missing from README's Layout section: {missing}"
    packages = {n.split(".")[1] for n in _modules() if n.count(".") >= 1 and
                os.path.basename(_modules()[n]) == "__init__.py"}
    assert all(f"{p}/" in layout for p in packages), packages
