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


def imported(path: Path) -> set[str]:
    """Every module a file imports (at the top or inside a function), relative imports resolved; `from X import y`
    counts as X and X.y (y may be a submodule)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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
