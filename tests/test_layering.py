"""Which way imports run (DESIGN.md): the core never imports the command-line modules. What they share with it
(loading a generator, drawing latents: sampling.py) lives in a core module that both import."""
import ast
from pathlib import Path

import ganlab

PACKAGE = Path(ganlab.__file__).parent
FORBIDDEN = {"ganlab.train", "ganlab.sample", "ganlab.evaluate"}  # the command-line modules the core must not import
# The command-line layer: those three and the other entry points, which build on train.py (CONF_DIR, build_module).
COMMAND_LINE = FORBIDDEN | {"ganlab.train_classifier", "ganlab.bench"}


def module_name(path: Path) -> str:
    parts = ("ganlab", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, types: bool = True) -> set[str]:
    """Every module a file imports (at the top or inside a function), relative imports resolved; `from X import y`
    counts as X and X.y (y may be a submodule). types=False leaves out those for annotations only (under `if
    TYPE_CHECKING:`), which never run."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    if not types:
        tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def test_imported_resolves_relative_imports():
    assert {"ganlab.sampling", "ganlab.sampling.generate"} <= imported(PACKAGE / "divergence.py")
    assert "ganlab.module" in imported(PACKAGE / "variants" / "infogan.py")  # from ..module import ...


def test_the_core_never_imports_the_command_line_modules():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name in COMMAND_LINE or name.startswith(tuple(f"{m}." for m in COMMAND_LINE)):
            continue
        bad = {m for m in imported(path) if m in FORBIDDEN or m.startswith(tuple(f"{f}." for f in FORBIDDEN))}
        if bad:
            offenders[name] = sorted(bad)
    assert not offenders, f"core modules importing the command line: {offenders}"


def import_graph() -> dict[str, set[str]]:
    """ganlab module -> the ganlab modules it imports when it runs (at the top or inside a function)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imported(path, types=False) if m in modules and m != name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: each strongly connected set of more than one module (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_circle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    """A circle (even closed by a lazy import inside a function) means two parts cannot be understood or loaded
    apart. Imports for annotations only do not count: they never run."""
    assert cycles(import_graph()) == []


def test_files_stay_readable_in_one_sitting():
    """The loop (module.py) at most 300 lines, every other source file at most 400."""
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert sizes["module.py"] <= 300
    assert {name: n for name, n in sizes.items() if n > 400} == {}
