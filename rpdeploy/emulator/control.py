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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rpdeploy.emulator import faults as fault_names
from rpdeploy.emulator import ids, releases
from rpdeploy.emulator.faults import GENERIC_ERROR, Faults
from rpdeploy.emulator.state import (
    AccountSecret,
    EmulatorState,
    Endpoint,
    EnvVar,
    RegistryAuth,
    Template,
    endpoint_dict,
    network_volume_dict,
    secret_dict,
    template_dict,
)
from rpdeploy.emulator.workers import DEFAULT_EXECUTION_TIMEOUT_MS, Fleet
from rpdeploy.preflight import gpus

UNAUTHORIZED = "Unauthorized"

SCALER_TYPES = ("QUEUE_DELAY", "REQUEST_COUNT")
ENDPOINT_TYPES = ("QB", "LB")
CUDA_VERSIONS = ("11.8", *(f"12.{minor}" for minor in range(10)), "13.0")
NAME_MIN, NAME_MAX = 3, 191
IDLE_TIMEOUT_RANGE = (1, 3600)
_CPU_INSTANCE = re.compile(r"^cpu\d[a-z]-\d+-\d+$")
#: `myself { endpoints }` answers at most this many, oldest first, with no pagination (mcp).
ENDPOINT_LIST_CAP = 400
#: "It can take up to 2 minutes to delete a template after its most recent use by a Pod or
#: Serverless endpoint" (docs sdks/graphql/manage-pod-templates.mdx): the emulator takes the
#: whole 2 minutes unless told otherwise (``template_delete_delay``, or the fault switch).
TEMPLATE_DELETE_DELAY = 120.0
#: What `endpoint(id:)` answers for an id it cannot see: the resolver throws (mcp
#: endpoint-gpu-ids.ts, "findFirstOrThrow"); the text is Prisma's for that case.
ENDPOINT_NOT_FOUND = "No Endpoint found"
#: A model reference as runpodctl documents it: "hugging face model url with a ref to cache on the
#: endpoint, e.g. https://huggingface.co/<org>/<model>:main" (ctl cmd/serverless/create.go).
_MODEL_REFERENCE = re.compile(
    r"^https://huggingface\.co/(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<ref>[\w./-]+))?$"
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

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


class ControlPlane:
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

    def delete_delay(self) -> float:
        """Seconds a template stays "in use" after its last endpoint let it go."""
        switch = self.faults.peek(fault_names.TEMPLATE_DELETE_DELAY)
        if switch is not None and switch.seconds is not None:
            return switch.seconds
        return self.template_delete_delay

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
        fields = _root_fields(operation)
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
                raise _fail(UNAUTHORIZED)
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
            raise _fail(ENDPOINT_NOT_FOUND)
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

    # --- templates ------------------------------------------------------------------------

    def _save_template(self, input: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if input is None:
            raise _fail("input is required")
        data = dict(input)  # name, containerDiskInGb, dockerArgs, env, volumeInGb: non-null in the schema
        existing: Template | None = None
        if data.get("id") is not None:
            existing = self.state.templates.get(data["id"])
            if existing is None:
                raise _fail(f"Template {data['id']} not found")
        name = _required_text(data, "name")
        # Nullable in the schema, but a required field in the docs (manage-pod-templates.mdx).
        image = _required_text(data, "imageName")
        clash = self.state.template_by_name(name)
        if clash is not None and clash is not existing:
            # "Template names must be unique. Creating a template with a name that already
            # exists will fail." (docs manage-pod-templates.mdx)
            raise _fail(f"Template name must be unique: a template named {name!r} already exists")
        is_serverless = bool(data.get("isServerless") or False)
        if data["containerDiskInGb"] < 1:
            raise _fail(f"containerDiskInGb must be at least 1, got {data['containerDiskInGb']}")
        volume = data["volumeInGb"]
        if volume < 0 or (is_serverless and volume != 0):
            # "Set to 0 for Serverless templates" (docs manage-pod-templates.mdx)
            raise _fail("Serverless templates do not support volume disks: volumeInGb must be 0")
        auth_id = data.get("containerRegistryAuthId") or ""
        if auth_id and auth_id not in self.state.registry_auths:
            raise _fail(f"Container registry auth {auth_id} not found")
        env = _env(data["env"])
        if existing is not None and not is_serverless and self.state.endpoint_bound_to(existing.id):
            raise _fail("Template is in use by a serverless endpoint and must stay a serverless template")
        template = Template(
            id=existing.id if existing else ids.template_id(),
            name=name,
            image_name=image,
            docker_args=data["dockerArgs"],
            container_disk_in_gb=int(data["containerDiskInGb"]),
            volume_in_gb=int(volume),
            volume_mount_path=_text(data, "volumeMountPath", "/workspace"),
            ports=_text(data, "ports", ""),
            env=env,
            is_serverless=is_serverless,
            is_public=bool(data.get("isPublic") or False),
            readme=_text(data, "readme", ""),
            start_ssh=_bool(data, "startSsh", True),
            start_jupyter=_bool(data, "startJupyter", False),
            start_script=_text(data, "startScript", ""),
            advanced_start=_bool(data, "advancedStart", False),
            container_registry_auth_id=auth_id,
            category=_text(data, "category", "NVIDIA"),
            ports_config=[dict(item) for item in data.get("portsConfig") or () if item is not None],
            config=data.get("config"),
        )
        bound = None
        if existing is not None:
            template.created_at = existing.created_at
            template.released_at = existing.released_at
            bound = self.state.endpoint_bound_to(existing.id)
            if bound is not None:
                # Updating a template rolls its endpoint's workers (docs serverless/endpoints/rolling-releases.mdx).
                bound.version += 1
                releases.record(self.state, bound, _template_diff(existing, template))
        self.state.templates[template.id] = template
        if bound is not None:
            self.fleet.endpoint_changed(bound)  # replacements start now (emulator/rolling.py)
        return template_dict(self.state, template)

    def _delete_template(self, templateName: str) -> None:
        # By name (docs manage-pod-templates.mdx: `deleteTemplate(templateName: ...)`).
        template = self.state.template_by_name(templateName)
        if template is None:
            raise _fail(f"Template {templateName!r} not found")
        bound = self.state.endpoint_bound_to(template.id)
        if bound is not None:
            # "The template must not be in use by any Pods or Serverless endpoints." (docs)
            raise _fail(f"Template {templateName!r} is in use by serverless endpoint {bound.id} and cannot be deleted")
        if template.released_at is not None:
            left = template.released_at + self.delete_delay() - self.state.clock()
            if left > 0:
                # "It can take up to 2 minutes to delete a template after its most recent use by
                # a Pod or Serverless endpoint." (docs manage-pod-templates.mdx)
                raise _fail(
                    f"Template {templateName!r} is still in use: a template can take up to 2 minutes to be "
                    "deleted after its most recent use by a Pod or Serverless endpoint"
                )
        del self.state.templates[template.id]

    def _release(self, template_id: str) -> None:
        """Start the deletion delay of a template an endpoint just stopped using."""
        template = self.state.templates.get(template_id)
        if template is not None:
            template.released_at = self.state.clock()

    # --- registry credentials -------------------------------------------------------------

    def _save_registry_auth(self, input: Mapping[str, Any]) -> dict[str, Any]:
        name = _required_text(input, "name")
        username = _required_text(input, "username")
        password = _required_text(input, "password")
        if any(auth.name == name for auth in self.state.registry_auths.values()):
            raise _fail(f"Container registry auth name must be unique: {name!r} already exists")
        auth = RegistryAuth(id=ids.registry_auth_id(), name=name, username=username, password=password)
        self.state.registry_auths[auth.id] = auth
        return {"id": auth.id, "name": auth.name}

    def _update_registry_auth(self, input: Mapping[str, Any]) -> dict[str, Any]:
        auth = self.state.registry_auths.get(input["id"])
        if auth is None:
            raise _fail(f"Container registry auth {input['id']} not found")
        auth.username = _required_text(input, "username")
        auth.password = _required_text(input, "password")
        return {"id": auth.id, "name": auth.name}

    def _delete_registry_auth(self, registryAuthId: str) -> None:
        if self.state.registry_auths.pop(registryAuthId, None) is None:
            raise _fail(f"Container registry auth {registryAuthId} not found")
        # Templates silently lose the reference (as RunPod's REST v2 documents).
        for template in self.state.templates.values():
            if template.container_registry_auth_id == registryAuthId:
                template.container_registry_auth_id = ""

    # --- account secrets ------------------------------------------------------------------
    # docs pods/templates/secrets.mdx and sdks/graphql/manage-pod-templates.mdx; the value
    # update from RunPod's Pulumi provider (provider/secret.go). Values are write-only: the
    # Secret type has no value field, and workers get them through {{ RUNPOD_SECRET_name }}
    # (emulator/coldstart.py substitutes them when a worker starts).

    def _secret_create(self, input: Mapping[str, Any]) -> dict[str, Any]:
        name = _required_text(input, "name")
        value = _required_text(input, "value")
        if any(secret.name == name for secret in self.state.secrets.values()):
            # "Secret Name: A unique identifier for your secret" (docs secrets.mdx); wording ours.
            raise _fail(f"Secret name must be unique: a secret named {name!r} already exists")
        secret = AccountSecret(id=ids.secret_id(), name=name, value=value, description=input.get("description"))
        self.state.secrets[secret.id] = secret
        return secret_dict(secret)

    def _secret_value_update(self, input: Mapping[str, Any]) -> dict[str, Any]:
        secret = self.state.secrets.get(input["id"])
        if secret is None:
            raise _fail(f"Secret {input['id']} not found")
        secret.value = _required_text(input, "value")
        secret.updated_at = ids.timestamp()
        return secret_dict(secret)

    def _secret_delete(self, id: str) -> None:
        # Not refused while templates reference it: "this will cause those deployments to fail" (docs).
        if self.state.secrets.pop(id, None) is None:
            raise _fail(f"Secret {id} not found")

    def _model_references(self, references: Sequence[str], *, cpu: bool) -> list[str]:
        """Checked, and each ref resolved to a commit as RunPod answers them (ctl e2e/cli_test.go:
        ``:main`` comes back as a commit sha)."""
        if references and cpu:
            # ctl cmd/serverless/create.go: "--model-reference is only supported with --compute-type GPU".
            raise _fail("modelReferences are only supported on GPU endpoints")
        if len(references) > 1:
            # "Each endpoint is currently limited to one cached model at a time." (docs
            # serverless/endpoints/model-caching.mdx; runpodctl's flag is repeatable, what RunPod
            # does with two is not known: the emulator holds rpdeploy to the documented limit.)
            raise _fail("Each endpoint is currently limited to one cached model at a time")
        resolved = []
        for reference in references:
            match = _MODEL_REFERENCE.match(reference)
            if match is None:
                raise _fail(
                    f"Invalid model reference {reference!r}: expected https://huggingface.co/<org>/<model>:<ref>"
                )
            ref = match.group("ref") or "main"
            commit = ref if _COMMIT.match(ref) else ids.commit_of(match.group("repo"), ref)
            resolved.append(f"https://huggingface.co/{match.group('repo')}:{commit}")
        return resolved

    # --- endpoints ------------------------------------------------------------------------

    def _save_endpoint(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """Create (no ``id``) or update (``id``) an endpoint.

        An update is a full replace, but not of everything (mcp endpoint-gpu-ids.ts, read
        against RunPod's resolver): the schema's input defaults (idleTimeout 10, scalerValue
        4, workersMax 3, workersMin 0, gpuCount 1, scalerType QUEUE_DELAY) reset what an update
        leaves out, and ``instanceIds`` and ``locations`` are nulled when left out; the CUDA
        pair, ``executionTimeoutMs`` and ``requestTTL`` stay; ``compliance``,
        ``modelReferences``, ``networkVolumeIds`` and ``type`` are written only when sent;
        ``templateId`` is validated but acts only on create (the template of an existing
        endpoint changes through ``updateEndpointTemplate``).
        """
        data = dict(input)
        existing: Endpoint | None = None
        if data.get("id") is not None:
            existing = self.state.endpoints.get(data["id"])
            if existing is None:
                raise _fail(f"Endpoint {data['id']} not found")

        name = data["name"]
        if len(name.strip()) < NAME_MIN or len(name) > NAME_MAX:
            # name is `String!`, min 3 (ctl AGENTS.md); REST caps it at 191 (docs api-reference/openapi.json).
            raise _fail(f"Endpoint name must be {NAME_MIN} to {NAME_MAX} characters long")
        if data.get("templateId") and data.get("template") is not None:
            # "RunPod rejects requests that contain both fields simultaneously." (flash serverless.py)
            raise _fail("Give either templateId or template, not both")

        template_id, inline = self._endpoint_template(data, existing)
        # Nulled when left out (mcp: `input?.instanceIds ? join(',') : null`).
        instance_ids = [i for i in data.get("instanceIds") or () if i is not None]
        for instance in instance_ids:
            if not _CPU_INSTANCE.match(instance):
                # CPU is chosen by instanceIds like cpu3g-4-16 (ctl AGENTS.md).
                raise _fail(f"Invalid instanceIds entry {instance!r}: expected a CPU flavor like cpu3g-4-16")
        gpu_ids = data.get("gpuIds")
        if instance_ids:
            gpu_ids = gpu_ids or ""
        else:
            if not gpu_ids:
                raise _fail("gpuIds is required: a comma-separated list of GPU pool ids, e.g. AMPERE_24")
            self.check_gpu_ids(gpu_ids)

        # The schema fills these in when left out; an explicit null gets the same default.
        workers_min = _int(data, "workersMin", 0, minimum=0)
        workers_max = _int(data, "workersMax", 3, minimum=0)
        if workers_min > workers_max:
            raise _fail(f"workersMin ({workers_min}) cannot be greater than workersMax ({workers_max})")
        idle_timeout = _int(data, "idleTimeout", 10, minimum=IDLE_TIMEOUT_RANGE[0])
        if idle_timeout > IDLE_TIMEOUT_RANGE[1]:
            # 1-3600 (ctl cmd/serverless/create.go; docs api-reference/openapi.json)
            raise _fail(f"idleTimeout must be between {IDLE_TIMEOUT_RANGE[0]} and {IDLE_TIMEOUT_RANGE[1]} seconds")
        scaler_type = data.get("scalerType") or "QUEUE_DELAY"
        if scaler_type not in SCALER_TYPES:
            raise _fail(f"scalerType must be one of {', '.join(SCALER_TYPES)}, got {scaler_type!r}")
        # "the server rejects a scaler value below 1" (ctl cmd/serverless/create.go)
        scaler_value = _int(data, "scalerValue", 4, minimum=1)
        gpu_count = _int(data, "gpuCount", 1, minimum=1)

        def kept(key: str, attribute: str, default: Any) -> Any:
            """A field an update leaves as it is when the input does not carry it."""
            if key in data:
                return default if data[key] is None else data[key]
            return getattr(existing, attribute) if existing is not None else default

        execution_timeout = kept("executionTimeoutMs", "execution_timeout_ms", DEFAULT_EXECUTION_TIMEOUT_MS)
        if execution_timeout < 0:
            raise _fail(f"executionTimeoutMs must be at least 0, got {execution_timeout}")
        pfb_target = kept("workersPFBTarget", "workers_pfb_target", 0)
        if pfb_target < 0:
            raise _fail(f"workersPFBTarget must be at least 0, got {pfb_target}")
        endpoint_type = kept("type", "type", "QB")
        if endpoint_type not in ENDPOINT_TYPES:
            raise _fail(f"type must be one of {', '.join(ENDPOINT_TYPES)}, got {endpoint_type!r}")
        allowed_cuda = kept("allowedCudaVersions", "allowed_cuda_versions", None)
        if allowed_cuda:
            check_cuda_versions(allowed_cuda, "allowedCudaVersions")
        min_cuda = kept("minCudaVersion", "min_cuda_version", None)
        if min_cuda:
            check_cuda_versions(min_cuda, "minCudaVersion", single=True)
        volume_id = kept("networkVolumeId", "network_volume_id", None)
        if volume_id and volume_id not in self.state.network_volumes:
            raise _fail(f"Network volume {volume_id} not found")
        if "networkVolumeIds" in data:
            volume_ids = [item["networkVolumeId"] for item in data["networkVolumeIds"] or () if item is not None]
        else:
            volume_ids = list(existing.network_volume_ids) if existing is not None else []
        for vid in volume_ids:
            if vid not in self.state.network_volumes:
                raise _fail(f"Network volume {vid} not found")
        if "modelReferences" in data:
            sent = [r for r in data["modelReferences"] or () if r is not None]
            model_references = self._model_references(sent, cpu=bool(instance_ids))
        else:
            model_references = list(existing.model_references) if existing is not None else []
        compliance = [c for c in kept("compliance", "compliance", []) if c is not None]
        request_ttl = kept("requestTTL", "request_ttl", None)

        if inline is not None:
            template_id = self._create_inline_template(name, inline)
        endpoint = Endpoint(
            id=existing.id if existing else ids.endpoint_id(),
            name=name,
            template_id=template_id,
            gpu_ids=gpu_ids,
            gpu_count=gpu_count,
            instance_ids=instance_ids,
            workers_min=workers_min,
            workers_max=workers_max,
            workers_pfb_target=pfb_target,
            idle_timeout=idle_timeout,
            scaler_type=scaler_type,
            scaler_value=scaler_value,
            locations=data.get("locations") or None,  # nulled when left out (mcp: `locations || null`)
            network_volume_id=volume_id,
            network_volume_ids=volume_ids,
            execution_timeout_ms=execution_timeout,
            allowed_cuda_versions=allowed_cuda,
            min_cuda_version=min_cuda,
            flash_boot_type=kept("flashBootType", "flash_boot_type", "OFF"),
            type=endpoint_type,
            model_references=list(model_references),
            compliance=list(compliance),
            flash_environment_id=kept("flashEnvironmentId", "flash_environment_id", None),
            hub_release_id=kept("hubReleaseId", "hub_release_id", None),
            user_id=self.state.account.id,
            request_ttl=request_ttl,
        )
        if existing is not None:
            endpoint.created_at = existing.created_at
            endpoint.ai_key = existing.ai_key
            endpoint.version = existing.version
            # A new release (version + 1, workers rolled) when the GPUs, the template or the
            # volumes change (flash serverless.py, update docstring), when the model
            # references change (mcp: clearing them "rolls its workers"), and when
            # requestTTL is left out while one is stored (mcp: "omitting it registered as a
            # change and rolled the workers").
            rolled = (
                (existing.gpu_ids, existing.template_id, existing.network_volume_id, existing.network_volume_ids)
                != (endpoint.gpu_ids, endpoint.template_id, endpoint.network_volume_id, endpoint.network_volume_ids)
                or existing.model_references != endpoint.model_references
                or ("requestTTL" not in data and existing.request_ttl is not None)
            )
            if rolled:
                endpoint.version += 1
                releases.record(self.state, endpoint, _endpoint_diff(existing, endpoint))
            # The fleet and the job counters belong to the endpoint, not to its settings.
            endpoint.workers, endpoint.queue = existing.workers, existing.queue
            endpoint.completed, endpoint.failed, endpoint.retried = (
                existing.completed,
                existing.failed,
                existing.retried,
            )
        self.state.endpoints[endpoint.id] = endpoint
        if existing is None:
            releases.record(self.state, endpoint)
        self.fleet.endpoint_changed(endpoint)
        return endpoint_dict(self.state, endpoint)

    def _endpoint_template(
        self, data: Mapping[str, Any], existing: Endpoint | None
    ) -> tuple[str, Mapping[str, Any] | None]:
        """The template the endpoint will use, checked; or an inline template to create."""
        template_id = data.get("templateId")
        if existing is not None:
            # On an update templateId is checked (it "re-runs template validation — which
            # throws if that template is gone") but only acts on create (mcp).
            if template_id:
                self._check_bindable(template_id, existing)
            return existing.template_id, None
        if template_id:
            self._check_bindable(template_id, None)
            return template_id, None
        inline = data.get("template")
        if inline is not None:
            _required_text(inline, "imageName", prefix="template.")
            if self.state.template_by_name(inline["name"]):
                raise _fail(f"Template name must be unique: a template named {inline['name']!r} already exists")
            return "", inline
        raise _fail("templateId is required: create a serverless template with saveTemplate first")

    def _check_bindable(self, template_id: str, endpoint: Endpoint | None) -> None:
        template = self.state.templates.get(template_id)
        if template is None:
            raise _fail(f"Template {template_id} not found")
        if not template.is_serverless:
            raise _fail(f"Template {template_id} is not a serverless template (isServerless: false)")
        bound = self.state.endpoint_bound_to(template_id)
        if bound is not None and (endpoint is None or bound.id != endpoint.id):
            # "Each Serverless template can only be bound to one endpoint at a time." (docs
            # runpodctl/reference/runpodctl-serverless.mdx)
            raise _fail(
                f"Template {template_id} is already bound to endpoint {bound.id}: each serverless template "
                "can only be bound to one endpoint at a time"
            )

    def _create_inline_template(self, endpoint_name: str, inline: Mapping[str, Any]) -> str:
        template = Template(
            id=ids.template_id(),
            name=inline["name"],
            image_name=inline["imageName"],
            docker_args=inline["dockerArgs"],
            container_disk_in_gb=_int(inline, "containerDiskInGb", 50, minimum=1),
            volume_in_gb=0,
            volume_mount_path="/workspace",
            ports=_text(inline, "ports", ""),
            env=_env(inline["env"]),
            is_serverless=True,
            is_public=False,
            readme=_text(inline, "readme", ""),
            start_ssh=_bool(inline, "startSsh", True),
            start_jupyter=_bool(inline, "startJupyter", False),
            start_script=_text(inline, "startScript", ""),
            advanced_start=_bool(inline, "advancedStart", False),
            container_registry_auth_id=inline.get("containerRegistryAuthId") or "",
            category="NVIDIA",
            ports_config=[],
            config=inline.get("config"),
        )
        self.state.templates[template.id] = template
        return template.id

    def _update_endpoint_template(self, input: Mapping[str, Any] | None = None) -> dict[str, Any]:
        # Swaps the template of an endpoint: a new release (py mutations/endpoints.py; ctl).
        if not input:
            raise _fail("input is required: {endpointId, templateId}")
        endpoint = self.state.endpoints.get(input["endpointId"])
        if endpoint is None:
            raise _fail(f"Endpoint {input['endpointId']} not found")
        self._check_bindable(input["templateId"], endpoint)
        if endpoint.template_id != input["templateId"]:
            self._release(endpoint.template_id)
            diff = [("templateId", endpoint.template_id, input["templateId"])]
            endpoint.template_id = input["templateId"]
            endpoint.version += 1
            releases.record(self.state, endpoint, diff)
            self.fleet.endpoint_changed(endpoint)
        return endpoint_dict(self.state, endpoint)

    def _delete_endpoint(self, id: str) -> None:
        endpoint = self.state.endpoints.get(id)
        if endpoint is None:
            raise _fail(f"Endpoint {id} not found")
        if endpoint.workers_min != 0 or endpoint.workers_max != 0:
            # "The endpoint's min and max workers must both be zero before you can delete it."
            # (docs sdks/graphql/manage-endpoints.mdx)
            raise _fail(
                "The endpoint's min and max workers must both be zero before you can delete it "
                f"(workersMin={endpoint.workers_min}, workersMax={endpoint.workers_max})"
            )
        self.fleet.endpoint_deleted(endpoint)
        del self.state.endpoints[id]
        releases.forget(self.state, id)
        self._release(endpoint.template_id)

    def check_gpu_ids(self, value: str) -> None:
        """Raise unless ``value`` is pool ids, optionally with ``-<GPU type id>`` exclusions.

        A pool must be one ``serverlessGpuPools`` lists, and a GPU type id is not a pool
        (ctl AGENTS.md: gpuIds "wants gpu *pool* ids ... not the gpu *type* ids"). An
        exclusion RunPod does not recognise is ignored silently, not rejected: "upstream
        accepts unrecognized exclusions silently, so a typo would otherwise produce a filter
        that does nothing" (RunPod's REST v2 OpenAPI, BaseEndpointGpuConfig.excludedTypes,
        docs api-reference-v2/openapi.json). So a wrong exclusion list quietly widens a GPU
        pin, which is exactly what a client must not rely on the server to catch.
        """
        tokens = [token.strip() for token in value.split(",")]
        if any(not token for token in tokens):
            raise _fail(f"Invalid gpuIds {value!r}: empty entry")
        pools = [t for t in tokens if not t.startswith("-")]
        known = [pool for pool, _ in self.pools]
        for pool in pools:
            if pool in known:
                continue
            owner = next((p for p, types in self.pools if pool in types), None)
            if owner is not None:
                raise _fail(
                    f"Invalid gpuIds: {pool!r} is a GPU type, not a pool; gpuIds takes pool ids "
                    f"(it is in {owner}) and '-<GPU type id>' exclusions"
                )
            raise _fail(f"Invalid gpuIds: unknown GPU pool {pool!r}; known pools: {', '.join(known)}")
        if not pools:
            raise _fail(f"Invalid gpuIds {value!r}: name at least one GPU pool")


# --- helpers ------------------------------------------------------------------------------


def _template_diff(old: Template, new: Template) -> list[tuple[str, Any, Any]]:
    """A bound template's change as the endpoint's release diff, in REST v2's names."""
    pairs = (
        ("image", old.image_name, new.image_name),
        ("env", old.env_dict(), new.env_dict()),
        ("disk", old.container_disk_in_gb, new.container_disk_in_gb),
        ("registry", old.container_registry_auth_id or None, new.container_registry_auth_id or None),
        ("args", old.docker_args, new.docker_args),
    )
    return [(field, a, b) for field, a, b in pairs if a != b]


def _endpoint_diff(old: Endpoint, new: Endpoint) -> list[tuple[str, Any, Any]]:
    pairs = (
        ("gpu.pools", old.gpu_ids, new.gpu_ids),
        ("templateId", old.template_id, new.template_id),
        ("networkVolumes", old.network_volume_ids, new.network_volume_ids),
        ("modelReferences", old.model_references, new.model_references),
        ("requestTTL", old.request_ttl, new.request_ttl),
    )
    return [(field, a, b) for field, a, b in pairs if a != b]


def _fail(message: str) -> Exception:
    from graphql import GraphQLError

    return GraphQLError(message)


def _root_fields(operation: Any) -> tuple[str, ...]:
    from graphql import FieldNode

    if operation is None:
        return ()
    return tuple(s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode))


def _is_query(operation: Any) -> bool:
    from graphql import OperationType

    return operation is not None and operation.operation is OperationType.QUERY


def _required_text(data: Mapping[str, Any], key: str, *, prefix: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{prefix}{key} is required")
    return value


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key)
    return default if value is None else str(value)


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    return default if value is None else bool(value)


def _int(data: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if value < minimum:
        raise _fail(f"{key} must be at least {minimum}, got {value}")
    return int(value)


def _env(items: Any) -> list[EnvVar]:
    env = []
    for item in items or ():
        if item is None:
            continue
        if not item["key"]:
            raise _fail("env keys must not be empty")
        env.append(EnvVar(key=item["key"], value=item["value"]))
    return env


def check_cuda_versions(value: str, field: str, *, single: bool = False) -> None:
    versions = [v.strip() for v in value.split(",")]
    if single and len(versions) != 1:
        raise _fail(f"{field} takes one CUDA version, got {value!r}")
    for version in versions:
        if version not in CUDA_VERSIONS:
            raise _fail(f"Invalid {field}: {version!r} is not a CUDA version ({', '.join(CUDA_VERSIONS)})")


def display_name(gpu: gpus.GpuType) -> str:
    """RunPod's display name: the type id without the vendor, e.g. "RTX 3090", "L4"."""
    return gpu.id.removeprefix("NVIDIA ").removeprefix("GeForce ")


def gpu_type_dict(gpu: gpus.GpuType) -> dict[str, Any]:
    pool = gpus.POOLS.get(gpu.pool)
    # Nominal memory: the pool's size, unless the card is bigger than its pool's label.
    memory = max(pool.memory_gb if pool else 0, math.ceil(gpu.memory_gib))
    return {
        "id": gpu.id,
        "displayName": display_name(gpu),
        "manufacturer": "Nvidia",
        "memoryInGb": memory,
        "maxGpuCount": 8,
        "cudaCores": None,
        "secureCloud": True,
        "communityCloud": True,
        # Pod prices are not part of the table the emulator knows; RunPod's are live data.
        "securePrice": None,
        "communityPrice": None,
        "oneMonthPrice": None,
        "threeMonthPrice": None,
        "oneWeekPrice": None,
        "communitySpotPrice": None,
        "secureSpotPrice": None,
        "lowestPrice": lambda _info, input=None: {
            "gpuName": display_name(gpu),
            "gpuTypeId": gpu.id,
            "minimumBidPrice": None,
            "uninterruptablePrice": None,
            "stockStatus": "High",
        },
    }
