"""The part of vLLM's API our workers rely on, read from the pinned wheel: tests/contracts/vllm-<version>.json.

    python scripts/contracts/vllm_surface.py            # (re)write the contract
    python scripts/contracts/vllm_surface.py --check    # regenerate in memory, exit 1 on any difference
    python scripts/contracts/vllm_surface.py --wheel PATH   # use this wheel instead of downloading

The version is the tag of ``VLLM_BASE_IMAGE`` in rpdeploy/versions.py (the image methods 2 and 3
build on). The wheel ``vllm==<version>`` is fetched from PyPI with ``pip download --no-deps`` into
``$RPDEPLOY_CONTRACTS_CACHE`` (default ``~/.cache/rpdeploy-contracts``), never into the repository,
and read as a zip: every fact comes from ``ast`` over its sources. vLLM is never imported (that
would need torch and a GPU).

What is recorded: for each name in SURFACE below, where it really lives (public re-exports are
followed through ``from x import y``, module-level aliases such as ``AsyncLLMEngine = AsyncLLM``
and the lazy ``MODULE_ATTRS`` + ``__getattr__`` map of ``vllm/__init__.py``), its bases and
method resolution order, and its members: functions and methods with their kind (sync function,
coroutine, async generator, property, classmethod...) and parameters (name, kind, default when
it is a literal or resolves to one), fields (dataclass / msgspec / pydantic / TypedDict
annotations, in order, with defaults), attributes set in ``__init__``, and the types of
attributes and return values where they name a class of the tree (so a checker can follow
``engine.model_config.get_diff_sampling_param()``). Every exception class of EXCEPTION_MODULES
is recorded with its whole hierarchy. Names starting with ``_`` are not part of the contract.

The same extractor reads the stand-in (tests/standins/vllm) as a source tree, so the tests can
compare the two surfaces with one notion of "the same". Limits: types are what the annotations
say (no inference beyond ``self.x = param.attr`` and ``self.x = f()``), decorators other than
property/cached_property/classmethod/staticmethod/abstractmethod are ignored, conditional
definitions are read in both branches except ``if TYPE_CHECKING:`` bodies (not run at runtime).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "tests" / "contracts"
VERSIONS = ROOT / "rpdeploy" / "versions.py"
FORMAT = 1

#: Public names the workers (templates/worker/**) and the stand-in (tests/standins/vllm) use, and
#: which members of each the contract records. ``fields`` records every field (the whole set is
#: the contract: a stand-in must accept exactly what vLLM accepts); ``members`` lists methods,
#: properties and attributes by name. The tests fail when a template or the stand-in uses a
#: member of these classes that is not listed here: add it and regenerate.
SURFACE: dict[str, dict[str, Any]] = {
    "vllm.AsyncEngineArgs": {"fields": True, "members": []},
    "vllm.AsyncLLMEngine": {
        "fields": False,
        "members": [
            "abort",
            "check_health",
            "dead_error",
            "errored",
            "from_engine_args",
            "generate",
            "get_tokenizer",
            "is_running",
            "model_config",
            "renderer",
            "shutdown",
        ],
    },
    "vllm.SamplingParams": {"fields": True, "members": ["from_optional"]},
    "vllm.RequestOutput": {
        "fields": False,
        "members": [
            "__init__",
            "ec_transfer_params",
            "encoder_prompt",
            "encoder_prompt_token_ids",
            "finished",
            "kv_transfer_params",
            "lora_request",
            "metrics",
            "num_cache_creation_tokens",
            "num_cached_tokens",
            "outputs",
            "prompt",
            "prompt_logprobs",
            "prompt_token_ids",
            "request_id",
        ],
    },
    "vllm.CompletionOutput": {"fields": True, "members": ["finished"]},
    "vllm.sampling_params.RequestOutputKind": {"fields": False, "members": ["CUMULATIVE", "DELTA", "FINAL_ONLY"]},
    "vllm.config.ModelConfig": {
        "fields": False,
        "members": [
            "generation_config",
            "get_diff_sampling_param",
            "max_model_len",
            "model",
            "override_generation_config",
            "revision",
            "served_model_name",
        ],
    },
    "vllm.renderers.BaseRenderer": {
        "fields": False,
        "members": ["get_tokenizer", "render_chat_async", "render_cmpl_async", "tokenizer"],
    },
    "vllm.renderers.ChatParams": {"fields": True, "members": []},
    "vllm.renderers.TokenizeParams": {"fields": True, "members": ["max_input_tokens"]},
    "vllm.inputs.engine.TokensInput": {"fields": True, "members": []},
    "vllm.tokenizers.TokenizerLike": {
        "fields": False,
        "members": ["apply_chat_template", "bos_token_id", "decode", "encode", "eos_token_id", "max_chars_per_token"],
    },
}

#: Modules whose every exception class is part of the contract.
EXCEPTION_MODULES = ("vllm.exceptions", "vllm.v1.engine.exceptions")

#: Builtin classes a base may name (exceptions, object): their MRO comes from this interpreter.
_BUILTIN_MRO = {
    name: [c.__name__ for c in value.__mro__]
    for name, value in vars(builtins).items()
    if isinstance(value, type) and (issubclass(value, BaseException) or value is object)
}


# --- source trees ---------------------------------------------------------------------------


class SourceTree:
    """Python sources by module name, from a wheel (zip) or a folder."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._cache: dict[str, Module | None] = {}

    def read(self, path: str) -> str | None:
        raise NotImplementedError

    def module(self, name: str) -> Module | None:
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def _load(self, name: str) -> Module | None:
        base = name.replace(".", "/")
        for path, package in ((f"{base}.py", False), (f"{base}/__init__.py", True)):
            text = self.read(path)
            if text is not None:
                return Module(name, path, ast.parse(text, filename=path), package)
        return None


