#!/usr/bin/env python3
"""Write rpdeploy/runpod/schema.graphql: the part of RunPod's GraphQL schema rpdeploy uses.

RunPod disables introspection, so there is no official SDL to copy. The closest thing is
``models_gen.go`` in runpod/pulumi-runpod-native: Go types that gqlgenc generated from
RunPod's live schema in September 2025. This script turns the types listed in ``OBJECTS``
and ``INPUTS`` below into SDL, then adds what appeared after September 2025 (``ADDED``)
and the root operations (``QUERY``/``MUTATION``), each with the source that shows it.

How Go becomes GraphQL (gqlgen's model generator): a field tagged ``omitempty`` is
nullable, one without it is non-null; ``int``/``float64``/``bool``/``string`` are
``Int``/``Float``/``Boolean``/``String`` (gqlgen maps ``ID`` to ``string`` too, but every
client passes ids as ``String!`` variables, so ``String`` is right); ``[]*T`` is a list of
nullable ``T``, ``[]T`` a list of non-null ``T``; ``type X string`` with a const block is an
enum. Fields whose type is outside the listed types are left out (the account has far more
than rpdeploy needs); field arguments are not in the Go models and come from the clients.

    python scripts/runpod_schema.py            # rewrite the committed SDL
    python scripts/runpod_schema.py --check    # exit 1 if it is out of date

The inputs are read from the bare git mirrors under /work/.mirror (``--mirror`` to change).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "rpdeploy" / "runpod" / "schema.graphql"

# (tag, repository, commit, what it is)
SOURCES = (
    ("models", "runpod/pulumi-runpod-native", "82738bd55413d06c53ea3c42e006c00f21045740",
     "provider/graphql/generated/models_gen.go (gqlgenc, RunPod's schema, 2025-09-23)"),
    ("ctl", "runpod/runpodctl", "2e2df89e1fcb6a16632017a14385552005913732",
     "internal/api/{endpoints,gpu,templates}.go, api/endpoint.go, AGENTS.md (2026-07-23)"),
    ("py", "runpod/runpod-python", "07fc6e2b02b6a97a0e94fbdcf53c66949c1a6164",
     "runpod/api/{queries,mutations}/*.py (release 1.12.0, 2026-08-10)"),
    ("flash", "runpod/flash", "757420db1d18e98dc05d87fdde793e131bda2540",
     "src/runpod_flash/core/api/runpod.py, core/resources/serverless.py (2026-08-06)"),
    ("mcp", "runpod/runpod-mcp", "000949177665c47cdecfa40c83f398d0e3ab88ef",
     "src/_shared/endpoint-gpu-ids.ts, src/tools/endpoint-gpus.ts (measured against the live API)"),
    ("docs", "runpod/docs", "a900806e253c4f8c16da27d1a4370e72456da4cb",
     "sdks/graphql/manage-pod-templates.mdx (\"Create a secret\", \"Delete a secret\"; 2026-08-20)"),
    ("secret", "runpod/pulumi-runpod-native", "8b04ece45c8db86f02edd5de3e9888bd30e9d06b",
     "provider/secret.go (RunPod's provider, branch 001-update-this-pulumi, 2025-09-29; unmerged)"),
)  # fmt: skip
MODELS_PATH = "provider/graphql/generated/models_gen.go"

ALL = None  # every field of the Go type (pruned to types listed here)

#: Object types and the fields kept (ALL, or a list for the large ones).
OBJECTS: dict[str, list[str] | None] = {
    "User": [
        "id", "email", "pubKey", "clientBalance", "currentSpendPerHr", "spendLimit", "endpoints", "endpoint",
        "podTemplates", "containerRegistryCreds", "networkVolumes", "serverlessDiscount", "secrets",
    ],
    "Endpoint": ALL,
    "PodTemplate": ALL,
    "EnvironmentVariable": ALL,
    "PortConfig": ALL,
    "NetworkVolume": ALL,
    "ContainerRegistryAuth": ALL,
    "Discount": ALL,
    "GpuType": ALL,
    "LowestPrice": ALL,
    "DataCenter": ALL,
    "GpuAvailability": ALL,
    # An endpoint's workers are Pods (models_gen.go Endpoint.pods); slsVersion (Int, nullable) is read as
    # the endpoint version a worker runs, to see a release roll out. No client in RunPod's repos selects it
    # yet: its meaning is rpdeploy's reading, and the deploy says what it proved with it.
    "Pod": ["id", "desiredStatus", "slsVersion"],
    # Account secrets: metadata only, the type has no value field (values are write-only).
    "Secret": ALL,
}  # fmt: skip

INPUTS: dict[str, list[str] | None] = {
    "SaveTemplateInput": ALL,
    "EnvironmentVariableInput": ALL,
    "PortConfigInput": ALL,
    "EndpointInput": ALL,
    "EndpointTemplateInput": ALL,
    "UpdateEndpointTemplateInput": ALL,
    "SaveRegistryAuthInput": ALL,
    "UpdateRegistryAuthInput": ALL,
    "GpuTypeFilter": ALL,
    "GpuLowestPriceInput": ALL,
    "SecretCreateInput": ALL,
    "SecretValueUpdateInput": ALL,
}

#: Field arguments (not in the Go models), from the operations clients send.
ARGUMENTS: dict[tuple[str, str], tuple[str, str]] = {
    ("User", "endpoint"): ("(id: String!)", "flash getEndpoint($id: String!)"),
    ("GpuType", "lowestPrice"): ("(input: GpuLowestPriceInput)", "flash ServerlessGpuTypes($lowestPriceInput: ...)"),
}
#: Input defaults RunPod's schema declares (they materialise when a field is omitted).
DEFAULTS: dict[tuple[str, str], tuple[str, str]] = {
    (type_name, field): (value, "mcp endpoint-gpu-ids.ts: the input defaults a full-replace update resets to")
    for type_name, field, value in (
        ("EndpointInput", "idleTimeout", "10"),
        ("EndpointInput", "scalerValue", "4"),
        ("EndpointInput", "workersMax", "3"),
        ("EndpointInput", "workersMin", "0"),
        ("EndpointInput", "gpuCount", "1"),
        ("EndpointInput", "scalerType", '"QUEUE_DELAY"'),
    )
}

#: Fields added after 2025-09: (type, field, GraphQL type, source).
ADDED: list[tuple[str, str, str, str]] = [
    ("Endpoint", "flashBootType", "FlashBootType", "py mutations/endpoints.py; ctl internal/api/endpoints.go; flash"),
    ("Endpoint", "networkVolumeIds", "[NetworkVolumeIds]", "ctl internal/api/endpoints.go; flash; mcp"),
    ("Endpoint", "minCudaVersion", "String", "ctl internal/api/endpoints.go; flash; mcp"),
    ("Endpoint", "modelReferences", "[String]", "ctl internal/api/endpoints.go, api/endpoint.go"),
    ("Endpoint", "flashEnvironmentId", "String", "flash core/api/runpod.py"),
    ("Endpoint", "compliance", "[Compliance]", "mcp endpoint-gpu-ids.ts (reads as [], never null)"),
    ("Endpoint", "requestTTL", "Int", "mcp endpoint-gpu-ids.ts"),
    ("EndpointInput", "flashBootType", "FlashBootType", "py mutations/endpoints.py (unquoted FLASHBOOT); ctl"),
    ("EndpointInput", "networkVolumeIds", "[NetworkVolumeIdsInput]", "ctl internal/api/endpoints.go; flash; mcp"),
    ("EndpointInput", "minCudaVersion", "String", "ctl internal/api/endpoints.go; flash"),
    ("EndpointInput", "modelReferences", "[String]", "ctl internal/api/endpoints.go (UpdateEndpointModels)"),
    ("EndpointInput", "flashEnvironmentId", "String", "flash core/resources/serverless.py"),
    ("EndpointInput", "compliance", "[Compliance]", "mcp endpoint-gpu-ids.ts"),
    ("EndpointInput", "requestTTL", "Int", "mcp endpoint-gpu-ids.ts"),
]

#: Types added after 2025-09 (the names RunPod uses where a source shows them).
ADDED_TYPES = '''
"""FlashBoot mode; an enum, not a bool (ctl AGENTS.md). PRIORITY_FLASHBOOT: runpod-plugins-official
runpod-migrate/reference/graphql-to-v2.md ("same values: OFF/FLASHBOOT/PRIORITY_FLASHBOOT")."""
enum FlashBootType {
  OFF
  FLASHBOOT
  PRIORITY_FLASHBOOT
}

"""Read shape of a multi-region network volume; the type name is RunPod's (mcp endpoint-gpus.ts)."""
type NetworkVolumeIds {
  networkVolumeId: String
  dataCenterId: String
}

