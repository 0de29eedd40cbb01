"""The import graph of the installed packages, read from their sources with ``ast`` (nothing is imported).

Every ``import`` / ``from ... import`` counts, at module level or inside a function, with relative imports
resolved against the importing module. The packages are found with ``importlib.util.find_spec`` (which does not
execute them); one that is not installed is left out. Checks:

(a) no import cycle among the modules of the library ``spikemax_plugins``;
(b) no cycle between packages; the library imports no adapter, no bench and no host framework; the adapters
    import no bench;
(c) only the library's root ``__init__`` defines a module-level ``__getattr__``;
(d) the adapters use only public names of the library (``spikemax_plugins._registration``, the documented
    registration helper, excepted).

``test_largest_library_modules`` prints the library's largest modules (run with ``-s``); it asserts no size.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LIBRARY = "spikemax_plugins"
ADAPTERS = ("spikemax_snntorch", "spikemax_norse", "spikemax_spikingjelly", "spikemax_sinabs", "spikemax_neurobench")
BENCH = "spikemax_bench"
PACKAGES = (LIBRARY, *ADAPTERS, BENCH)
BENCH_PREFIXES = (BENCH,)
HOSTS = ("snntorch", "norse", "spikingjelly", "sinabs", "neurobench")
ALLOWED_PRIVATE = {f"{LIBRARY}._registration"}  # the documented internal registration helper of the adapters


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    imports: set[str] = field(default_factory=set)  # fully qualified, as written or resolved
    private_uses: set[str] = field(default_factory=set)  # spikemax_plugins names starting with "_"

    @property
    def lines(self) -> int:
        return len(self.path.read_text(encoding="utf-8").splitlines())


def package_of(name: str) -> str:
    if name.startswith(BENCH_PREFIXES) and any(name == p or name.startswith(p + ".") for p in BENCH_PREFIXES):
        return BENCH
    return name.split(".")[0]


def discover() -> dict[str, Module]:
    """Every module of every installed package in PACKAGES, by qualified name, from the files on disk."""
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        if spec.submodule_search_locations is None:  # a single-file module
            paths = {package: Path(spec.origin)}
        else:
            root = Path(next(iter(spec.submodule_search_locations)))
            paths = {}
            for path in sorted(root.rglob("*.py")):
                parts = path.relative_to(root).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                paths[".".join((package, *parts))] = path
        for name, path in paths.items():
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            modules[name] = Module(name, path, path.name == "__init__.py", tree)
    for module in modules.values():
        resolve_imports(module, modules)
    return modules


def resolve_imports(module: Module, modules: dict[str, Module]) -> None:
    """Fill ``module.imports`` and ``module.private_uses`` from every import statement of its source."""
    bound: dict[str, str] = {}  # local name -> library module it is bound to (for attribute uses)
    base_parts = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module.imports.add(alias.name)
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base_parts[: len(base_parts) - (node.level - 1)]
                source = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                qualified = f"{source}.{alias.name}"
                if qualified in modules:  # from package import submodule
                    module.imports.add(qualified)
                    bound[alias.asname or alias.name] = qualified
                else:
                    module.imports.add(source)
                    if source.split(".")[0] == LIBRARY and is_private(alias.name):
                        module.private_uses.add(qualified)
    for imported in module.imports:
        if imported.split(".")[0] == LIBRARY and any(is_private(part) for part in imported.split(".")[1:]):
            module.private_uses.add(imported)
    # e.g. functional._spikemax_loss (a private name of a library module), _validation.check_weight_option (a name
    # in a private module)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            target = bound[node.value.id]
            in_private_module = any(is_private(part) for part in target.split(".")[1:])
            dunder = node.attr.startswith("__") and node.attr.endswith("__")
            if target.split(".")[0] == LIBRARY and (is_private(node.attr) or (in_private_module and not dunder)):
                module.private_uses.add(f"{target}.{node.attr}")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def internal_edges(modules: dict[str, Module], members: set[str]) -> dict[str, set[str]]:
    """Edges between the given modules: an import of ``a.b.c`` points at the deepest listed module it names."""
    edges: dict[str, set[str]] = {name: set() for name in members}
    for name in members:
        for imported in modules[name].imports:
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in members:
                    if candidate != name:
                        edges[name].add(candidate)
                    break
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) for every strongly connected component with one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(node: str) -> None:  # Tarjan; the graphs are small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                strongconnect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    cycles = []
    for component in components:  # a shortest way back to the component's first member
        start, members = component[0], set(component)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            succs = sorted(edges[path[-1]] & members)
            if start in succs:
                cycles.append([*path, start])
                break
            for succ in succs:
                if succ not in seen:
                    seen.add(succ)
                    paths.append([*path, succ])
    return cycles


def test_the_graph_helpers_see_cycles_and_relative_imports(tmp_path):
    """The checks below pass vacuously if the helpers see nothing: a cycle and a relative import they must see."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = "from .. import _validation\nfrom .rule import ExitRule\n\ndef f():\n    from ..functional import _x\n"
    names = ["spikemax_plugins", "spikemax_plugins._validation", "spikemax_plugins.functional",
             "spikemax_plugins.early_exit", "spikemax_plugins.early_exit.rule", "spikemax_plugins.early_exit.runners"]
    fake = {name: Module(name, tmp_path, name.count(".") < 2 and not name.endswith("_validation")
                         and not name.endswith("functional"), ast.parse("")) for name in names}
    runners = fake["spikemax_plugins.early_exit.runners"] = Module(
        "spikemax_plugins.early_exit.runners", tmp_path, False, ast.parse(source))
    resolve_imports(runners, fake)
    assert runners.imports == {"spikemax_plugins._validation", "spikemax_plugins.early_exit.rule",
                               "spikemax_plugins.functional"}
    assert runners.private_uses == {"spikemax_plugins._validation", "spikemax_plugins.functional._x"}


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    found = discover()
    if not any(package_of(name) == LIBRARY for name in found):
        pytest.fail(f"{LIBRARY} is not importable: the import graph cannot be read")
    return found


