"""The GraphQL operations rpdeploy sends: fixed documents, every value a variable.

Values never go into the query text: a quote or a newline in an env value would otherwise
break (or rewrite) the query, which is exactly the bug string-built queries have. Field
selections list everything we echo back on updates, because ``saveTemplate`` and
``saveEndpoint`` replace the whole object. Every document here is validated against
RunPod's schema (``schema.graphql``) by ``tests/test_schema_contract.py``, with the
variables rpdeploy builds.
"""

from __future__ import annotations

TEMPLATE_FIELDS = """
    id name imageName dockerArgs containerDiskInGb volumeInGb volumeMountPath ports
    env { key value } isServerless isPublic readme startSsh startJupyter containerRegistryAuthId
"""

ENDPOINT_FIELDS = """
    id name templateId gpuIds gpuCount idleTimeout scalerType scalerValue workersMin workersMax
    workersPFBTarget locations networkVolumeId networkVolumeIds { networkVolumeId dataCenterId }
    executionTimeoutMs allowedCudaVersions minCudaVersion flashBootType modelReferences compliance
    flashEnvironmentId type version createdAt instanceIds requestTTL
"""

MYSELF = """
query Myself {
  myself { id email }
}
"""

GPU_POOLS = """
query ServerlessGpuPools {
  serverlessGpuPools { id gpuTypeIds }
}
"""

LIST_TEMPLATES = f"""
query PodTemplates {{
  myself {{ podTemplates {{ {TEMPLATE_FIELDS} }} }}
}}
"""

LIST_ENDPOINTS = f"""
query Endpoints {{
  myself {{ endpoints {{ {ENDPOINT_FIELDS} }} }}
}}
"""

GET_ENDPOINT = f"""
query Endpoint($id: String!) {{
  myself {{ endpoint(id: $id) {{ {ENDPOINT_FIELDS} }} }}
}}
"""

# How far a release has rolled out: the endpoint's version, and the version each worker runs
# (Endpoint.pods is the endpoint's workers; Pod.slsVersion its version, see rpdeploy/runpod/rollout.py).
ENDPOINT_ROLLOUT = """
query EndpointRollout($id: String!) {
  myself { endpoint(id: $id) { id version pods { id desiredStatus slsVersion } } }
}
"""

SAVE_TEMPLATE = f"""
mutation SaveTemplate($input: SaveTemplateInput) {{
  saveTemplate(input: $input) {{ {TEMPLATE_FIELDS} }}
}}
"""

DELETE_TEMPLATE = """
mutation DeleteTemplate($templateName: String!) {
  deleteTemplate(templateName: $templateName)
}
"""

SAVE_ENDPOINT = f"""
mutation SaveEndpoint($input: EndpointInput!) {{
  saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }}
}}
"""

# saveEndpoint's templateId acts only on create; an endpoint moves to another template with
# this (runpod-python mutations/endpoints.py, runpodctl internal/api/endpoints.go).
UPDATE_ENDPOINT_TEMPLATE = f"""
mutation UpdateEndpointTemplate($input: UpdateEndpointTemplateInput) {{
  updateEndpointTemplate(input: $input) {{ {ENDPOINT_FIELDS} }}
}}
"""

DELETE_ENDPOINT = """
mutation DeleteEndpoint($id: String!) {
  deleteEndpoint(id: $id)
}
"""

LIST_REGISTRY_AUTHS = """
query RegistryCreds {
  myself { containerRegistryCreds { id name } }
}
"""

SAVE_REGISTRY_AUTH = """
mutation SaveRegistryAuth($input: SaveRegistryAuthInput!) {
  saveRegistryAuth(input: $input) { id name }
}
"""

UPDATE_REGISTRY_AUTH = """
mutation UpdateRegistryAuth($input: UpdateRegistryAuthInput!) {
  updateRegistryAuth(input: $input) { id name }
}
"""

# Account secrets: RunPod never returns a value (the Secret type has none), so these select
# the id and name only. secretCreate: docs sdks/graphql/manage-pod-templates.mdx; the value
# update exists only in RunPod's own Pulumi provider (provider/secret.go), undocumented.
LIST_SECRETS = """
query Secrets {
  myself { secrets { id name } }
}
"""

SECRET_CREATE = """
mutation SecretCreate($input: SecretCreateInput!) {
  secretCreate(input: $input) { id name }
}
"""

SECRET_VALUE_UPDATE = """
mutation SecretValueUpdate($input: SecretValueUpdateInput!) {
  secretValueUpdate(input: $input) { id name }
}
"""
