"""The GraphQL control plane's endpoint resolvers: ``saveEndpoint`` (create and update),
``updateEndpointTemplate`` and ``deleteEndpoint``, with the rules they check (GPU pool ids,
CPU flavors, scaling, CUDA versions, model references, the one endpoint a serverless template
binds to) and the releases their changes make (``releases.py``).

:class:`EndpointResolvers` is a part of :class:`~rpdeploy.emulator.control.ControlPlane`,
which binds these methods onto the schema and runs them under the state lock. Sources are
tagged as in ``control.py``'s docstring.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rpdeploy.emulator import ids, releases
from rpdeploy.emulator.graphql_values import (
    bool_or,
    check_cuda_versions,
    endpoint_diff,
    env_vars,
    fail,
    int_or,
    required_text,
    text_or,
)
from rpdeploy.emulator.state import EmulatorState, Endpoint, Template, endpoint_dict
from rpdeploy.emulator.workers import DEFAULT_EXECUTION_TIMEOUT_MS, Fleet

SCALER_TYPES = ("QUEUE_DELAY", "REQUEST_COUNT")
ENDPOINT_TYPES = ("QB", "LB")
NAME_MIN, NAME_MAX = 3, 191
IDLE_TIMEOUT_RANGE = (1, 3600)
_CPU_INSTANCE = re.compile(r"^cpu\d[a-z]-\d+-\d+$")
#: A model reference as runpodctl documents it: "hugging face model url with a ref to cache on the
#: endpoint, e.g. https://huggingface.co/<org>/<model>:main" (ctl cmd/serverless/create.go).
_MODEL_REFERENCE = re.compile(
    r"^https://huggingface\.co/(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<ref>[\w./-]+))?$"
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class EndpointResolvers:
    """Endpoints and the templates they bind (a part of ``ControlPlane``)."""

    state: EmulatorState
    fleet: Fleet
    pools: list[tuple[str, list[str]]]

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
                raise fail(f"Endpoint {data['id']} not found")

        name = data["name"]
        if len(name.strip()) < NAME_MIN or len(name) > NAME_MAX:
            # name is `String!`, min 3 (ctl AGENTS.md); REST caps it at 191 (docs api-reference/openapi.json).
            raise fail(f"Endpoint name must be {NAME_MIN} to {NAME_MAX} characters long")
        if data.get("templateId") and data.get("template") is not None:
            # "RunPod rejects requests that contain both fields simultaneously." (flash serverless.py)
            raise fail("Give either templateId or template, not both")

        template_id, inline = self._endpoint_template(data, existing)
        # Nulled when left out (mcp: `input?.instanceIds ? join(',') : null`).
        instance_ids = [i for i in data.get("instanceIds") or () if i is not None]
        for instance in instance_ids:
            if not _CPU_INSTANCE.match(instance):
                # CPU is chosen by instanceIds like cpu3g-4-16 (ctl AGENTS.md).
                raise fail(f"Invalid instanceIds entry {instance!r}: expected a CPU flavor like cpu3g-4-16")
        gpu_ids = data.get("gpuIds")
        if instance_ids:
            gpu_ids = gpu_ids or ""
        else:
            if not gpu_ids:
                raise fail("gpuIds is required: a comma-separated list of GPU pool ids, e.g. AMPERE_24")
            self.check_gpu_ids(gpu_ids)

        # The schema fills these in when left out; an explicit null gets the same default.
        workers_min = int_or(data, "workersMin", 0, minimum=0)
        workers_max = int_or(data, "workersMax", 3, minimum=0)
        if workers_min > workers_max:
            raise fail(f"workersMin ({workers_min}) cannot be greater than workersMax ({workers_max})")
        idle_timeout = int_or(data, "idleTimeout", 10, minimum=IDLE_TIMEOUT_RANGE[0])
        if idle_timeout > IDLE_TIMEOUT_RANGE[1]:
            # 1-3600 (ctl cmd/serverless/create.go; docs api-reference/openapi.json)
            raise fail(f"idleTimeout must be between {IDLE_TIMEOUT_RANGE[0]} and {IDLE_TIMEOUT_RANGE[1]} seconds")
        scaler_type = data.get("scalerType") or "QUEUE_DELAY"
        if scaler_type not in SCALER_TYPES:
            raise fail(f"scalerType must be one of {', '.join(SCALER_TYPES)}, got {scaler_type!r}")
        # "the server rejects a scaler value below 1" (ctl cmd/serverless/create.go)
        scaler_value = int_or(data, "scalerValue", 4, minimum=1)
        gpu_count = int_or(data, "gpuCount", 1, minimum=1)

        def kept(key: str, attribute: str, default: Any) -> Any:
            """A field an update leaves as it is when the input does not carry it."""
            if key in data:
                return default if data[key] is None else data[key]
            return getattr(existing, attribute) if existing is not None else default

        execution_timeout = kept("executionTimeoutMs", "execution_timeout_ms", DEFAULT_EXECUTION_TIMEOUT_MS)
        if execution_timeout < 0:
            raise fail(f"executionTimeoutMs must be at least 0, got {execution_timeout}")
        pfb_target = kept("workersPFBTarget", "workers_pfb_target", 0)
        if pfb_target < 0:
            raise fail(f"workersPFBTarget must be at least 0, got {pfb_target}")
        endpoint_type = kept("type", "type", "QB")
        if endpoint_type not in ENDPOINT_TYPES:
            raise fail(f"type must be one of {', '.join(ENDPOINT_TYPES)}, got {endpoint_type!r}")
        allowed_cuda = kept("allowedCudaVersions", "allowed_cuda_versions", None)
        if allowed_cuda:
            check_cuda_versions(allowed_cuda, "allowedCudaVersions")
        min_cuda = kept("minCudaVersion", "min_cuda_version", None)
        if min_cuda:
            check_cuda_versions(min_cuda, "minCudaVersion", single=True)
        volume_id = kept("networkVolumeId", "network_volume_id", None)
        if volume_id and volume_id not in self.state.network_volumes:
            raise fail(f"Network volume {volume_id} not found")
        if "networkVolumeIds" in data:
            volume_ids = [item["networkVolumeId"] for item in data["networkVolumeIds"] or () if item is not None]
        else:
            volume_ids = list(existing.network_volume_ids) if existing is not None else []
        for vid in volume_ids:
            if vid not in self.state.network_volumes:
                raise fail(f"Network volume {vid} not found")
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
                releases.record(self.state, endpoint, endpoint_diff(existing, endpoint))
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
            required_text(inline, "imageName", prefix="template.")
            if self.state.template_by_name(inline["name"]):
                raise fail(f"Template name must be unique: a template named {inline['name']!r} already exists")
            return "", inline
        raise fail("templateId is required: create a serverless template with saveTemplate first")

    def _check_bindable(self, template_id: str, endpoint: Endpoint | None) -> None:
        template = self.state.templates.get(template_id)
        if template is None:
            raise fail(f"Template {template_id} not found")
        if not template.is_serverless:
            raise fail(f"Template {template_id} is not a serverless template (isServerless: false)")
        bound = self.state.endpoint_bound_to(template_id)
        if bound is not None and (endpoint is None or bound.id != endpoint.id):
            # "Each Serverless template can only be bound to one endpoint at a time." (docs
            # runpodctl/reference/runpodctl-serverless.mdx)
            raise fail(
                f"Template {template_id} is already bound to endpoint {bound.id}: each serverless template "
                "can only be bound to one endpoint at a time"
            )

    def _create_inline_template(self, endpoint_name: str, inline: Mapping[str, Any]) -> str:
        template = Template(
            id=ids.template_id(),
            name=inline["name"],
            image_name=inline["imageName"],
            docker_args=inline["dockerArgs"],
            container_disk_in_gb=int_or(inline, "containerDiskInGb", 50, minimum=1),
            volume_in_gb=0,
            volume_mount_path="/workspace",
            ports=text_or(inline, "ports", ""),
            env=env_vars(inline["env"]),
            is_serverless=True,
            is_public=False,
            readme=text_or(inline, "readme", ""),
            start_ssh=bool_or(inline, "startSsh", True),
            start_jupyter=bool_or(inline, "startJupyter", False),
            start_script=text_or(inline, "startScript", ""),
            advanced_start=bool_or(inline, "advancedStart", False),
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
            raise fail("input is required: {endpointId, templateId}")
        endpoint = self.state.endpoints.get(input["endpointId"])
        if endpoint is None:
            raise fail(f"Endpoint {input['endpointId']} not found")
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
            raise fail(f"Endpoint {id} not found")
        if endpoint.workers_min != 0 or endpoint.workers_max != 0:
            # "The endpoint's min and max workers must both be zero before you can delete it."
            # (docs sdks/graphql/manage-endpoints.mdx)
            raise fail(
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
            raise fail(f"Invalid gpuIds {value!r}: empty entry")
        pools = [t for t in tokens if not t.startswith("-")]
        known = [pool for pool, _ in self.pools]
        for pool in pools:
            if pool in known:
                continue
            owner = next((p for p, types in self.pools if pool in types), None)
            if owner is not None:
                raise fail(
                    f"Invalid gpuIds: {pool!r} is a GPU type, not a pool; gpuIds takes pool ids "
                    f"(it is in {owner}) and '-<GPU type id>' exclusions"
                )
            raise fail(f"Invalid gpuIds: unknown GPU pool {pool!r}; known pools: {', '.join(known)}")
        if not pools:
            raise fail(f"Invalid gpuIds {value!r}: name at least one GPU pool")

    # --- what the resolvers above share ----------------------------------------------------

    def _release(self, template_id: str) -> None:
        """Start the deletion delay of a template an endpoint just stopped using."""
        template = self.state.templates.get(template_id)
        if template is not None:
            template.released_at = self.state.clock()

    def _model_references(self, references: Sequence[str], *, cpu: bool) -> list[str]:
        """Checked, and each ref resolved to a commit as RunPod answers them (ctl e2e/cli_test.go:
        ``:main`` comes back as a commit sha)."""
        if references and cpu:
            # ctl cmd/serverless/create.go: "--model-reference is only supported with --compute-type GPU".
            raise fail("modelReferences are only supported on GPU endpoints")
        if len(references) > 1:
            # "Each endpoint is currently limited to one cached model at a time." (docs
            # serverless/endpoints/model-caching.mdx; runpodctl's flag is repeatable, what RunPod
            # does with two is not known: the emulator holds rpdeploy to the documented limit.)
            raise fail("Each endpoint is currently limited to one cached model at a time")
        resolved = []
        for reference in references:
            match = _MODEL_REFERENCE.match(reference)
            if match is None:
                raise fail(
                    f"Invalid model reference {reference!r}: expected https://huggingface.co/<org>/<model>:<ref>"
                )
            ref = match.group("ref") or "main"
            commit = ref if _COMMIT.match(ref) else ids.commit_of(match.group("repo"), ref)
            resolved.append(f"https://huggingface.co/{match.group('repo')}:{commit}")
        return resolved
