"""No import cycles (the house rule that keeps a second warehouse backend or a new store a local change): the
graph of imports between the project's modules, at any depth in a module, is acyclic; and the foundations
(`warehouse`, `stores`, `config`) import no domain package, apart from the baseline rules `config` checks a
program against when it loads (`settlement.presets`, `settlement.calendars`: plain rules, no warehouse)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "leap_orchestration"
DOMAIN = {"intake", "settlement", "statements", "sftp", "standardized"}
RULES_CONFIG_CHECKS = {"leap_orchestration.settlement.presets", "leap_orchestration.settlement.calendars"}


def _module(path: Path) -> str:
    parts = ("leap_orchestration", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str) -> str | None:
    """The project module `name` refers to (a module, or the module holding an imported attribute)."""
    bits = name.split(".")
    while len(bits) > 1:
        path = ROOT.joinpath(*bits[1:])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(bits)
        bits = bits[:-1]
    return None


def _runtime_nodes(tree: ast.AST):
    """Every node, except those under `if TYPE_CHECKING:` (type hints only: no import at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def module_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = _module(path)
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("leap_orchestration")
            ):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("leap_orchestration")]
            else:
                continue
            for name in names:
                target = _resolve(name)
                if target and target != source:
                    graph.setdefault(source, set()).add(target)
    return graph


def test_no_import_cycles():
    graph = module_imports()
    assert "leap_orchestration.intake.process" in graph  # the scan sees the modules
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        for nxt in sorted(graph.get(node, ())):
            assert nxt not in path, " -> ".join((*path, nxt))
            if nxt not in done:
                visit(nxt, (*path, nxt))
        done.add(node)

    for module in sorted(graph):
        visit(module, (module,))


def test_the_foundations_import_no_domain_package():
    for source, targets in module_imports().items():
        package = source.split(".")[1] if source.count(".") else ""
        if package in ("warehouse", "stores", "config"):
            domain = {t for t in targets if t.split(".")[1] in DOMAIN} - RULES_CONFIG_CHECKS
            assert not domain, (source, domain)
