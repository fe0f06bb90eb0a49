"""The code's shape, checked: one module spells config keys, the library never reaches up to the
entry scripts or `utils/`, and the import graph has no cycle (docs/design.md#code-layout)."""
import ast
import os
import re

from conftest import ROOT

BYOV = os.path.join(ROOT, "byov")
# Modules allowed to read config keys by name: the spec layer, the run assembly (which stores the
# whole config in checkpoints and compares it on resume) and the command-line front ends.
CONFIG_READERS = ("byov/spec/", "byov/training/assembly.py", "byov/cli/")
# a key read by name: config["lr"], cfg['lr'], config.get("lr"), ...
KEY_READ = re.compile(r"\b(?:config|cfg|conf|settings)\s*(?:\[\s*['\"]|\.get\(\s*['\"])")
ENTRY_MODULES = ("train", "evaluate", "utils")


def library_files():
    for folder, _, files in os.walk(BYOV):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, ROOT).replace(os.sep, "/"), path


def module_name(rel: str) -> str:
    mod = rel[:-3].replace("/", ".")
    return mod[:-9] if mod.endswith(".__init__") else mod


def imports_of(path: str, module: str, modules=frozenset()) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included). `from pkg
    import name` is an import of the module pkg.name when that is one of `modules`, else of pkg."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else base)
    return out


def graph() -> dict[str, set[str]]:
    files = dict(library_files())
    modules = {module_name(rel): path for rel, path in files.items()}
    return {m: {i for i in imports_of(p, m, frozenset(modules)) if i in modules and i != m}
            for m, p in modules.items()}


def is_front_end(module: str) -> bool:
    return module.startswith("byov.cli") or module.endswith("__main__")


def test_config_keys_are_read_only_by_the_spec_layer():
    offenders = []
    for rel, path in library_files():
        if rel.startswith(CONFIG_READERS):
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if KEY_READ.search(line):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, ("config keys read outside byov/spec.py (add a spec field there and "
                           "pass it as an argument):\n" + "\n".join(offenders))


def test_the_key_read_check_has_teeth(tmp_path):
    assert KEY_READ.search('    lr = config["lr"]')
    assert KEY_READ.search("x = cfg.get('seed', 0)")
    assert not KEY_READ.search("saved_config.get(k, absent)")  # generic comparison, not a key


def test_the_library_never_imports_entry_scripts_utils_or_front_ends():
    offenders = []
    for rel, path in library_files():
        module = module_name(rel)
        if is_front_end(module):
            continue
        for imported in imports_of(path, module, frozenset(["byov.cli"])):
            top = imported.split(".")[0]
            if top in ENTRY_MODULES or imported.startswith("byov.cli"):
                offenders.append(f"{rel} imports {imported}")
    assert not offenders, "\n".join(offenders)


def test_the_import_graph_has_no_cycle():
    g = graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    fake = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(__import__(__name__), "graph", lambda: fake)
    try:
        test_the_import_graph_has_no_cycle()
    except AssertionError as e:
        assert "a -> b -> a" in str(e)
    else:
        raise AssertionError("a two-module cycle was not reported")