class WheelTree(SourceTree):
    def __init__(self, wheel: Path) -> None:
        super().__init__(wheel.name)
        self._zip = zipfile.ZipFile(wheel)
        self._names = set(self._zip.namelist())

    def read(self, path: str) -> str | None:
        return self._zip.read(path).decode("utf-8") if path in self._names else None


class FolderTree(SourceTree):
    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def read(self, path: str) -> str | None:
        file = self.root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None


@dataclass
class Module:
    name: str
    path: str
    tree: ast.Module
    package: bool

    def absolute(self, module: str | None, level: int) -> str:
        """The absolute name of ``from <level dots><module> import ...`` in this module."""
        if level == 0:
            return module or ""
        parts = self.name.split(".")
        if not self.package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
        return ".".join([*parts, module] if module else parts)

    def runtime_body(self) -> Iterator[ast.stmt]:
        """Module-level statements that run at import (``if TYPE_CHECKING:`` bodies do not)."""
        yield from _runtime_statements(self.tree.body)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        if isinstance(stmt, ast.If):
            if not _is_type_checking(stmt.test):
                yield from _runtime_statements(stmt.body)
            yield from _runtime_statements(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _runtime_statements(stmt.body)
            for handler in stmt.handlers:
                yield from _runtime_statements(handler.body)
        else:
            yield stmt


# --- name resolution ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a name really lives: a class or function definition, or a module."""

    kind: str  # "class" | "function" | "module" | "builtin"
    qualname: str  # module.Name (or builtins.Name)
    module: Module | None = None
    node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | None = None
    via: tuple[str, ...] = ()  # the re-exports followed, in order


class Resolver:
    def __init__(self, tree: SourceTree) -> None:
        self.tree = tree

    def resolve_dotted(self, dotted: str) -> Target | None:
        """``vllm.AsyncLLMEngine`` -> the class it names, following re-exports."""
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = self.tree.module(".".join(parts[:cut]))
            if module is None:
                continue
            target: Target | None = Target("module", module.name, module)
            for attr in parts[cut:]:
                if target is None or target.kind != "module" or target.module is None:
                    return None
                target = self.resolve_name(target.module, attr, ())
            return target
        return None

    def resolve_name(self, module: Module, name: str, seen: tuple[str, ...]) -> Target | None:
        key = f"{module.name}.{name}"
        if key in seen:
            return None
        seen = (*seen, key)
        for stmt in module.runtime_body():
            if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                kind = "class" if isinstance(stmt, ast.ClassDef) else "function"
                return Target(kind, key, module, stmt, via=seen[:-1])
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                found = self.resolve_expr(module, stmt.value, seen)
                if found is not None:
                    return found
            if isinstance(stmt, ast.ImportFrom):
                source = module.absolute(stmt.module, stmt.level)
                for alias in stmt.names:
                    if (alias.asname or alias.name) == name:
                        return self._from_module(source, alias.name, seen)
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname == name:
                        found_module = self.tree.module(alias.name)
                        if found_module is not None:
                            return Target("module", found_module.name, found_module, via=seen)
        submodule = self.tree.module(key) if module.package else None
        if submodule is not None:
            return Target("module", submodule.name, submodule, via=seen[:-1])
        lazy = _lazy_attrs(module).get(name)
        if lazy is not None:
            source, _, attr = lazy.partition(":")
            return self._from_module(
                module.absolute(source.lstrip("."), len(source) - len(source.lstrip("."))), attr, seen
            )
        if name in _BUILTIN_MRO:
            return Target("builtin", f"builtins.{name}")
        return None

    def constant(self, module: Module, name: str, depth: int = 0) -> tuple[Module, ast.expr] | None:
        """The value expression of a module-level ``NAME = ...`` (following ``from x import NAME``)."""
        if depth > 5:
            return None
        for stmt in module.runtime_body():
            if (
                isinstance(stmt, (ast.Assign, ast.AnnAssign))
                and stmt.value is not None
                and any(isinstance(t, ast.Name) and t.id == name for t in _assign_targets(stmt))
            ):
                return module, stmt.value
            if isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    if (alias.asname or alias.name) == name:
                        source = self.tree.module(module.absolute(stmt.module, stmt.level))
                        return self.constant(source, alias.name, depth + 1) if source else None
        return None

    def _from_module(self, source: str, name: str, seen: tuple[str, ...]) -> Target | None:
        target_module = self.tree.module(source)
        if target_module is None:
            submodule = self.tree.module(f"{source}.{name}")
            return Target("module", submodule.name, submodule, via=seen) if submodule else None
        return self.resolve_name(target_module, name, seen)

    def resolve_expr(self, module: Module, expr: ast.expr, seen: tuple[str, ...] = ()) -> Target | None:
        if isinstance(expr, ast.Name):
            return self.resolve_name(module, expr.id, seen)
        if isinstance(expr, ast.Attribute):
            base = self.resolve_expr(module, expr.value, seen)
            if base is not None and base.kind == "module" and base.module is not None:
                return self.resolve_name(base.module, expr.attr, seen)
        return None


def _lazy_attrs(module: Module) -> dict[str, str]:
    """A ``NAME -> ".mod:attr"`` dict that a module-level ``__getattr__`` reads (vllm/__init__.py)."""
    getattr_fn = next(
        (s for s in module.runtime_body() if isinstance(s, ast.FunctionDef) and s.name == "__getattr__"), None
    )
    if getattr_fn is None:
        return {}
    used = {n.id for n in ast.walk(getattr_fn) if isinstance(n, ast.Name)}
    for stmt in module.runtime_body():
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id in used
            and isinstance(stmt.value, ast.Dict)
        ):
            try:
                value = ast.literal_eval(stmt.value)
            except ValueError:
                continue
            if all(isinstance(k, str) and isinstance(v, str) and ":" in v for k, v in value.items()):
                return dict(value)
    return {}


