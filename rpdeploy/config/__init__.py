"""deploy.yaml: the pydantic model and a loader that points at ``deploy.yaml:LINE:COL``.

Unknown keys are errors (a typo must never become a silent default), closed sets are enums
whose errors list the valid values, and secrets are references (an env var name or a file),
never values. :func:`load_config` reports *every* problem at once, each with its line,
column and field path, before anything slow runs.

Owns nothing itself: the modules below do, and this package re-exports their names, so
``from rpdeploy.config import Config`` stays the way the rest of rpdeploy reads deploy.yaml.

* ``refs``: the base model, secret references and the field checks shared by the sections.
* ``sections``: ``model:``, ``image:``, ``endpoint:``, ``runpod:`` and their enums.
* ``backend``: ``backend:`` (with its integration test) and ``smoke_test:``.
* ``document``: :class:`Config`, the whole file.
* ``load``: parsing, the line/column map, the rules across fields, the JSON Schema.
"""

from __future__ import annotations

from rpdeploy.config.backend import (
    BackendConfig,
    BackendEnvNames,
    BackendMode,
    HttpMethod,
    IntegrationExpect,
    IntegrationTestConfig,
    SendFrom,
    SmokeTestConfig,
)
from rpdeploy.config.document import DEFAULT_CONFIG, Config, MethodField
from rpdeploy.config.load import config_json_schema, field_location, load_config, parse_config
from rpdeploy.config.refs import (
    ApiKeyRef,
    SecretRef,
    check_display_name,
    check_project_path,
    check_service_name,
    token_kind,
)
from rpdeploy.config.sections import (
    DEFAULT_API_URL,
    DEFAULT_ENDPOINT_URL,
    MANAGED_ENV,
    RUNPOD_API_ENV,
    RUNPOD_MODEL_CACHE,
    Dtype,
    EndpointConfig,
    EnvValue,
    HfTokenDelivery,
    ImageConfig,
    KvCacheDtype,
    ModelConfig,
    Quantization,
    RegistryCredentials,
    RunpodApi,
    RunpodConfig,
    ScalerType,
    TagPolicy,
    WeightsSource,
)

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_CONFIG",
    "DEFAULT_ENDPOINT_URL",
    "MANAGED_ENV",
    "RUNPOD_API_ENV",
    "RUNPOD_MODEL_CACHE",
    "ApiKeyRef",
    "BackendConfig",
    "BackendEnvNames",
    "BackendMode",
    "Config",
    "Dtype",
    "EndpointConfig",
    "EnvValue",
    "HfTokenDelivery",
    "HttpMethod",
    "ImageConfig",
    "IntegrationExpect",
    "IntegrationTestConfig",
    "KvCacheDtype",
    "MethodField",
    "ModelConfig",
    "Quantization",
    "RegistryCredentials",
    "RunpodApi",
    "RunpodConfig",
    "ScalerType",
    "SecretRef",
    "SendFrom",
    "SmokeTestConfig",
    "TagPolicy",
    "WeightsSource",
    "check_display_name",
    "check_project_path",
    "check_service_name",
    "config_json_schema",
    "field_location",
    "load_config",
    "parse_config",
    "token_kind",
]
