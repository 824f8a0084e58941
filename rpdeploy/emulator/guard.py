"""Request limits and GraphQL authorization for the emulator's HTTP front (``server.py``).

Everything here runs before a request reaches the control plane or the invoke API, and
decides on the request as a whole, the way a production GraphQL gateway does:

* **Bodies.** GraphQL and admin bodies are at most 1 MiB; invoke bodies keep RunPod's
  documented caps (``/run`` 10 MB, ``/runsync`` 20 MB: ``invoke.py``). A JSON body may nest
  at most 64 levels and hold at most 250,000 values (counted from its bytes before parsing,
  so a body of a million empty lists costs nothing): every Python object of a parsed body
  costs 50-70 bytes, and this keeps a 20 MB body under 100 MB.
* **GraphQL documents.** The query is at most 32 KiB and 5,000 tokens (graphql-core's
  ``max_tokens``); after resolving fragment spreads and inline fragments it selects at most
  2,000 fields, nests at most 20 levels (RunPod's own queries nest 4; graphql-core's
  introspection query 15) and uses at most 50 aliases. A fragment cycle is refused here too,
  before expansion. Apollo Router, GitHub and Shopify use the same kinds of limits (tokens,
  depth, aliases/nodes); these values are sized for the emulator's schema.
* **Authorization after parsing.** A request without a key may never write: a mutation or
  subscription anywhere in the document is a 401. What a *query* without a key may see is the
  control plane's rule: when ``control.py`` names the public catalogue fields
  (``PUBLIC_FIELDS``), every root field of every operation, fragments resolved, must be one
  of them (``{ gpuTypes { id } ... on Query { myself { id } } }`` and the same through a named
  fragment are refused, not judged by the first field of the text); when it answers such
  queries itself, without an account (``myself`` is null, as RunPod does), it gets them.

The parse here is authoritative: a document this module refuses never reaches graphql-core's
own ``parse``/``validate``/``execute`` in ``control.py`` (validation's overlapping-fields rule
is quadratic, which is how 20,000 aliases cost 25 s of CPU).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """The emulator's request limits (see the module docstring for why these values)."""

    graphql_body: int = 1024 * 1024
    admin_body: int = 1024 * 1024
    invoke_body: int = 20 * 1024 * 1024
    json_depth: int = 64
    json_values: int = 250_000
    query_chars: int = 32 * 1024
    query_tokens: int = 5_000
    query_depth: int = 20
    query_fields: int = 2_000
    query_aliases: int = 50
    #: Seconds a connection may sit without sending (or taking) a byte before it is closed.
    socket_timeout: float = 30.0
    #: Connections served at once; more are answered 503 and closed.
    max_connections: int = 128


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: an HTTP status and a message (GraphQL ``errors[]`` shape for /graphql)."""

    status: int
    message: str


# --- JSON bodies ----------------------------------------------------------------------------


def count_values(raw: bytes) -> int:
    """An upper bound on the number of values in a JSON text, from byte counts alone (C speed).

    Every value but the first follows a ``,`` or opens with ``[``/``{``, and every string is a
    pair of unescaped quotes; brackets and commas inside strings are counted too, which only
    makes the bound looser.
    """
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return 1 + raw.count(b",") + raw.count(b"[") + raw.count(b"{") + text.count(b'"') // 2


def _depth(data: Any, limit: int) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        children: Iterable[Any] = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest if isinstance(data, (dict, list)) else 0


def parse_json(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, Rejection | None]:
    """``(value, None)`` for a JSON body within limits; ``(None, None)`` for an empty or non-JSON
    body (the route says what it wanted); ``(None, rejection)`` for JSON past the limits."""
    if not raw:
        return None, None
    if count_values(raw) > limits.json_values:
        return None, Rejection(413, f"JSON body has more than {limits.json_values} values")
    try:
        data = json.loads(raw)
    except RecursionError:
        return None, Rejection(400, f"JSON body nests more than {limits.json_depth} levels")
    except ValueError:
        return None, None
    if _depth(data, limits.json_depth) > limits.json_depth:
        return None, Rejection(400, f"JSON body nests more than {limits.json_depth} levels")
    return data, None


# --- GraphQL --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What a GraphQL document selects once its fragments are resolved."""

    fields: int
    depth: int
    aliases: int
    root_fields: frozenset[str]
    mutations_or_subscriptions: bool
    problem: str | None = None  # a limit passed or a fragment cycle: the walk stopped there


def shape_of(document: Any, limits: Limits = DEFAULT_LIMITS) -> Shape:
    """Walk every operation with fragments expanded, iteratively, stopping at the first limit passed."""
    from graphql import (
        FieldNode,
        FragmentDefinitionNode,
        FragmentSpreadNode,
        InlineFragmentNode,
        OperationDefinitionNode,
        OperationType,
    )

    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    writes = any(op.operation is not OperationType.QUERY for op in operations)
    fields = depth_seen = aliases = visited = 0
    roots: set[str] = set()
    # (selection, field depth, fragment names on the way here)
    stack: list[tuple[Any, int, tuple[str, ...]]] = []
    for op in operations:
        stack.extend((selection, 1, ()) for selection in reversed(op.selection_set.selections))
    problem = None
    while stack:
        node, depth, trail = stack.pop()
        visited += 1
        if visited > limits.query_fields * 4:
            problem = f"the query expands to more than {limits.query_fields * 4} selections"
            break
        if isinstance(node, FieldNode):
            fields += 1
            aliases += node.alias is not None
            depth_seen = max(depth_seen, depth)
            if depth == 1:
                roots.add(node.name.value)
            if fields > limits.query_fields:
                problem = f"the query selects more than {limits.query_fields} fields"
                break
            if aliases > limits.query_aliases:
                problem = f"the query uses more than {limits.query_aliases} aliases"
                break
            if depth > limits.query_depth:
                problem = f"the query nests more than {limits.query_depth} levels"
                break
            if node.selection_set is not None:
                stack.extend((child, depth + 1, trail) for child in reversed(node.selection_set.selections))
        elif isinstance(node, InlineFragmentNode):
            stack.extend((child, depth, trail) for child in reversed(node.selection_set.selections))
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name in trail:
                problem = f"fragment {name} spreads itself (a cycle)"
                break
            fragment = fragments.get(name)
            if fragment is not None:  # an unknown fragment is validation's to report
                nested = (*trail, name)
                stack.extend((child, depth, nested) for child in reversed(fragment.selection_set.selections))
    return Shape(fields, depth_seen, aliases, frozenset(roots), writes, problem)


def check_graphql(
    request: Any, *, authorized: bool, public_fields: frozenset[str] | None, limits: Limits = DEFAULT_LIMITS
) -> Rejection | None:
    """Refuse a GraphQL request past the limits, or one without a key that writes or reads what it may not.

    ``public_fields``: the root fields a query without a key may select; None when the control
    plane runs such queries itself without an account (then only writes are refused here).

    ``request`` is the parsed JSON body. A body that is not a ``{"query": "..."}`` object is
    left to ``control.py`` (which answers it as RunPod does); so is a document that parses
    here and is otherwise invalid (validation errors are the control plane's to report).
    """
    from graphql import GraphQLError, parse

    denied = Rejection(401, "Unauthorized")
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        return None
    query: str = request["query"]
    if len(query) > limits.query_chars:
        return denied if not authorized else Rejection(413, f"the query is longer than {limits.query_chars} characters")
    try:
        document = parse(query, no_location=True, max_tokens=limits.query_tokens)
    except GraphQLError as exc:
        return denied if not authorized else Rejection(400, exc.message)
    except RecursionError:  # graphql-core's parser recurses once per nesting level
        return denied if not authorized else Rejection(400, "query too complex: nested too deeply to parse")
    shape = shape_of(document, limits)
    if not authorized and (shape.problem is not None or shape.mutations_or_subscriptions):
        return denied
    if not authorized and public_fields is not None and not (shape.root_fields and shape.root_fields <= public_fields):
        return denied
    if shape.problem is not None:
        return Rejection(400, f"query too complex: {shape.problem}")
    return None
