"""The GraphQL control plane's template, registry-credential and account-secret resolvers.

``saveTemplate``/``deleteTemplate`` (with RunPod's delay before a released template can be
deleted), ``saveRegistryAuth``/``updateRegistryAuth``/``deleteRegistryAuth`` and
``secretCreate``/``secretValueUpdate``/``secretDelete``. :class:`TemplateResolvers` is a part
of :class:`~rpdeploy.emulator.control.ControlPlane`, which binds these methods onto the schema
and runs them under the state lock. Sources are tagged as in ``control.py``'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpdeploy.emulator import faults as fault_names
from rpdeploy.emulator import ids, releases
from rpdeploy.emulator.faults import Faults
from rpdeploy.emulator.graphql_values import (
    bool_or,
    env_vars,
    fail,
    required_text,
    template_diff,
    text_or,
)
from rpdeploy.emulator.state import AccountSecret, EmulatorState, RegistryAuth, Template, secret_dict, template_dict
from rpdeploy.emulator.workers import Fleet

#: "It can take up to 2 minutes to delete a template after its most recent use by a Pod or
#: Serverless endpoint" (docs sdks/graphql/manage-pod-templates.mdx): the emulator takes the
#: whole 2 minutes unless told otherwise (``template_delete_delay``, or the fault switch).
TEMPLATE_DELETE_DELAY = 120.0


class TemplateResolvers:
    """Templates, registry credentials and account secrets (a part of ``ControlPlane``)."""

    state: EmulatorState
    fleet: Fleet
    faults: Faults
    template_delete_delay: float

    def delete_delay(self) -> float:
        """Seconds a template stays "in use" after its last endpoint let it go."""
        switch = self.faults.peek(fault_names.TEMPLATE_DELETE_DELAY)
        if switch is not None and switch.seconds is not None:
            return switch.seconds
        return self.template_delete_delay

    # --- templates ------------------------------------------------------------------------

    def _save_template(self, input: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if input is None:
            raise fail("input is required")
        data = dict(input)  # name, containerDiskInGb, dockerArgs, env, volumeInGb: non-null in the schema
        existing: Template | None = None
        if data.get("id") is not None:
            existing = self.state.templates.get(data["id"])
            if existing is None:
                raise fail(f"Template {data['id']} not found")
        name = required_text(data, "name")
        # Nullable in the schema, but a required field in the docs (manage-pod-templates.mdx).
        image = required_text(data, "imageName")
        clash = self.state.template_by_name(name)
        if clash is not None and clash is not existing:
            # "Template names must be unique. Creating a template with a name that already
            # exists will fail." (docs manage-pod-templates.mdx)
            raise fail(f"Template name must be unique: a template named {name!r} already exists")
        is_serverless = bool(data.get("isServerless") or False)
        if data["containerDiskInGb"] < 1:
            raise fail(f"containerDiskInGb must be at least 1, got {data['containerDiskInGb']}")
        volume = data["volumeInGb"]
        if volume < 0 or (is_serverless and volume != 0):
            # "Set to 0 for Serverless templates" (docs manage-pod-templates.mdx)
            raise fail("Serverless templates do not support volume disks: volumeInGb must be 0")
        auth_id = data.get("containerRegistryAuthId") or ""
        if auth_id and auth_id not in self.state.registry_auths:
            raise fail(f"Container registry auth {auth_id} not found")
        env = env_vars(data["env"])
        if existing is not None and not is_serverless and self.state.endpoint_bound_to(existing.id):
            raise fail("Template is in use by a serverless endpoint and must stay a serverless template")
        template = Template(
            id=existing.id if existing else ids.template_id(),
            name=name,
            image_name=image,
            docker_args=data["dockerArgs"],
            container_disk_in_gb=int(data["containerDiskInGb"]),
            volume_in_gb=int(volume),
            volume_mount_path=text_or(data, "volumeMountPath", "/workspace"),
            ports=text_or(data, "ports", ""),
            env=env,
            is_serverless=is_serverless,
            is_public=bool(data.get("isPublic") or False),
            readme=text_or(data, "readme", ""),
            start_ssh=bool_or(data, "startSsh", True),
            start_jupyter=bool_or(data, "startJupyter", False),
            start_script=text_or(data, "startScript", ""),
            advanced_start=bool_or(data, "advancedStart", False),
            container_registry_auth_id=auth_id,
            category=text_or(data, "category", "NVIDIA"),
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
                releases.record(self.state, bound, template_diff(existing, template))
        self.state.templates[template.id] = template
        if bound is not None:
            self.fleet.endpoint_changed(bound)  # replacements start now (emulator/rolling.py)
        return template_dict(self.state, template)

    def _delete_template(self, templateName: str) -> None:
        # By name (docs manage-pod-templates.mdx: `deleteTemplate(templateName: ...)`).
        template = self.state.template_by_name(templateName)
        if template is None:
            raise fail(f"Template {templateName!r} not found")
        bound = self.state.endpoint_bound_to(template.id)
        if bound is not None:
            # "The template must not be in use by any Pods or Serverless endpoints." (docs)
            raise fail(f"Template {templateName!r} is in use by serverless endpoint {bound.id} and cannot be deleted")
        if template.released_at is not None:
            left = template.released_at + self.delete_delay() - self.state.clock()
            if left > 0:
                # "It can take up to 2 minutes to delete a template after its most recent use by
                # a Pod or Serverless endpoint." (docs manage-pod-templates.mdx)
                raise fail(
                    f"Template {templateName!r} is still in use: a template can take up to 2 minutes to be "
                    "deleted after its most recent use by a Pod or Serverless endpoint"
                )
        del self.state.templates[template.id]

    # --- registry credentials -------------------------------------------------------------

    def _save_registry_auth(self, input: Mapping[str, Any]) -> dict[str, Any]:
        name = required_text(input, "name")
        username = required_text(input, "username")
        password = required_text(input, "password")
        if any(auth.name == name for auth in self.state.registry_auths.values()):
            raise fail(f"Container registry auth name must be unique: {name!r} already exists")
        auth = RegistryAuth(id=ids.registry_auth_id(), name=name, username=username, password=password)
        self.state.registry_auths[auth.id] = auth
        return {"id": auth.id, "name": auth.name}

    def _update_registry_auth(self, input: Mapping[str, Any]) -> dict[str, Any]:
        auth = self.state.registry_auths.get(input["id"])
        if auth is None:
            raise fail(f"Container registry auth {input['id']} not found")
        auth.username = required_text(input, "username")
        auth.password = required_text(input, "password")
        return {"id": auth.id, "name": auth.name}

    def _delete_registry_auth(self, registryAuthId: str) -> None:
        if self.state.registry_auths.pop(registryAuthId, None) is None:
            raise fail(f"Container registry auth {registryAuthId} not found")
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
        name = required_text(input, "name")
        value = required_text(input, "value")
        if any(secret.name == name for secret in self.state.secrets.values()):
            # "Secret Name: A unique identifier for your secret" (docs secrets.mdx); wording ours.
            raise fail(f"Secret name must be unique: a secret named {name!r} already exists")
        secret = AccountSecret(id=ids.secret_id(), name=name, value=value, description=input.get("description"))
        self.state.secrets[secret.id] = secret
        return secret_dict(secret)

    def _secret_value_update(self, input: Mapping[str, Any]) -> dict[str, Any]:
        secret = self.state.secrets.get(input["id"])
        if secret is None:
            raise fail(f"Secret {input['id']} not found")
        secret.value = required_text(input, "value")
        secret.updated_at = ids.timestamp()
        return secret_dict(secret)

    def _secret_delete(self, id: str) -> None:
        # Not refused while templates reference it: "this will cause those deployments to fail" (docs).
        if self.state.secrets.pop(id, None) is None:
            raise fail(f"Secret {id} not found")