def library_modules(modules: dict[str, Module]) -> set[str]:
    return {name for name in modules if package_of(name) == LIBRARY}


def test_library_has_no_import_cycle(modules):
    cycles = find_cycles(internal_edges(modules, library_modules(modules)))
    assert not cycles, "import cycles in the library:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_packages_have_no_import_cycle(modules):
    packages = {package_of(name) for name in modules}
    edges = {package: set() for package in packages}
    for name, module in modules.items():
        for imported in module.imports:
            target = package_of(imported)
            if target in packages and target != package_of(name):
                edges[package_of(name)].add(target)
    cycles = find_cycles(edges)
    assert not cycles, "import cycles between packages:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def forbidden_imports(modules: dict[str, Module], package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {imported}"
        for name, module in modules.items()
        if package_of(name) == package
        for imported in module.imports
        if package_of(imported) in forbidden or imported.split(".")[0] in forbidden
    )


def test_library_imports_no_adapter_bench_or_host(modules):
    found = forbidden_imports(modules, LIBRARY, (*ADAPTERS, BENCH, *HOSTS))
    assert not found, "\n".join(found)


def test_adapters_import_no_bench(modules):
    found = [line for adapter in ADAPTERS for line in forbidden_imports(modules, adapter, (BENCH,))]
    assert not found, "\n".join(found)


def test_only_the_library_root_defines_a_module_getattr(modules):
    found = sorted(
        name
        for name in library_modules(modules)
        if name != LIBRARY
        for node in modules[name].tree.body
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__getattr__")
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__getattr__" for t in node.targets))
    )
    assert not found, f"module-level __getattr__ outside {LIBRARY}/__init__.py: {found}"


def adapter_private_uses(modules: dict[str, Module]) -> set[str]:
    return {
        f"{package_of(name)} -> {use}"
        for name, module in modules.items()
        if package_of(name) in ADAPTERS
        for use in module.private_uses
        if not any(use == allowed or use.startswith(allowed + ".") for allowed in ALLOWED_PRIVATE)
    }


def test_adapters_use_only_public_names_of_the_library(modules):
    found = adapter_private_uses(modules)
    assert not found, f"adapters use private names of {LIBRARY}: {sorted(found)}"


def test_largest_library_modules(modules):
    sizes = sorted(((modules[name].lines, name) for name in library_modules(modules)), reverse=True)
    print("\nlargest modules of the library (lines):")
    for lines, name in sizes[:5]:
        print(f"  {lines:5d}  {name}")
    assert sizes
