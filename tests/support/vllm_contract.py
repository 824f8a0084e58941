"""Checks against the vLLM contract (tests/contracts/vllm-<version>.json).

Three checkers, each returning a list of problems (empty: the check passes), so that a test can
also prove that each one *fails* on a doctored input:

``surface_differences``   the stand-in (tests/standins/vllm, read with the same ast extractor as the
                          wheel) has exactly the contract's surface.
``runtime_differences``   the stand-in, imported in a subprocess, agrees at runtime: await-ness of
                          every recorded function, and the exception hierarchy (``issubclass``).
``template_differences``  a rendered worker only uses recorded names and awaits exactly the
                          coroutines (see :class:`TemplateChecker` for what it can and cannot follow).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "tests" / "contracts"
STANDINS = ROOT / "tests" / "standins"
GENERATOR = ROOT / "scripts" / "contracts" / "vllm_surface.py"


@cache
def generator() -> ModuleType:
    """scripts/contracts/vllm_surface.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("rpdeploy_vllm_surface", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def load_contract(version: str | None = None) -> dict[str, Any]:
    version = version or generator().pinned_version()
    document: dict[str, Any] = json.loads((CONTRACTS / f"vllm-{version}.json").read_text(encoding="utf-8"))
    return document


def standin_surface(contract: dict[str, Any], root: Path = STANDINS) -> dict[str, Any]:
    """The stand-in's surface, read like the wheel, for the names the contract records."""
    gen = generator()
    surface: dict[str, Any] = gen.build_surface(gen.FolderTree(root), contract["surface"])
    return surface


# --- surface ------------------------------------------------------------------------------


def _default_problem(where: str, want: dict[str, Any] | None, have: dict[str, Any] | None) -> str | None:
    """Literal defaults must be equal; a non-literal upstream default only needs *a* default here."""
    if want is None or have is None:
        if want is None and have is None:
            return None
        return f"{where}: default {'missing' if have is None else 'unexpected'} (contract {want}, stand-in {have})"
    if "value" in want:
        if have.get("value", object()) != want["value"] or type(have.get("value")) is not type(want["value"]):
            return f"{where}: default {have} != contract {want}"
    elif "factory" in want and want["factory"] in ("dict", "list", "set"):
        if have != want:
            return f"{where}: default {have} != contract {want}"
    elif "member" in want and "member" in have and have != want:
        return f"{where}: default {have} != contract {want}"
    return None


def _params_problems(where: str, want: list[dict[str, Any]] | None, have: list[dict[str, Any]] | None) -> list[str]:
    if want is None or have is None:
        return [] if want == have else [f"{where}: parameters {have} != contract {want}"]
    names_want = [(p["name"], p["kind"]) for p in want]
    names_have = [(p["name"], p["kind"]) for p in have]
    if names_want != names_have:
        return [f"{where}: parameters {names_have} != contract {names_want}"]
    problems = []
    for w, h in zip(want, have, strict=True):
        problem = _default_problem(f"{where}({w['name']})", w.get("default"), h.get("default"))
        if problem:
            problems.append(problem)
    return problems


def _mentions(term: Any, described: set[str]) -> bool:
    """Whether a type term names a class the contract describes (only those types matter to a checker)."""
    if isinstance(term, dict):
        return term.get("class") in described or any(_mentions(v, described) for k, v in term.items() if k != "class")
    if isinstance(term, list):
        return any(_mentions(v, described) for v in term)
    return False


def _member_problems(where: str, want: dict[str, Any], have: dict[str, Any] | None, described: set[str]) -> list[str]:
    if have is None:
        return [f"{where}: missing from the stand-in"]
    problems = []
    for key in ("kind", "binding"):
        if want.get(key) != have.get(key):
            problems.append(f"{where}: {key} is {have.get(key)!r} in the stand-in, {want.get(key)!r} in vLLM")
    for key in ("type", "returns_type"):
        if (_mentions(want.get(key), described) or _mentions(have.get(key), described)) and want.get(key) != have.get(
            key
        ):
            problems.append(f"{where}: {key} {have.get(key)} != contract {want.get(key)}")
    if "params" in want or "params" in have:
        problems += _params_problems(where, want.get("params"), have.get("params"))
    return problems


def surface_differences(contract: dict[str, Any], standin: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    described = set(contract["classes"])
    for public, entry in sorted(contract["names"].items()):
        mine = standin["names"].get(public)
        if mine is None:
            problems.append(f"{public}: not importable from the stand-in")
            continue
        if mine["target"] != entry["target"]:
            problems.append(f"{public}: resolves to {mine['target']} in the stand-in, {entry['target']} in vLLM")
            continue
        want, have = contract["classes"][entry["target"]], standin["classes"][mine["target"]]
        label = entry["target"]
        if "fields" in want:
            problems += _fields_problems(label, want["fields"], have.get("fields", []))
        for name, member in sorted(want["members"].items()):
            problems += _member_problems(f"{label}.{name}", member, have["members"].get(name), described)
        allowed = set(want["members"]) | {f["name"] for f in want.get("fields", [])}
        extra = sorted(n for n in have["public_members"] if n not in allowed and not n.startswith("__"))
        if extra:
            problems.append(f"{label}: the stand-in defines {extra}, which the contract does not record")
    want_exc, have_exc = contract["exceptions"], standin["exceptions"]
    for name in sorted(set(want_exc) | set(have_exc)):
        if name not in have_exc:
            problems.append(f"exception {name}: missing from the stand-in")
        elif name not in want_exc:
            problems.append(f"exception {name}: the stand-in has it, vLLM does not")
        else:
            w, h = want_exc[name], have_exc[name]
            for key in ("bases", "mro", "init_defined_in"):
                if w[key] != h[key]:
                    problems.append(f"exception {name}: {key} {h[key]} != contract {w[key]}")
            problems += _params_problems(f"exception {name}.__init__", w["init"], h["init"])
    return problems


def _fields_problems(label: str, want: list[dict[str, Any]], have: list[dict[str, Any]]) -> list[str]:
    want_names, have_names = [f["name"] for f in want], [f["name"] for f in have]
    problems = []
    missing = [n for n in want_names if n not in have_names]
    extra = [n for n in have_names if n not in want_names]
    if missing:
        problems.append(f"{label}: fields missing from the stand-in: {missing}")
    if extra:
        problems.append(f"{label}: fields vLLM does not have: {extra}")
    if not missing and not extra and want_names != have_names:
        problems.append(f"{label}: fields are in another order than vLLM's (positional arguments differ)")
    by_name = {f["name"]: f for f in have}
    for f in want:
        mine = by_name.get(f["name"])
        if mine is None:
            continue
        if f.get("init", True) != mine.get("init", True):
            problems.append(f"{label}.{f['name']}: init={mine.get('init', True)} != contract {f.get('init', True)}")
        problem = _default_problem(f"{label}.{f['name']}", f.get("default"), mine.get("default"))
        if problem:
            problems.append(problem)
    return problems


# --- runtime ------------------------------------------------------------------------------

_RUNTIME_PROBE = r"""
import importlib, inspect, json, sys
contract = json.load(sys.stdin)
problems = []

def find(qualname):
    module, _, name = qualname.rpartition(".")
    return getattr(importlib.import_module(module), name)

for public, entry in sorted(contract["names"].items()):
    try:
        obj = find(public)
    except Exception as exc:
        problems.append(f"{public}: import failed: {exc!r}")
        continue
    if f"{obj.__module__}.{obj.__qualname__}" != entry["target"]:
        problems.append(f"{public} is {obj.__module__}.{obj.__qualname__} at runtime, {entry['target']} in vLLM")
    for name, member in contract["classes"][entry["target"]]["members"].items():
        kind = member["kind"]
        if kind in ("attribute", "field"):
            continue
        raw = inspect.getattr_static(obj, name, None)
        if raw is None:
            problems.append(f"{public}.{name}: missing at runtime")
            continue
        if kind == "property":
            if not isinstance(raw, property) and type(raw).__name__ != "cached_property":
                problems.append(f"{public}.{name}: not a property at runtime")
            continue
        if kind == "class_attribute":
            continue
        func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        got = ("async_generator" if inspect.isasyncgenfunction(func) else "coroutine"
               if inspect.iscoroutinefunction(func) else "generator" if inspect.isgeneratorfunction(func)
               else "function")
        if got != kind:
            problems.append(f"{public}.{name}: {got} at runtime, {kind} in vLLM")

classes = {}
for name in contract["exceptions"]:
    try:
        classes[name] = find(name)
    except Exception as exc:
        problems.append(f"exception {name}: import failed: {exc!r}")
import builtins
for name, cls in classes.items():
    mro = contract["exceptions"][name]["mro"]
    for other_name, other in classes.items():
        if issubclass(cls, other) != (other_name in mro):
            problems.append(f"issubclass({name}, {other_name}) is {issubclass(cls, other)} at runtime")
    for builtin in ("ValueError", "TypeError", "RuntimeError", "Exception"):
        expected = f"builtins.{builtin}" in mro
        if issubclass(cls, getattr(builtins, builtin)) != expected:
            problems.append(f"issubclass({name}, {builtin}) is {not expected} at runtime, {expected} in vLLM")
json.dump(problems, sys.stdout)
"""


def runtime_differences(contract: dict[str, Any], standins: Path = STANDINS) -> list[str]:
    """Import the stand-in in a fresh interpreter and compare what inspect/issubclass see."""
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME_PROBE],
        input=json.dumps(contract),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(standins), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    if result.returncode != 0:
        return [f"the runtime probe failed: {result.stderr.strip()[-2000:]}"]
    problems: list[str] = json.loads(result.stdout)
    return problems


# --- templates ----------------------------------------------------------------------------


@dataclass
class TemplateReport:
    problems: list[str] = field(default_factory=list)
    #: "<class>.<member>" (or the public name) for every use the checker could resolve
    resolved: list[str] = field(default_factory=list)


class TemplateChecker(ast.NodeVisitor):
    """Walks a rendered worker (handler.py / app.py) and checks every use of vLLM against the contract.

    What it follows: names imported from ``vllm`` modules (through the contract's ``names``); the
    types of variables from their annotations (module, function and parameter annotations, return
    annotations of the file's own functions, ``X | None``), from assignments of a call to a
    contract class or of a contract method with a recorded return type, from ``async for x in
    <async iterator>``, and through attributes and ``[i]`` of fields whose type the contract
    records (``final.outputs[0].text``). For each resolved use it checks that the member exists,
    that keyword arguments are parameters, that a coroutine is awaited, that an async generator is
    iterated with ``async for`` (or handed on) and never awaited, and that a plain function,
    property or attribute is not awaited.

    What it cannot follow (unchecked, not reported): values whose type is not declared and cannot
    be inferred as above (``Any``, results of non-contract calls, dict values such as the
    renderer's ``engine_input["prompt_token_ids"]``), attributes reached through ``getattr`` with a
    string, ``**kwargs`` splats (their keys are data), and flow: a variable has one type for the
    whole function. The ``resolved`` list shows what was checked, so a test can demand that the
    important calls were seen.
    """

    def __init__(self, contract: dict[str, Any], filename: str) -> None:
        self.contract = contract
        self.filename = filename
        self.report = TemplateReport()
        self.imports: dict[str, str] = {}  # local name -> public contract name (or "module:vllm.x")
        self.module_types: dict[str, Any] = {}
        self.function_returns: dict[str, Any] = {}
        self.scopes: list[dict[str, Any]] = []
        self.parents: dict[int, ast.AST] = {}

    # entry point

    def check(self, source: str) -> TemplateReport:
        tree = ast.parse(source, filename=self.filename)
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[id(child)] = parent
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.split(".")[0] == "vllm":
                for alias in stmt.names:
                    self._import(stmt.module, alias.name, alias.asname or alias.name, stmt)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.name.split(".")[0] == "vllm":
                        self._problem(stmt, f"`import {alias.name}`: import names from vllm modules instead")
        for stmt in tree.body:  # declarations first, so uses above a definition resolve
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.returns is not None:
                self.function_returns[stmt.name] = self._annotation(stmt.returns)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                self.module_types[stmt.target.id] = self._annotation(stmt.annotation)
        self.scopes = [self.module_types]
        self.visit(tree)
        return self.report

    def _import(self, module: str, name: str, local: str, node: ast.AST) -> None:
        public = f"{module}.{name}"
        names = self.contract["names"]
        if public in names:
            self.imports[local] = public
            self.report.resolved.append(public)
            return
        target = next((p for p, e in names.items() if e["target"] == public), None)
        if target is not None:
            self.imports[local] = target
            self.report.resolved.append(public)
            return
        if public in self.contract["exceptions"]:
            self.imports[local] = f"exception:{public}"
            self.report.resolved.append(public)
            return
        self._problem(node, f"`from {module} import {name}`: {public} is not in the contract")

    def _problem(self, node: ast.AST, message: str) -> None:
        self.report.problems.append(f"{self.filename}:{getattr(node, 'lineno', '?')}: {message}")

    # types: {"class": qualname} | {"list": t} | {"async_iterator": t} | {"public": name} (the class itself)

    def _class_type(self, public: str) -> dict[str, Any]:
        return {"class": self.contract["names"][public]["target"]}

    def _annotation(self, node: ast.expr | None) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            options = [t for t in (self._annotation(node.left), self._annotation(node.right)) if t is not None]
            return options[0] if len(options) == 1 else None
        if isinstance(node, ast.Name) and self.imports.get(node.id, "").startswith("vllm."):
            return self._class_type(self.imports[node.id])
        if isinstance(node, ast.Subscript):
            outer = getattr(node.value, "id", getattr(node.value, "attr", ""))
            inner = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) else node.slice
            if outer in ("list", "Sequence"):
                item = self._annotation(inner)
                return {"list": item} if item else None
            if outer in ("AsyncIterator", "AsyncGenerator", "AsyncIterable"):
                item = self._annotation(inner)
                return {"async_iterator": item} if item else None
        return None

    def _lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.imports and self.imports[name].startswith("vllm."):
            return {"public": self.imports[name]}
        return None

    def _member(self, cls_type: Any, name: str, node: ast.AST) -> dict[str, Any] | None:
        qualname = cls_type["class"]
        doc = self.contract["classes"].get(qualname)
        if doc is None:
            return None  # a class the contract names as a type but does not describe
        member = doc["members"].get(name)
        if member is None:
            fields = {f["name"]: f for f in doc.get("fields", [])}
            if name in fields:
                self.report.resolved.append(f"{qualname}.{name}")
                return {"kind": "field", **fields[name]}
            self._problem(node, f"{qualname.rsplit('.', 1)[-1]}.{name} is not in the contract")
            return None
        self.report.resolved.append(f"{qualname}.{name}")
        return dict(member)

    def type_of(self, node: ast.expr) -> Any:
        """The type of an expression, or None when it cannot be told (then nothing is checked)."""
        if isinstance(node, ast.Name):
            return self._lookup(node.id)
        if isinstance(node, ast.Await):
            return self.type_of(node.value)
        if isinstance(node, ast.Attribute):
            owner = self.type_of(node.value)
            if owner is None or "class" not in owner:
                return None
            member = self._member(owner, node.attr, node)
            if member is None:
                return None
            return member.get("type") or ({"callable": member} if "params" in member else None)
        if isinstance(node, ast.Subscript):
            owner = self.type_of(node.value)
            if owner and "list" in owner:
                return owner["list"]
            return None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id in self.imports and self.imports[func.id].startswith("vllm."):
                    return self._class_type(self.imports[func.id])
                return self.function_returns.get(func.id)
            if isinstance(func, ast.Attribute):
                owner = self.type_of(func.value)
                if owner is None:
                    return None
                if "public" in owner:  # Class.classmethod(...)
                    owner = self._class_type(owner["public"])
                if "class" not in owner:
                    return None
                member = self.contract["classes"].get(owner["class"], {}).get("members", {}).get(func.attr)
                return member.get("returns_type") if member else None
        return None

    # scopes

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope: dict[str, Any] = {}
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.annotation is not None:
                scope[arg.arg] = self._annotation(arg.annotation)
        for stmt in ast.walk(node):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                scope[stmt.target.id] = self._annotation(stmt.annotation)
        self.scopes.append(scope)
        self._infer_assignments(node, scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def _infer_assignments(self, node: ast.AST, scope: dict[str, Any]) -> None:
        # Two passes, so `final = output` after `async for output in ...` resolves.
        for _ in range(2):
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    found = self.type_of(stmt.value)
                    if found is not None and stmt.targets[0].id not in scope:
                        scope[stmt.targets[0].id] = found
                elif isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Tuple):
                    continue
                elif isinstance(stmt, ast.AsyncFor) and isinstance(stmt.target, ast.Name):
                    iterated = self.type_of(stmt.iter)
                    if iterated and "async_iterator" in iterated:
                        scope.setdefault(stmt.target.id, iterated["async_iterator"])

    # uses

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = self.type_of(node.value)
        if owner is not None and "public" in owner:
            owner = self._class_type(owner["public"])
        if owner is not None and "class" in owner:
            member = self._member(owner, node.attr, node)
            if member is not None:
                self._check_use(node, member, owner)
        self.generic_visit(node)

    def _check_use(self, node: ast.Attribute, member: dict[str, Any], owner: Any) -> None:
        parent = self.parents.get(id(node))
        called = isinstance(parent, ast.Call) and parent.func is node
        use = self.parents.get(id(parent)) if called else parent
        awaited = isinstance(use, ast.Await)
        label = f"{owner['class'].rsplit('.', 1)[-1]}.{node.attr}"
        kind = member["kind"]
        if not called:
            if awaited:
                self._problem(node, f"{label} is a {kind}: it cannot be awaited")
            if kind in ("coroutine", "async_generator", "function", "generator") and isinstance(node.ctx, ast.Load):
                return  # a bound method handed on, e.g. as a callback
            return
        assert isinstance(parent, ast.Call)
        if kind == "coroutine" and not awaited:
            self._problem(node, f"{label}() is a coroutine: await it")
        elif kind == "async_generator":
            if awaited:
                self._problem(node, f"{label}() is an async generator: iterate it with `async for`, do not await it")
        elif kind in ("function", "generator") and awaited:
            self._problem(node, f"{label}() is a plain function in vLLM {self.contract['version']}: do not await it")
        elif kind in ("property", "attribute", "field", "class_attribute") and "class" not in (
            member.get("type") or {}
        ):
            self._problem(node, f"{label} is a {kind}, not a method: it cannot be called")
        if "params" in member:
            self._check_arguments(parent, label, member["params"])

    def _check_arguments(self, call: ast.Call, label: str, params: list[dict[str, Any]]) -> None:
        names = {p["name"] for p in params if p["kind"] in ("positional_or_keyword", "keyword_only")}
        open_keywords = any(p["kind"] == "var_keyword" for p in params)
        positional = [p for p in params if p["kind"] in ("positional_only", "positional_or_keyword")]
        open_positional = any(p["kind"] == "var_positional" for p in params)
        if (
            not open_positional
            and not any(isinstance(a, ast.Starred) for a in call.args)
            and len(call.args) > len(positional)
        ):
            self._problem(call, f"{label}() takes at most {len(positional)} positional arguments, got {len(call.args)}")
        for keyword in call.keywords:
            if keyword.arg is not None and keyword.arg not in names and not open_keywords:
                self._problem(call, f"{label}() has no parameter {keyword.arg!r}")

    def visit_Call(self, node: ast.Call) -> None:
        # Constructors of contract classes: keywords must be fields / __init__ parameters.
        if isinstance(node.func, ast.Name) and self.imports.get(node.func.id, "").startswith("vllm."):
            public = self.imports[node.func.id]
            doc = self.contract["classes"][self.contract["names"][public]["target"]]
            init = doc["members"].get("__init__")
            if init is not None:
                self._check_arguments(node, public, init["params"])
            elif "fields" in doc:
                params = [
                    {"name": f["name"], "kind": "positional_or_keyword"} for f in doc["fields"] if f.get("init", True)
                ]
                self._check_arguments(node, public, params)
            self.report.resolved.append(f"{public}()")
            if isinstance(self.parents.get(id(node)), ast.Await):
                self._problem(node, f"{public}() builds an object: it cannot be awaited")
        self.generic_visit(node)


def template_differences(contract: dict[str, Any], source: str, filename: str) -> TemplateReport:
    return TemplateChecker(contract, filename).check(source)