# --- members --------------------------------------------------------------------------------


_SPECIAL_DECORATORS = {"property", "cached_property", "classmethod", "staticmethod"}


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[str]:
    names = []
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Attribute):
            names.append(target.attr)
    return names


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function body, not descending into nested functions, lambdas or classes."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield child
        yield from _own_nodes(child)


def function_kind(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """sync function, coroutine function, async generator or (sync) generator."""
    yields = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(node))
    if isinstance(node, ast.AsyncFunctionDef):
        return "async_generator" if yields else "coroutine"
    return "generator" if yields else "function"


_PARAM_KINDS = ("positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword")


class Defaults:
    """Turns a default expression into JSON: a literal, a factory, or (failing that) its source text."""

    def __init__(self, resolver: Resolver, classes: ClassReader) -> None:
        self.resolver = resolver
        self.classes = classes

    def of(self, module: Module, expr: ast.expr, depth: int = 0) -> dict[str, Any]:
        try:
            return {"value": ast.literal_eval(expr)}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        if depth > 4:
            return {"expr": ast.unparse(expr)}
        if isinstance(expr, ast.Call):
            name = _call_name(expr)
            keywords = {k.arg: k.value for k in expr.keywords if k.arg}
            # dataclasses.field / msgspec.field / pydantic.Field(default=..., default_factory=...)
            if name in ("field", "Field"):
                if "default" in keywords:
                    return self.of(module, keywords["default"], depth + 1)
                if expr.args and name == "Field":
                    return self.of(module, expr.args[0], depth + 1)
                if "default_factory" in keywords:
                    return {"factory": ast.unparse(keywords["default_factory"])}
            # vllm.config.utils.get_field(Cls, "name"): the default of Cls.name
            if name == "get_field" and len(expr.args) == 2 and isinstance(expr.args[1], ast.Constant):
                owner = self.resolver.resolve_expr(module, expr.args[0])
                if owner is not None and owner.kind == "class":
                    found = self.classes.field_default(owner, str(expr.args[1].value), depth + 1)
                    if found is not None:
                        return found
        # ModelConfig.model: another class's field default; RequestOutputKind.CUMULATIVE: an enum member
        if isinstance(expr, ast.Attribute):
            owner = self.resolver.resolve_expr(module, expr.value)
            if owner is not None and owner.kind == "class":
                found = self.classes.field_default(owner, expr.attr, depth + 1)
                if found is not None:
                    return found
                if self.classes.class_attribute(owner, expr.attr) is not None:
                    return {"member": f"{owner.qualname}.{expr.attr}"}
        # DEFAULT_SAFETENSORS_PREFETCH_NUM_THREADS: a module-level constant (possibly imported)
        if isinstance(expr, ast.Name):
            constant = self.resolver.constant(module, expr.id)
            if constant is not None:
                return self.of(constant[0], constant[1], depth + 1)
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub):
            inner = self.of(module, expr.operand, depth + 1)
            if _is_number(inner.get("value")):
                return {"value": -inner["value"]}
        # 16 * 1024 * 1024: arithmetic on number literals
        if isinstance(expr, ast.BinOp) and type(expr.op) in _ARITHMETIC:
            left, right = self.of(module, expr.left, depth + 1), self.of(module, expr.right, depth + 1)
            if _is_number(left.get("value")) and _is_number(right.get("value")):
                return {"value": _ARITHMETIC[type(expr.op)](left["value"], right["value"])}
        return {"expr": ast.unparse(expr)}


