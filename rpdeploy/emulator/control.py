"""The GraphQL control plane: ``POST /graphql`` parsed, validated and executed by graphql-core.

The schema is ``rpdeploy/runpod/schema.graphql``, generated from RunPod's own artifacts
(its header names them), the same file rpdeploy's operations are checked against: input
types are closed, required fields and enums strict, so requests fail validation exactly as
on RunPod (HTTP 400). The resolvers add RunPod's business rules and answer their
violations as RunPod does: HTTP 200, ``errors[]`` with ``message`` and ``path``, and
``null`` data for the field. Rule texts are ours where RunPod's wording is unknown; clients
read only ``errors[0].message``. Each rule below names its source; "emulator rule" marks
the few that are ours, kept because they catch client bugs.

Sources (tags as in the schema's header): docs = runpod/docs@a900806e; mcp =
runpod/runpod-mcp@00094917 src/_shared/endpoint-gpu-ids.ts and the changeset
.changeset/windows-claude-detection-and-gpu-exclusions.md (RunPod's MCP team, checked
against RunPod's backend); flash = runpod/flash@757420db; ctl = runpod/runpodctl@2e2df89.

This module owns the entry point (:meth:`ControlPlane.handle`: parse, validate, faults,
execute under the state lock), the binding of resolvers onto the schema, and the queries.
The mutations' resolvers are ``graphql_templates.py``'s (templates, registry credentials,
secrets) and ``graphql_endpoints.py``'s (endpoints); the values they share (errors, optional
input fields, release diffs, the GPU catalogue's shape) are ``graphql_values.py``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rpdeploy.emulator import faults as fault_names
from rpdeploy.emulator.faults import GENERIC_ERROR, Faults
from rpdeploy.emulator.graphql_endpoints import EndpointResolvers
from rpdeploy.emulator.graphql_templates import TEMPLATE_DELETE_DELAY, TemplateResolvers
from rpdeploy.emulator.graphql_values import display_name, fail, gpu_type_dict, root_fields
from rpdeploy.emulator.state import (
    EmulatorState,
    endpoint_dict,
    network_volume_dict,
    secret_dict,
    template_dict,
)
from rpdeploy.emulator.workers import Fleet
from rpdeploy.preflight import gpus

__all__ = ["TEMPLATE_DELETE_DELAY", "ControlPlane", "GraphQLAnswer", "default_gpu_pools", "load_sdl"]

UNAUTHORIZED = "Unauthorized"
#: `myself { endpoints }` answers at most this many, oldest first, with no pagination (mcp).
ENDPOINT_LIST_CAP = 400
#: What `endpoint(id:)` answers for an id it cannot see: the resolver throws (mcp
#: endpoint-gpu-ids.ts, "findFirstOrThrow"); the text is Prisma's for that case.
ENDPOINT_NOT_FOUND = "No Endpoint found"

DATA_CENTERS = (
    ("EU-RO-1", "EU-RO-1", "Romania"),
    ("EU-CZ-1", "EU-CZ-1", "Czech Republic"),
    ("EU-SE-1", "EU-SE-1", "Sweden"),
    ("US-KS-2", "US-KS-2", "United States"),
    ("US-TX-3", "US-TX-3", "United States"),
    ("CA-MTL-1", "CA-MTL-1", "Canada"),
)


def default_gpu_pools() -> list[tuple[str, list[str]]]:
    """The serverless pools the emulator answers by default: rpdeploy's catalogue of RunPod's
    published pools (docs references/gpu-types.mdx; flash core/resources/gpu.py). Tests
    replace it (:meth:`ControlPlane.set_gpu_pools`) to model a pool that changed."""
    return [(pool, list(gpus.pool_members(pool))) for pool in gpus.POOLS]


@dataclass(frozen=True)
class GraphQLAnswer:
    """An HTTP answer to one ``/graphql`` request, plus what the request log records."""

    status: int
    body: dict[str, Any]
    operation: str | None = None
    fields: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Context:
    read_only: bool = False
    authenticated: bool = True


def load_sdl() -> str:
    """The committed SDL rpdeploy is checked against: the emulator serves exactly this."""
    from rpdeploy.runpod.schema import sdl

    return sdl()


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


class ControlPlane(TemplateResolvers, EndpointResolvers):
    """``POST /graphql``: parsing, validation, faults, the queries; the mutations' resolvers
    come from :class:`TemplateResolvers` and :class:`EndpointResolvers`."""

    def __init__(
        self,
        state: EmulatorState,
        fleet: Fleet,
        faults: Faults,
        *,
        template_delete_delay: float = TEMPLATE_DELETE_DELAY,
        gpu_pools: Sequence[tuple[str, Sequence[str]]] | None = None,
    ) -> None:
        from graphql import build_schema

        self.state = state
        self.fleet = fleet
        self.faults = faults
        self.template_delete_delay = template_delete_delay
        self.pools: list[tuple[str, list[str]]] = []
        self.set_gpu_pools(default_gpu_pools() if gpu_pools is None else gpu_pools)
        # Built per emulator: the resolvers are bound onto this schema object.
        self.schema = build_schema(load_sdl())
        self._bind()

    def set_gpu_pools(self, pools: Sequence[tuple[str, Sequence[str]]]) -> None:
        """What ``serverlessGpuPools`` answers, in this order, and what ``gpuIds`` is checked against."""
        with self.state.lock:
            self.pools = [(str(pool), [str(t) for t in types]) for pool, types in pools]

    def pool_members(self, pool: str) -> list[str]:
        return next((types for pool_id, types in self.pools if pool_id == pool), [])

    # --- request handling -----------------------------------------------------------------

    def handle(self, raw: bytes, *, key: str | None, expected_key: str) -> GraphQLAnswer:
        """Answer one POST /graphql. ``key`` is the caller's key (None when it sent none).

        A wrong key is HTTP 401 (runpodctl issue 231: "unexpected status code: 401"). No key
        at all is not an error for a query: it runs without an account, so ``myself`` is
        ``null`` (``{"data": {"myself": null}}``: runpodctl issue 46; mcp endpoint-gpu-ids.ts,
        "HTTP 200 with `myself: null` and no `errors` array") and the catalogue answers as
        usual (docs helpers/gpu_types.py posts ``gpuTypes`` with no key). A mutation without
        a key is refused with 401 (what runpod-python maps to AuthenticationError).
        """
        from graphql import GraphQLError, OperationType, execute_sync, get_operation_ast, parse, validate

        if key is not None and key != expected_key:
            return GraphQLAnswer(401, _errors(UNAUTHORIZED))
        try:
            request = json.loads(raw or b"null")
        except ValueError:
            return GraphQLAnswer(400, _errors("POST body must be JSON"))
        if not isinstance(request, dict) or not isinstance(request.get("query"), str):
            return GraphQLAnswer(400, _errors('POST body must be a JSON object with a "query" string'))
        variables = request.get("variables")
        operation_name = request.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return GraphQLAnswer(400, _errors('"variables" must be a JSON object'))
        if operation_name is not None and not isinstance(operation_name, str):
            return GraphQLAnswer(400, _errors('"operationName" must be a string'))

        try:
            document = parse(request["query"])
        except GraphQLError as exc:
            return GraphQLAnswer(400, {"errors": [exc.formatted]})
        operation = get_operation_ast(document, operation_name)
        fields = root_fields(operation)
        label = operation.name.value if operation is not None and operation.name else (fields[0] if fields else None)

        def answer(status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> GraphQLAnswer:
            return GraphQLAnswer(status, body, label, fields, headers)

        mutation = operation is not None and operation.operation is OperationType.MUTATION
        if key is None and mutation:
            return answer(401, _errors(UNAUTHORIZED))
        problems = validate(self.schema, document)
        if problems:
            return answer(400, {"errors": [problem.formatted for problem in problems]})
        names = {name for name in (label, *fields) if name}
        injected = self.faults.take(fault_names.GRAPHQL_ERRORS, operations=names)
        if injected is not None:
            return answer(200, {"errors": [{"message": injected.message or GENERIC_ERROR}], "data": None})

        context = _Context(authenticated=key is not None)
        if mutation:
            context.read_only = self.faults.take(fault_names.READ_ONLY) is not None
        with self.state.lock:
            self.state.advance()
            result = execute_sync(
                self.schema,
                document,
                variable_values=variables,
                operation_name=operation_name,
                context_value=context,
            )
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        body["data"] = result.data
        # Execution without data means the request itself was bad (variables that do not
        # coerce, an unknown operation name): a 400, not a resolver error.
        status = 400 if result.errors and result.data is None else 200
        return answer(status, body)

    # --- wiring ---------------------------------------------------------------------------

    def _bind(self) -> None:
        from graphql import GraphQLObjectType

        def bind(type_name: str, field: str, resolver: Callable[..., Any]) -> None:
            object_type = self.schema.type_map[type_name]
            assert isinstance(object_type, GraphQLObjectType)
            object_type.fields[field].resolve = resolver

        bind("Query", "myself", self._myself)
        bind("Query", "podTemplate", self._pod_template)
        bind("Query", "gpuTypes", self._gpu_types)
        bind("Query", "serverlessGpuPools", self._pools)
        bind("Query", "dataCenters", self._data_centers)
        bind("User", "endpoint", self._user_endpoint)
        bind("Mutation", "saveTemplate", self._writes(self._save_template))
        bind("Mutation", "deleteTemplate", self._writes(self._delete_template))
        bind("Mutation", "saveEndpoint", self._writes(self._save_endpoint))
        bind("Mutation", "deleteEndpoint", self._writes(self._delete_endpoint))
        bind("Mutation", "updateEndpointTemplate", self._writes(self._update_endpoint_template))
        bind("Mutation", "saveRegistryAuth", self._writes(self._save_registry_auth))
        bind("Mutation", "updateRegistryAuth", self._writes(self._update_registry_auth))
        bind("Mutation", "deleteRegistryAuth", self._writes(self._delete_registry_auth))
        bind("Mutation", "secretCreate", self._writes(self._secret_create))
        bind("Mutation", "secretValueUpdate", self._writes(self._secret_value_update))
        bind("Mutation", "secretDelete", self._writes(self._secret_delete))

    @staticmethod
    def _writes(resolver: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(root: Any, info: Any, **args: Any) -> Any:
            if info.context.read_only:
                raise fail(UNAUTHORIZED)
            return resolver(**args)

        return guarded

    # --- queries --------------------------------------------------------------------------

    def _myself(self, _root: Any, info: Any) -> dict[str, Any] | None:
        if not info.context.authenticated:
            return None  # no key, no account: {"data": {"myself": null}} (see handle())
        state = self.state
        return {
            "id": state.account.id,
            "email": state.account.email,
            "pubKey": "",
            "clientBalance": 100.0,
            "currentSpendPerHr": 0.0,
            "spendLimit": 80,
            # Capped and oldest first, with no pagination (mcp endpoint-gpu-ids.ts).
            "endpoints": lambda _info: [endpoint_dict(state, e) for e in state.endpoints.values()][:ENDPOINT_LIST_CAP],
            "podTemplates": lambda _info: [template_dict(state, t) for t in state.templates.values()],
            "containerRegistryCreds": lambda _info: [
                {"id": r.id, "name": r.name} for r in state.registry_auths.values()
            ],
            "serverlessDiscount": None,
            "networkVolumes": lambda _info: [network_volume_dict(v) for v in state.network_volumes.values()],
            "secrets": lambda _info: [secret_dict(s) for s in state.secrets.values()],
        }

    def _user_endpoint(self, _user: Any, _info: Any, id: str) -> dict[str, Any]:
        endpoint = self.state.endpoints.get(id)
        if endpoint is None:
            # The resolver throws for an id it cannot see instead of answering null (mcp).
            raise fail(ENDPOINT_NOT_FOUND)
        return endpoint_dict(self.state, endpoint)

    def _pod_template(self, _root: Any, info: Any, id: str) -> dict[str, Any] | None:
        template = self.state.templates.get(id) if info.context.authenticated else None
        # flash core/api/runpod.py treats a null podTemplate as "not found or not accessible".
        return template_dict(self.state, template) if template else None

    def _gpu_types(self, _root: Any, _info: Any, input: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted: set[str] | None = None
        if input:
            wanted = set()
            if input.get("id") is not None:
                wanted.add(input["id"])
            wanted.update(i for i in input.get("ids") or () if i is not None)
        return [gpu_type_dict(gpu) for gpu in gpus.GPU_TYPES if wanted is None or gpu.id in wanted]

    def _pools(self, _root: Any, _info: Any) -> list[dict[str, Any]]:
        # Whether RunPod answers this without a key is unknown; like the catalogue, it does here.
        return [{"id": pool, "gpuTypeIds": list(types)} for pool, types in self.pools]

    def _data_centers(self, _root: Any, _info: Any) -> list[dict[str, Any]]:
        availability = [
            {"gpuTypeId": gpu.id, "displayName": display_name(gpu), "stockStatus": "High", "available": True}
            for gpu in gpus.GPU_TYPES
        ]
        return [
            {"id": dc_id, "name": name, "location": location, "gpuAvailability": availability}
            for dc_id, name, location in DATA_CENTERS
        ]
