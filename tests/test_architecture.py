"""The architecture, checked from the source: imports point down the layers
theory <- numeric <- gpu_check, there is no import cycle (function-local imports included), and
the slack rule and the verdict vocabulary each live in one module (theory/vocab.py).

Every module's AST is walked whole (``ast.walk``), so an import inside a function counts like
one at the top.  A module may import a higher layer only when it is a command-line entry point
(it has an ``if __name__ == "__main__":`` guard); no other module may reach a higher layer,
directly or through such an entry point.  Each checker also runs on a small synthetic tree where
it must pass and one where it must fail.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("theory", "numeric", "gpu_check")        # lowest first: each may import only those before it
VOCAB_MODULE = "theory.vocab"
# The words of theory.vocab.Verdict, and the words of the vocabularies it replaced.
VERDICT_WORDS = frozenset({"holds", "equality", "violated", "conditional", "undetermined", "undefined", "n/a",
                           "undecided", "not-applicable", "pending"})


# ---------------------------------------------------------------------------------------------
# The source tree as data
# ---------------------------------------------------------------------------------------------

def modules(root: Path) -> dict:
    """{dotted module name: parsed AST} of every .py file in the layer packages under ``root``."""
    out = {}
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from X import ...`` names."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, tree: ast.Module, known: set) -> set:
    """The project modules ``name`` imports anywhere in its body (functions included)."""
    is_package = any(k.startswith(name + ".") for k in known) and name.split(".")[0] in LAYERS
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, is_package, node)
            # `from pkg import mod` imports the submodule pkg.mod when there is one
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and \
                getattr(node.func, "id", getattr(node.func, "attr", None)) in ("import_module", "__import__", "importorskip") \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            targets = [node.args[0].value]
        for t in targets:
            while t and t not in known:       # `import a.b.c` of a module: nearest known prefix
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph(root: Path) -> dict:
    mods = modules(root)
    known = set(mods)
    return {name: imports(name, tree, known) for name, tree in mods.items()}


def is_entry_point(tree: ast.Module) -> bool:
    """A module with ``if __name__ == "__main__":`` at its top level."""
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            sides = [node.test.left, *node.test.comparators]
            if any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and \
                    any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides):
                return True
    return False


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def upward_imports(root: Path) -> list:
    """(module, imported module) pairs where a module reaches a higher layer: directly, if it is
    not an entry point; through any chain of imports, if it is not one."""
    graph = import_graph(root)
    entry = {name for name, tree in modules(root).items() if is_entry_point(tree)}
    bad = []
    for name in sorted(graph):
        if name in entry:
            continue
        seen, stack = set(), [name]
        while stack:
            for t in graph[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        bad += [(name, t) for t in sorted(seen) if layer_of(t) > layer_of(name)]
    return bad


def cycles(root: Path) -> list:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    graph = import_graph(root)
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ---------------------------------------------------------------------------------------------
# The vocabulary as data
# ---------------------------------------------------------------------------------------------

def _names(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return ""


def slack_rule_copies(root: Path) -> list:
    """'module:line' of every ``rhs - lhs`` or ``lhs - rhs`` (names, attributes or ["lhs"] items)
    outside theory/vocab.py: the slack sign rule is Relation.slack's."""
    out = []
    for name, tree in modules(root).items():
        if name == VOCAB_MODULE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and \
                    {_names(node.left).lower(), _names(node.right).lower()} == {"lhs", "rhs"}:
                out.append(f"{name}:{node.lineno}")
    return out