_ARITHMETIC: dict[type[ast.operator], Any] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _call_name(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return ""


def _annotation_text(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(node)


class ClassReader:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.defaults = Defaults(resolver, self)

    # hierarchy

    def bases(self, target: Target) -> list[Target]:
        assert isinstance(target.node, ast.ClassDef) and target.module is not None
        out = []
        for base in target.node.bases:
            if isinstance(base, ast.Subscript):  # Generic[_T], BaseRenderer[HfTokenizer]
                base = base.value
            found = self.resolver.resolve_expr(target.module, base)
            if found is None:
                text = ast.unparse(base)
                out.append(Target("unresolved", text))
            else:
                out.append(found)
        return out

    def mro(self, target: Target) -> list[str]:
        """C3 linearization over the tree (unresolved bases kept as leaves)."""
        if target.kind == "builtin":
            return [f"builtins.{n}" for n in _BUILTIN_MRO[target.qualname.split(".", 1)[1]]]
        if target.kind != "class":
            # A class from outside the tree (msgspec.Struct, ABC, Generic): its own MRO is unknown
            # here; it sits before object.
            return [target.qualname, "builtins.object"]
        seqs = [self.mro(b) for b in self.bases(target)]
        bases = [b.qualname for b in self.bases(target)]
        result = [target.qualname]
        pending = [list(s) for s in seqs if s] + ([bases] if bases else [])
        while pending:
            for seq in pending:
                head = seq[0]
                if not any(head in s[1:] for s in pending):
                    break
            else:
                raise ValueError(f"inconsistent MRO for {target.qualname}")
            result.append(head)
            pending = [[c for c in s if c != head] for s in pending]
            pending = [s for s in pending if s]
        if result[-1] != "builtins.object":
            result.append("builtins.object")
        return result

    def lineage(self, target: Target) -> list[Target]:
        """The classes of the MRO that are in the tree, in MRO order."""
        out: list[Target] = []
        seen: set[str] = set()
        for qualname in self.mro(target):
            if qualname in seen or qualname.startswith("builtins."):
                continue
            seen.add(qualname)
            found = self.resolver.resolve_dotted(qualname)
            if found is not None and found.kind == "class":
                out.append(found)
        return out

    # fields

    def own_fields(self, target: Target) -> list[tuple[str, ast.AnnAssign]]:
        assert isinstance(target.node, ast.ClassDef)
        out = []
        for stmt in target.node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if "ClassVar" in ast.unparse(stmt.annotation):
                    continue
                out.append((stmt.target.id, stmt))
        return out

    def fields(self, target: Target) -> list[dict[str, Any]]:
        """Fields in definition order, base classes first (dataclass/msgspec/TypedDict inheritance)."""
        ordered: dict[str, dict[str, Any]] = {}
        for cls in reversed(self.lineage(target)):
            assert cls.module is not None
            for name, stmt in self.own_fields(cls):
                if name.startswith("_"):
                    continue
                entry: dict[str, Any] = {"name": name, "annotation": _annotation_text(stmt.annotation)}
                if stmt.value is not None:
                    if isinstance(stmt.value, ast.Call) and _call_name(stmt.value) in ("field", "Field"):
                        init = next((k.value for k in stmt.value.keywords if k.arg == "init"), None)
                        if isinstance(init, ast.Constant) and init.value is False:
                            entry["init"] = False
                    entry["default"] = self.defaults.of(cls.module, stmt.value)
                ordered.pop(name, None)
                ordered[name] = entry
        return list(ordered.values())

    def field_default(self, target: Target, name: str, depth: int) -> dict[str, Any] | None:
        for cls in self.lineage(target):
            assert cls.module is not None
            for field_name, stmt in self.own_fields(cls):
                if field_name == name and stmt.value is not None:
                    return self.defaults.of(cls.module, stmt.value, depth)
        return None

    def class_attribute(self, target: Target, name: str) -> ast.expr | None:
        assert isinstance(target.node, ast.ClassDef)
        for stmt in target.node.body:
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                return stmt.value
        return None

    # members

    def member(self, target: Target, name: str) -> dict[str, Any] | None:
        """The first definition of ``name`` along the MRO: method, property, field, attribute or enum value."""
        for cls in self.lineage(target):
            assert isinstance(cls.node, ast.ClassDef) and cls.module is not None
            for stmt in cls.node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                    return self.describe_function(cls, stmt, method=True)
            for field_name, stmt in self.own_fields(cls):
                if field_name == name:
                    return {
                        "kind": "field",
                        "defined_in": cls.qualname,
                        "annotation": _annotation_text(stmt.annotation),
                        **self._type_of(cls, stmt.annotation),
                    }
            for stmt in cls.node.body:
                if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                    return {
                        "kind": "class_attribute",
                        "defined_in": cls.qualname,
                        "value": self.defaults.of(cls.module, stmt.value),
                    }
            assigned = self._init_assignment(cls, name)
            if assigned is not None:
                entry = {"kind": "attribute", "defined_in": cls.qualname}
                entry.update(self._attribute_type(target, cls, name, assigned))
                return entry
        return None

    def public_members(self, target: Target) -> list[str]:
        """Every public name the class defines itself (not inherited): used to find extra stand-in surface."""
        assert isinstance(target.node, ast.ClassDef)
        names: set[str] = set()
        for stmt in target.node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(stmt.name)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                names.add(stmt.target.id)
            elif isinstance(stmt, ast.Assign):
                names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        init = next((s for s in target.node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        if init is not None:
            for node in ast.walk(init):
                for tgt in _assign_targets(node):
                    if isinstance(tgt, ast.Attribute) and isinstance(tgt.value, ast.Name) and tgt.value.id == "self":
                        names.add(tgt.attr)
        return sorted(n for n in names if not n.startswith("_") or n == "__init__")

    def _init_assignment(self, cls: Target, name: str) -> ast.expr | None:
        assert isinstance(cls.node, ast.ClassDef)
        init = next((s for s in cls.node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        if init is None:
            return None
        for node in ast.walk(init):
            for tgt in _assign_targets(node):
                if (
                    isinstance(tgt, ast.Attribute)
                    and isinstance(tgt.value, ast.Name)
                    and tgt.value.id == "self"
                    and tgt.attr == name
                ):
                    value = getattr(node, "value", None)
                    return value if isinstance(value, ast.expr) else ast.Constant(None)
        return None

    def _attribute_type(self, target: Target, cls: Target, name: str, value: ast.expr) -> dict[str, Any]:
        # 1. a class-level annotation somewhere in the MRO (EngineClient.model_config: ModelConfig)
        for owner in self.lineage(target):
            for field_name, stmt in self.own_fields(owner):
                if field_name == name:
                    return {"annotation": _annotation_text(stmt.annotation), **self._type_of(owner, stmt.annotation)}
        assert cls.module is not None and isinstance(cls.node, ast.ClassDef)
        # 2. self.x = f(...): f's return annotation
        if isinstance(value, ast.Call):
            func = self.resolver.resolve_expr(cls.module, value.func)
            if (
                func is not None
                and func.kind == "function"
                and isinstance(func.node, (ast.FunctionDef, ast.AsyncFunctionDef))
            ):
                assert func.module is not None
                return {"annotation": _annotation_text(func.node.returns), **self._type_of(func, func.node.returns)}
        # 3. self.x = param: the parameter's annotation in __init__
        init = next(s for s in cls.node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__")
        if isinstance(value, ast.Name):
            for arg in [*init.args.args, *init.args.kwonlyargs]:
                if arg.arg == value.id and arg.annotation is not None:
                    return {"annotation": _annotation_text(arg.annotation), **self._type_of(cls, arg.annotation)}
        return {}

    def _type_of(self, owner: Target, annotation: ast.expr | None) -> dict[str, Any]:
        """``{"type": ...}`` for an annotation naming classes of the tree; ``{}`` otherwise."""
        if annotation is None or owner.module is None:
            return {}
        resolved = TypeReader(self.resolver, owner.module).read(annotation)
        return {"type": resolved} if resolved is not None else {}

    def describe_function(
        self, owner: Target, node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool
    ) -> dict[str, Any]:
        assert owner.module is not None
        decorators = _decorator_names(node)
        binding = next((d for d in decorators if d in _SPECIAL_DECORATORS), "method" if method else "function")
        if binding == "cached_property":
            binding = "property"
        entry: dict[str, Any] = {
            "kind": "property" if binding == "property" else function_kind(node),
            "defined_in": owner.qualname,
        }
        if method and binding != "property":
            entry["binding"] = binding
        if binding != "property":
            entry["params"] = self.params(
                owner.module, node, drop_first=method and binding in ("method", "classmethod")
            )
        entry["returns"] = _annotation_text(node.returns)
        entry.update({f"returns_{k}": v for k, v in self._type_of(owner, node.returns).items()})
        return entry

    def params(
        self, module: Module, node: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool
    ) -> list[dict[str, Any]]:
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        out: list[dict[str, Any]] = []
        for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
            kind = "positional_only" if index < len(args.posonlyargs) else "positional_or_keyword"
            out.append(self._param(module, arg, kind, default))
        if args.vararg is not None:
            out.append(self._param(module, args.vararg, "var_positional", None))
        for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            out.append(self._param(module, arg, "keyword_only", kw_default))
        if args.kwarg is not None:
            out.append(self._param(module, args.kwarg, "var_keyword", None))
        return out[1:] if drop_first and out and out[0]["kind"] in ("positional_only", "positional_or_keyword") else out

    def _param(self, module: Module, arg: ast.arg, kind: str, default: ast.expr | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": arg.arg, "kind": kind}
        if default is not None:
            entry["default"] = self.defaults.of(module, default)
        return entry


def _assign_targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target]
    return []


class TypeReader:
    """An annotation as a small type term: {"class": q} | {"list": t} | {"async_iterator": t} | {"tuple": [...]}."""

    _ITERATORS: ClassVar[set[str]] = {"AsyncGenerator", "AsyncIterator", "AsyncIterable"}
    _LISTS: ClassVar[set[str]] = {"list", "List", "Sequence", "GenericSequence"}

    def __init__(self, resolver: Resolver, module: Module) -> None:
        self.resolver = resolver
        self.module = module

    def read(self, node: ast.expr) -> dict[str, Any] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
            options = [t for t in (self.read(node.left), self.read(node.right)) if t is not None]
            return options[0] if len(options) == 1 else None
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.Subscript):
            outer = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if outer in self._ITERATORS and args:
                inner = self.read(args[0])
                return {"async_iterator": inner} if inner is not None else None
            if outer in self._LISTS and args:
                inner = self.read(args[0])
                return {"list": inner} if inner is not None else None
            if outer == "tuple":
                items = [self.read(a) for a in args]
                return {"tuple": items} if all(i is not None for i in items) else None
            if outer in ("Optional",) and args:
                return self.read(args[0])
            return None
        if isinstance(node, (ast.Name, ast.Attribute)):
            target = self.resolver.resolve_expr(self.module, node)
            if target is not None and target.kind == "class":
                return {"class": target.qualname}
        return None


# --- the document ---------------------------------------------------------------------------


def build_surface(tree: SourceTree, surface: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The contract document for ``tree`` (the wheel or the stand-in), without provenance."""
    surface = SURFACE if surface is None else surface
    resolver = Resolver(tree)
    classes = ClassReader(resolver)
    names: dict[str, Any] = {}
    class_docs: dict[str, Any] = {}
    problems: list[str] = []

    def add_class(target: Target) -> dict[str, Any]:
        if target.qualname not in class_docs:
            assert target.module is not None and isinstance(target.node, ast.ClassDef)
            class_docs[target.qualname] = {
                "module": target.module.name,
                "file": target.module.path,
                "bases": [b.qualname for b in classes.bases(target)],
                "mro": classes.mro(target),
                "decorators": sorted(set(_decorator_names(target.node))),
                "members": {},
                "public_members": classes.public_members(target),
            }
        doc: dict[str, Any] = class_docs[target.qualname]
        return doc

    for public, spec in sorted(surface.items()):
        target = resolver.resolve_dotted(public)
        if target is None or target.kind != "class":
            problems.append(f"{public}: not found as a class in {tree.label}")
            continue
        names[public] = {"target": target.qualname, "via": list(target.via)}
        doc = add_class(target)
        if spec.get("fields"):
            doc["fields"] = classes.fields(target)
        for member in spec.get("members", []):
            found = classes.member(target, member)
            if found is None:
                problems.append(f"{public}.{member}: no such member in {tree.label}")
                continue
            doc["members"][member] = found

    exceptions: dict[str, Any] = {}
    for module_name in EXCEPTION_MODULES:
        module = tree.module(module_name)
        if module is None:
            problems.append(f"{module_name}: module missing from {tree.label}")
            continue
        for stmt in module.runtime_body():
            if not isinstance(stmt, ast.ClassDef) or stmt.name.startswith("_"):
                continue
            target = Target("class", f"{module_name}.{stmt.name}", module, stmt)
            mro = classes.mro(target)
            if "builtins.BaseException" not in mro:
                continue
            init = classes.member(target, "__init__")
            exceptions[target.qualname] = {
                "module": module_name,
                "file": module.path,
                "bases": [b.qualname for b in classes.bases(target)],
                "mro": mro,
                "init": init["params"] if init and "params" in init else None,
                "init_defined_in": init["defined_in"] if init else "builtins.BaseException",
            }
    if problems:
        raise SurfaceError(problems)
    return {"names": names, "classes": class_docs, "exceptions": exceptions}


class SurfaceError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- pin, wheel, provenance -----------------------------------------------------------------


def pinned_version(versions_file: Path = VERSIONS) -> str:
    """The vLLM version of ``VLLM_BASE_IMAGE = "vllm/vllm-openai:vX.Y.Z"`` (read with ast, not imported)."""
    tree = ast.parse(versions_file.read_text(encoding="utf-8"))
    for stmt in tree.body:
        if (
            isinstance(stmt, (ast.Assign, ast.AnnAssign))
            and any(isinstance(t, ast.Name) and t.id == "VLLM_BASE_IMAGE" for t in _assign_targets(stmt))
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            tag = stmt.value.value.rpartition(":")[2]
            if not tag.startswith("v"):
                raise SystemExit(f"{versions_file}: VLLM_BASE_IMAGE tag {tag!r} is not vX.Y.Z")
            return tag[1:]
    raise SystemExit(f"{versions_file}: no VLLM_BASE_IMAGE string")


def cache_dir() -> Path:
    configured = os.environ.get("RPDEPLOY_CONTRACTS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rpdeploy-contracts"


def fetch_wheel(version: str, cache: Path | None = None) -> Path:
    """``vllm-<version>-*.whl`` from the cache, else from PyPI with ``pip download --no-deps``."""
    cache = cache or cache_dir()
    found = sorted(cache.glob(f"vllm-{version}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    # The Python sources are the same in every platform's wheel; pin the platform so every
    # machine downloads (and the contract names) the same file.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--platform", "manylinux_2_28_x86_64", "--implementation", "cp", "--python-version", "3.12",
         f"vllm=={version}", "-d", str(cache)],
        check=True,
    )  # fmt: skip
    found = sorted(cache.glob(f"vllm-{version}-*.whl"))
    if not found:
        raise SystemExit(f"pip download left no vllm-{version} wheel in {cache}")
    return found[0]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def contract_document(wheel: Path) -> dict[str, Any]:
    version = wheel_version(wheel)
    tree = WheelTree(wheel)
    return {
        "format": FORMAT,
        "package": "vllm",
        "version": version,
        "wheel": wheel.name,
        "wheel_sha256": sha256(wheel),
        "generator": "scripts/contracts/vllm_surface.py",
        "surface": SURFACE,
        "exception_modules": list(EXCEPTION_MODULES),
        **build_surface(tree),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def difference(path: Path, text: str) -> str | None:
    """A unified diff from the committed contract at ``path`` to ``text``; None when they are equal."""
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current == text:
        return None
    if current is None:
        return f"{path} does not exist"
    import difflib

    diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "regenerated", lineterm="", n=2)
    return "\n".join(list(diff)[:200])


def contract_path(version: str) -> Path:
    return CONTRACTS / f"vllm-{version}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="regenerate in memory and fail on any difference")
    parser.add_argument("--wheel", type=Path, help="read this wheel instead of the pinned one from the cache/PyPI")
    args = parser.parse_args(argv)

    version = pinned_version()
    wheel = args.wheel or fetch_wheel(version)
    if wheel_version(wheel) != version:
        print(f"{wheel.name} is vllm {wheel_version(wheel)}, but rpdeploy/versions.py pins {version}", file=sys.stderr)
        return 1
    try:
        text = render(contract_document(wheel))
    except SurfaceError as exc:
        print("the pinned vLLM no longer has what the workers use:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    path = contract_path(version)
    if args.check:
        diff = difference(path, text)
        if diff is not None:
            print(diff, file=sys.stderr)
            print(
                f"{path.relative_to(ROOT)} is out of date: run python {Path(__file__).relative_to(ROOT)}",
                file=sys.stderr,
            )
            return 1
        print(f"{path.relative_to(ROOT)} matches {wheel.name}")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path.relative_to(ROOT)} from {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