"""Write shape: the id only; RunPod rejects dataCenterId here (mcp endpoint-gpus.ts)."""
input NetworkVolumeIdsInput {
  networkVolumeId: String!
}

"""A serverless GPU pool and its GPU type ids (ctl internal/api/gpu.go; the type name is runpodctl's)."""
type ServerlessGpuPool {
  id: String
  gpuTypeIds: [String]
}
'''

QUERY = """
type Query {
  "py queries/user.py; ctl internal/api/gpu.go (GetUser). Null without an API key."
  myself: User
  "flash core/api/runpod.py getTemplate($id: String!)"
  podTemplate(id: String!): PodTemplate
  "py queries/gpus.py; flash ServerlessGpuTypes($gpuTypesInput: GpuTypeFilter)"
  gpuTypes(input: GpuTypeFilter): [GpuType]
  "ctl internal/api/gpu.go ListServerlessGpuPools"
  serverlessGpuPools: [ServerlessGpuPool]
  "ctl internal/api/gpu.go ListDataCenters"
  dataCenters: [DataCenter]
}
"""

MUTATION = """
type Mutation {
  "flash and ctl declare $input: SaveTemplateInput (nullable), so the argument is nullable"
  saveTemplate(input: SaveTemplateInput): PodTemplate
  "models client_gen.go DeleteTemplate($templateName: String!) -> *string"
  deleteTemplate(templateName: String!): String
  "ctl, flash, mcp: saveEndpoint($input: EndpointInput!)"
  saveEndpoint(input: EndpointInput!): Endpoint
  "models client_gen.go DeleteEndpoint($id: String!) -> *string; flash"
  deleteEndpoint(id: String!): String
  "ctl internal/api/endpoints.go declares $input: UpdateEndpointTemplateInput (nullable)"
  updateEndpointTemplate(input: UpdateEndpointTemplateInput): Endpoint
  "py mutations/container_register_auth.py (inline literals; argument nullability unknown)"
  saveRegistryAuth(input: SaveRegistryAuthInput!): ContainerRegistryAuth
  "py mutations/container_register_auth.py"
  updateRegistryAuth(input: UpdateRegistryAuthInput!): ContainerRegistryAuth
  "py mutations/container_register_auth.py (a scalar, like deleteEndpoint)"
  deleteRegistryAuth(registryAuthId: String!): String
  "docs manage-pod-templates.mdx secretCreate(input: {name, value}); secret SecretCreate($input: SecretCreateInput!)"
  secretCreate(input: SecretCreateInput!): Secret
  "secret SecretValueUpdate($input: SecretValueUpdateInput!) (not in the docs: RunPod's own provider only)"
  secretValueUpdate(input: SecretValueUpdateInput!): Secret
  "docs manage-pod-templates.mdx secretDelete(id: ...) answers null (a scalar); secret DeleteSecret($id: ID!)"
  secretDelete(id: ID!): String
}
"""

GO_SCALARS = {"string": "String", "int": "Int", "float64": "Float", "bool": "Boolean"}


@dataclass(frozen=True)
class GoField:
    name: str
    go_type: str
    nullable: bool


def parse_models(text: str) -> tuple[dict[str, list[GoField]], dict[str, list[str]]]:
    """Structs (field lists) and enums (values) of a gqlgen models file."""
    structs: dict[str, list[GoField]] = {}
    for match in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.M | re.S):
        fields = []
        for line in match.group(2).splitlines():
            field = re.match(r'\s*\w+\s+(\S+)\s+`json:"(\w+)(,omitempty)?"`', line)
            if field:
                fields.append(GoField(field.group(2), field.group(1), field.group(3) is not None))
        structs[match.group(1)] = fields
    enums: dict[str, list[str]] = {}
    for match in re.finditer(r"^type (\w+) string\n\nconst \(\n(.*?)^\)", text, re.M | re.S):
        enums[match.group(1)] = re.findall(r'=\s*"(\w+)"', match.group(2))
    return structs, enums


def graphql_type(go_type: str, nullable: bool) -> str:
    if go_type.startswith("[]"):
        inner = go_type[2:]
        element = graphql_type(inner.lstrip("*"), nullable=inner.startswith("*"))
        text = f"[{element}]"
    else:
        base = go_type.lstrip("*")
        text = GO_SCALARS.get(base, base)
    return text if nullable else f"{text}!"


def named(type_text: str) -> str:
    return type_text.strip("[]!")


def render(models: str) -> str:
    structs, enums = parse_models(models)
    added_types = set(re.findall(r"^(?:type|input|enum) (\w+)", ADDED_TYPES, re.M))
    known = set(OBJECTS) | set(INPUTS) | added_types | set(GO_SCALARS.values())
    used_enums: set[str] = set()

    def fields_of(type_name: str, wanted: list[str] | None) -> list[str]:
        go_fields = {f.name: f for f in structs[type_name]}
        names = list(go_fields) if wanted is None else wanted
        lines = []
        for name in names:
            if name not in go_fields:
                raise SystemExit(f"{type_name}.{name} is not in models_gen.go")
            field = go_fields[name]
            gql = graphql_type(field.go_type, field.nullable)
            base = named(gql)
            if base in enums:
                used_enums.add(base)
            elif base not in known:
                continue  # a type outside this subset
            args, source = ARGUMENTS.get((type_name, name), ("", ""))
            default = DEFAULTS.get((type_name, name))
            if default:
                source = default[1]
            suffix = f" = {default[0]}" if default else ""
            described = f'  "{source}"\n' if source else ""
            lines.append(f"{described}  {name}{args}: {gql}{suffix}")
        for owner, name, gql, source in ADDED:
            if owner == type_name:
                if named(gql) in enums:
                    used_enums.add(named(gql))
                lines.append(f'  "added after 2025-09: {source}"\n  {name}: {gql}')
        return lines

    blocks = []
    for kind, table in (("type", OBJECTS), ("input", INPUTS)):
        for type_name, wanted in table.items():
            body = "\n".join(fields_of(type_name, wanted))
            blocks.append(f"{kind} {type_name} {{\n{body}\n}}")
    for name in sorted(used_enums):
        values = "\n".join(f"  {value}" for value in enums[name])
        blocks.append(f"enum {name} {{\n{values}\n}}")
    header = [
        "# RunPod's GraphQL schema: the part rpdeploy and its emulator use. GENERATED by",
        "# scripts/runpod_schema.py; edit that script, not this file. The emulator serves exactly",
        "# this schema and tests/test_schema_contract.py validates every operation rpdeploy sends",
        "# against it.",
        "#",
        "# RunPod disables introspection; the types, their fields, required/optional and scalars",
        "# come from Go types gqlgenc generated from the live schema, and what is newer from",
        "# RunPod's own clients:",
    ]
    for tag, repo, commit, what in SOURCES:
        header.append(f"#   {tag:<6} {repo}@{commit}")
        header.append(f"#          {what}")
    header += [
        "# A field whose type is not listed here is left out; the string above a field names its source.",
        "",
        "schema {\n  query: Query\n  mutation: Mutation\n}",
    ]
    return "\n".join(header) + "\n" + QUERY + MUTATION + ADDED_TYPES + "\n" + "\n\n".join(blocks) + "\n"


def read_models(mirror: Path) -> str:
    repo = mirror / "runpod+pulumi-runpod-native" / "repo"
    commit = SOURCES[0][2]
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{MODELS_PATH}"], check=True, capture_output=True, text=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"), help="folder of the bare git mirrors")
    parser.add_argument("--check", action="store_true", help="fail if the committed SDL differs")
    args = parser.parse_args()
    text = render(read_models(args.mirror))
    from graphql import build_schema

    build_schema(text)  # must be a valid schema
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/runpod_schema.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