def spelled_verdicts(root: Path) -> list:
    """'module:line word' of every string constant outside theory/vocab.py that is exactly a
    verdict word (``"holds"``, ``"n/a"``, ...): a verdict is a theory.vocab.Verdict member."""
    out = []
    for name, tree in modules(root).items():
        if name == VOCAB_MODULE:
            continue
        out += [f"{name}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in VERDICT_WORDS]
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# The project
# ---------------------------------------------------------------------------------------------

def test_imports_point_down_the_layers_theory_numeric_gpu_check():
    assert upward_imports(ROOT) == []


def test_there_is_no_import_cycle_function_local_imports_included():
    assert cycles(ROOT) == []


def test_the_report_and_docs_command_lines_are_entry_points():
    mods = modules(ROOT)
    assert is_entry_point(mods["theory.report"]) and is_entry_point(mods["theory.docs"])
    assert not is_entry_point(mods["theory.report_rows"])


def test_the_slack_rule_lives_only_in_theory_vocab():
    assert slack_rule_copies(ROOT) == []


def test_the_verdict_words_are_spelled_only_in_theory_vocab():
    assert spelled_verdicts(ROOT) == []


def test_every_command_line_parses_through_theory_cli():
    """One argument and error helper: no module but theory.cli builds an argparse parser."""
    found = [f"{name}:{node.lineno}" for name, tree in modules(ROOT).items() if name != "theory.cli"
             for node in ast.walk(tree) if isinstance(node, ast.Call) and _names(node.func) == "ArgumentParser"]
    assert found == []


def test_no_test_imports_the_project_through_importorskip():
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _names(node.func) == "importorskip" and node.args and \
                    isinstance(node.args[0], ast.Constant) and str(node.args[0].value).split(".")[0] in LAYERS:
                found.append(f"{path.name}:{node.lineno} {node.args[0].value}")
    assert found == []


# ---------------------------------------------------------------------------------------------
# The checkers on synthetic trees: each must pass on one and fail on another
# ---------------------------------------------------------------------------------------------

def tree(tmp_path: Path, files: dict) -> Path:
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return tmp_path


CLEAN = {"theory/a.py": "import numpy\n", "numeric/b.py": "from theory import a\n",
         "gpu_check/c.py": "from numeric.b import x\nfrom theory.a import y\n",
         "theory/cli_report.py": "def main():\n    from gpu_check import c\n\nif __name__ == '__main__':\n    main()\n"}


def test_a_clean_tree_passes_every_checker(tmp_path):
    root = tree(tmp_path, CLEAN)
    assert upward_imports(root) == [] and cycles(root) == []
    assert slack_rule_copies(root) == [] and spelled_verdicts(root) == []


@pytest.mark.parametrize("rel, text, expected", [
    ("theory/d.py", "import numeric.b\n", ("theory.d", "numeric.b")),
    ("theory/d.py", "def f():\n    from gpu_check.c import z\n", ("theory.d", "gpu_check.c")),
    ("numeric/d.py", "from gpu_check import c\n", ("numeric.d", "gpu_check.c")),
    ("numeric/d.py", "import importlib\nimportlib.import_module('gpu_check.c')\n", ("numeric.d", "gpu_check.c")),
    # an entry point may import upward, but a library module may not import it
    ("theory/d.py", "from theory import cli_report\n", ("theory.d", "gpu_check.c")),
])
def test_an_upward_import_is_caught_at_top_level_in_a_function_or_through_an_entry_point(tmp_path, rel, text,
                                                                                          expected):
    root = tree(tmp_path, {**CLEAN, rel: text})
    assert expected in upward_imports(root)


def test_an_import_cycle_is_caught_even_through_a_function_local_import(tmp_path):
    root = tree(tmp_path, {**CLEAN, "gpu_check/m.py": "def hooks():\n    from gpu_check import n\n",
                           "gpu_check/n.py": "from gpu_check.m import base\n"})
    assert cycles(root) == [["gpu_check.m", "gpu_check.n"]]


def test_a_copy_of_the_slack_rule_is_caught(tmp_path):
    root = tree(tmp_path, {**CLEAN, "numeric/d.py": "def slack(q):\n    return q.rhs - q['lhs']\n"})
    assert slack_rule_copies(root) == ["numeric.d:2"]


@pytest.mark.parametrize("text", ["ok = c.verdict == 'holds'\n", "ok = v in ('violated', 'equality')\n",
                                  "row = {'verdict': 'undetermined'}\n", "VERDICTS = ('holds', 'violated')\n",
                                  "r = Row(verdict='pending')\n"])
def test_a_verdict_spelled_as_a_string_is_caught(tmp_path, text):
    root = tree(tmp_path, {**CLEAN, "gpu_check/d.py": text})
    assert [s.split()[0] for s in spelled_verdicts(root)] and all(s.startswith("gpu_check.d:1")
                                                                   for s in spelled_verdicts(root))


def test_the_report_and_its_trajectory_mode_run_on_the_base_install_without_torch_or_matplotlib(tmp_path):
    """pip install -e . installs numpy, scipy, sympy, mpmath only: the report (and --trajectory,
    which reads records) must not import the extras."""
    import subprocess
    import sys
    (tmp_path / "probes.jsonl").write_text("")
    block = "import sys\nfor m in ('torch', 'matplotlib', 'tqdm'):\n    sys.modules[m] = None\n"
    for argv in (["--only", "obs-4.3", "--instances", "50", "--format", "json"],
                 ["--trajectory", str(tmp_path), "--format", "json"]):
        code = block + f"import runpy\nsys.argv = ['theory.report', *{argv!r}]\nrunpy.run_module('theory.report', run_name='__main__')\n"
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0 and p.stdout.startswith("{"), p.stderr
