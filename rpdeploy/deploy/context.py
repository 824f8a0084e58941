"""What deploy's stages share: the options, the run's context, input fingerprints, the Stage record.

Owns: :class:`DeployOptions`, :class:`Context` (config, reporter, ledger, earlier stages' outputs,
and the RunPod reads a run makes once), :func:`fingerprint` / :func:`digest` (a stage's inputs as
the ledger compares them; secrets only as hashes), :class:`Stage` and when a stage applies, and
:func:`gpu_inputs` (stage 7's inputs, which the fit preflight and the cold-start estimate reuse).
The stages themselves are in ``stages_build``, ``stages_runpod`` and ``stages_cutover``; their
order and the runner in ``stages``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.ledger import Ledger, StageRecord
from rpdeploy.output import Reporter
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.preflight.check import CheckResult as FitCheck
    from rpdeploy.preflight.gpus import GpuSelection
    from rpdeploy.runpod.controlplane import ControlPlane
    from rpdeploy.runpod.deployment import Ownership
    from rpdeploy.runpod.models import Endpoint, Template


@dataclass(frozen=True)
class DeployOptions:
    force: bool = False
    from_stage: str | None = None
    only: str | None = None
    skip_fit_check: bool = False
    tag: str | None = None
    no_cache: bool = False
    #: Take over a same-named endpoint/template that does not carry this deployment's mark.
    adopt: bool = False


@dataclass
class Context:
    """What a stage may use: config, reporter, the ledger, and earlier stages' outputs."""

    config: Config
    reporter: Reporter
    ledger: Ledger
    options: DeployOptions
    environ: Mapping[str, str]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Each stage's ledger record as this run found it (None: never ran), before it is overwritten.
    previous: dict[str, StageRecord | None] = field(default_factory=dict)
    _cp: ControlPlane | None = None
    _endpoints: list[Endpoint] | None = None
    _templates: list[Template] | None = None
    _fit: FitCheck | None = None
    _owner: Ownership | None = None
    _gpus: GpuSelection | None = None

    def cp(self) -> ControlPlane:
        if self._cp is None:
            from rpdeploy.runpod.deployment import connect

            self._cp = connect(self.config, self.environ, reporter=self.reporter)
        return self._cp

    def endpoints(self) -> list[Endpoint]:
        if self._endpoints is None:
            self._endpoints = self.cp().list_endpoints()
        return self._endpoints

    def templates(self) -> list[Template]:
        if self._templates is None:
            self._templates = self.cp().list_templates()
        return self._templates

    def owner(self) -> Ownership:
        """What is this deployment's on RunPod: its mark, and the ids the ledger had when the run began."""
        if self._owner is None:
            from rpdeploy.runpod.deployment import ownership

            self._owner = ownership(self.config, ledger=self.ledger, adopt=self.options.adopt)
        return self._owner

    def gpus(self) -> GpuSelection:
        """The GPU selection from RunPod's live pools, read once per run (a pool can change between runs)."""
        if self._gpus is None:
            from rpdeploy.runpod.deployment import resolve_gpus

            self._gpus = resolve_gpus(self.cp(), self.config, self.reporter)
        return self._gpus

    def api(self) -> str:
        """The RunPod API this run speaks (runpod.api): a switch re-runs the RunPod stages."""
        return self.config.runpod.resolved_api(self.environ).value

    def changed_runpod(self) -> None:
        """Forget cached reads after a mutation."""
        self._endpoints = None
        self._templates = None

    def secret(self, ref: Any, field_name: str) -> Secret:
        secret: Secret = ref.resolve(base_dir=self.config.base_dir, environ=self.environ, field=field_name)
        return secret

    def api_key(self) -> Secret:
        return self.secret(self.config.runpod.api_key, "runpod.api_key")

    def fit_check(self) -> FitCheck:
        """The fit and cost check, done once per run (the preflight and stage 7 share it)."""
        if self._fit is None:
            from rpdeploy.preflight.check import check_deployment

            self._fit = check_deployment(self.config, reporter=self.reporter, environ=self.environ)
        return self._fit

    def init_timeout(self) -> int | None:
        """RUNPOD_INIT_TIMEOUT for the template (None: RunPod's default is enough).

        From the cold-start estimate, which needs the model's size; an unchanged deploy.yaml reuses
        what stage 7 recorded, so a re-run with nothing new does not look the model up again.
        """
        if self.config.endpoint.init_timeout is not None:
            return self.config.endpoint.init_timeout
        record = self.ledger.stages.get("gpu")
        if (
            record is not None
            and record.status == "done"
            and "init_timeout" in record.outputs
            and record.fingerprint == fingerprint(gpu_inputs(self))
        ):
            recorded = record.outputs["init_timeout"]
            return int(recorded) if recorded is not None else None
        return self.fit_check().cost.cold_start_plan.init_timeout

    def close(self) -> None:
        if self._cp is not None:
            self._cp.close()
            self._cp = None


def digest(secret: Secret | str) -> str:
    """A fingerprint component for a secret: its hash, never its value."""
    value = secret.reveal() if isinstance(secret, Secret) else secret
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def fingerprint(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    applies: Callable[[Config], bool]
    inputs: Callable[[Context], dict[str, Any]]
    run: Callable[[Context], dict[str, Any]]
    #: For a stage about to be skipped: does what it made still exist? (RunPod stages)
    still_valid: Callable[[Context, dict[str, Any]], bool] | None = None
    #: For a stage whose inputs include the outside world it changes (the backend's env file):
    #: its inputs as they are after it ran, which is what the next run will find and compare.
    settle: Callable[[Context, dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    #: The seed's step number, when it is not the stage's place in STAGES (step 11 runs in two halves).
    step: str = ""


def builds_image(config: Config) -> bool:
    return config.method.builds_image


def has_backend(config: Config) -> bool:
    return config.backend is not None


def always(config: Config) -> bool:
    return True


#: ``Ledger.extra`` key: the release the endpoint's template names now (rpdeploy.runpod.release).
RELEASE_KEY = "release"


def gpu_inputs(ctx: Context) -> dict[str, Any]:
    # Config only (no earlier outputs): the fit preflight compares this fingerprint before
    # any stage has run, to skip re-checking an unchanged deploy.yaml.
    return {
        "endpoint": ctx.config.endpoint.model_dump(mode="json", exclude={"env"}),
        "model": ctx.config.model.model_dump(mode="json", exclude={"hf_token"}),
    }
