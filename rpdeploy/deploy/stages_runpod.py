"""Deploy steps 5 to 8 on RunPod: the account, the template (the release), the GPU check, the endpoint.

Owns the stages ``account``, ``template``, ``gpu`` and ``endpoint``: what each sends to RunPod
(its inputs, secrets as digests), the create-or-update, and the check that what a skipped stage
made still exists. Everything is found by name, so a lost ledger converges on the same objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.context import RELEASE_KEY, Context, Stage, always, digest, gpu_inputs

if TYPE_CHECKING:
    from rpdeploy.runpod.models import TemplateSpec

# 5: account: key verified, GPU pool resolved, registry credentials registered.


def _account_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import registry_credentials

    creds = registry_credentials(ctx.config, ctx.environ)
    return {
        "api_url": ctx.config.runpod.resolved_api_url(ctx.environ),
        "api": ctx.api(),
        "key": digest(ctx.api_key()),
        "gpu": ctx.config.endpoint.gpu_type.id,
        "registry": None
        if creds is None
        else [ctx.config.image.registry if ctx.config.image else "", creds[0], digest(creds[1])],
    }


def _account_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import ensure_registry_auth, registry_credentials

    cp = ctx.cp()
    account = cp.account()
    selection = ctx.gpus()
    auth_id = ""
    creds = registry_credentials(ctx.config, ctx.environ)
    if creds is not None and ctx.config.image is not None:
        # The stage runs again only when its inputs changed, a password change included:
        # that is the one moment to send the credentials again (RunPod never shows them).
        auth, _ = ensure_registry_auth(
            cp, registry=ctx.config.image.registry, username=creds[0], password=creds[1], refresh=True
        )
        auth_id = auth.id
    return {"account_id": account.id, "gpus": selection.to_dict(), "registry_auth_id": auth_id}


# 6: template.


def _image(ctx: Context) -> str:
    from rpdeploy.runpod.deployment import worker_image

    pushed = ctx.outputs.get("push", {}).get("image")
    return worker_image(ctx.config, pushed)


def _template_spec(ctx: Context) -> TemplateSpec:
    from rpdeploy.runpod.deployment import desired_template

    return desired_template(
        ctx.config,
        image=_image(ctx),
        registry_auth_id=ctx.outputs.get("account", {}).get("registry_auth_id", ""),
        environ=ctx.environ,
        init_timeout=ctx.init_timeout(),
    )


def _template_inputs(ctx: Context) -> dict[str, Any]:
    # What is sent to RunPod, field for field (secret values as digests): any change of it is a
    # new release, and the endpoint check keys on this stage's fingerprint.
    from rpdeploy.runpod.deployment import hf_token_secret

    spec = _template_spec(ctx)
    hf_secret = hf_token_secret(ctx.config, ctx.environ)
    return {
        "api_url": ctx.config.runpod.resolved_api_url(ctx.environ),
        "api": ctx.api(),
        "name": spec.name,
        "image": spec.image,
        "env": [[var.key, digest(var.reveal()) if var.secret else var.reveal()] for var in spec.env],
        "disk": spec.container_disk_gb,
        "registry_auth_id": spec.registry_auth_id,
        "docker_args": spec.docker_args,
        "release": spec.release,
        "hf_token_secret": None if hf_secret is None else [hf_secret[0], digest(hf_secret[1])],
    }


def _template_run(ctx: Context) -> dict[str, Any]:
    """The container the workers run: saved as a template (GraphQL), or only settled here and sent
    with the endpoint by stage 8 (REST v2 keeps no template link: ``rpdeploy.runpod.rest``)."""
    from rpdeploy.runpod.deployment import apply_template, ensure_hf_secret, plan_template

    on_endpoint = ctx.cp().container_on_endpoint
    spec, live, operation = plan_template(
        ctx.config,
        templates=ctx.templates(),
        endpoints=ctx.endpoints(),
        image=_image(ctx),
        owner=ctx.owner(),
        registry_auth_id=ctx.outputs.get("account", {}).get("registry_auth_id", ""),
        environ=ctx.environ,
        init_timeout=ctx.init_timeout(),
        container_on_endpoint=on_endpoint,
    )
    # model.hf_token as a RunPod secret: once the template is known to be ours, and before the
    # template that references it is saved. The value cannot be read back, so it is sent again
    # whenever this stage runs (the token changed, or the ledger is new).
    secret, secret_op = ensure_hf_secret(ctx.cp(), ctx.config, refresh=True, environ=ctx.environ)
    if secret_op is not None:
        ctx.reporter.info(
            f"{'Created' if secret_op.kind == 'create-secret' else 'Updated'} RunPod secret {secret_op.target!r}"
        )
    if on_endpoint:
        # Nothing reached RunPod yet: the release goes with the endpoint (stage 8), which records it.
        return {
            "template_id": "",
            "image": spec.image,
            "operation": None,
            "release": spec.release,
            "hf_token_secret": secret.name if secret else None,
        }
    template = apply_template(ctx.cp(), spec, live, ctx.reporter)
    if operation is not None:
        ctx.changed_runpod()
    # What the endpoint runs from now on, whatever follows (`rpdeploy smoke-test` checks for it).
    ctx.ledger.extra[RELEASE_KEY] = spec.release
    return {
        "template_id": template.id,
        "image": spec.image,
        "operation": operation.kind if operation else None,
        "release": spec.release,
        "hf_token_secret": secret.name if secret else None,
    }


def _template_still_valid(ctx: Context, outputs: dict[str, Any]) -> bool:
    if not outputs.get("template_id"):
        return True  # nothing was made on RunPod (REST v2: the endpoint stage checks the endpoint)
    return any(t.id == outputs.get("template_id") for t in ctx.templates())


# 7: GPU: the endpoint spec, the fit check and the cost preview. No mutation.


def _gpu_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.preflight.check import format_check
    from rpdeploy.preflight.cost import format_money

    result = ctx.fit_check()
    # The whole report with --verbose (or `rpdeploy check`); the verdict and the bill always.
    for line in format_check(result):
        ctx.reporter.debug(line)
    cost = result.cost
    fit_line = result.fit.summary if result.fit is not None else "fit unknown: no model architecture found"
    # The summary starts with the verdict itself ("fits: ..."); say it once.
    said = fit_line.startswith(result.verdict.replace("-", " ") + ":")
    ctx.reporter.info(fit_line if said else f"{result.verdict}: {fit_line}")
    if cost.price_per_hour is not None:
        floor = format_money(cost.floor_per_month) if cost.floor_per_month is not None else "?"
        ctx.reporter.info(
            f"cost: {format_money(cost.price_per_hour)}/hour per running worker; always-on floor {floor}/month"
        )
    for warning in result.warnings:
        ctx.reporter.warn(warning)
    return {
        "gpus": ctx.outputs.get("account", {}).get("gpus"),
        "fit": result.verdict,
        "kv_capacity_tokens": result.fit.kv_capacity_tokens if result.fit is not None else None,
        "floor_per_month": cost.floor_per_month,
        "cold_start_seconds": round(cost.cold_start.seconds, 1),
        "weights": cost.cold_start.strategy,
        "init_timeout": cost.cold_start_plan.init_timeout,
        "warnings": list(result.warnings),
    }


# 8: endpoint.


def _endpoint_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import desired_endpoint

    spec = desired_endpoint(
        ctx.config,
        template_id=ctx.outputs.get("template", {}).get("template_id", ""),
        # Live on every run: a card RunPod added to the pool must be excluded even when
        # nothing in deploy.yaml changed.
        gpus=ctx.gpus(),
    )
    return {
        "api_url": ctx.config.runpod.resolved_api_url(ctx.environ),
        "api": ctx.api(),
        "spec": spec.settings(),
        "model_references": spec.model_references,
        "network_volume_ids": spec.network_volume_ids,
        # Under REST the container goes with the endpoint: a new image or env is this stage's input.
        "container": _template_inputs(ctx) if ctx.api() == "rest" else None,
    }


def _endpoint_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import apply_endpoint, desired_template, endpoint_urls, plan_endpoint_only

    container = None
    if ctx.cp().container_on_endpoint:
        # What stage 6 settled, sent with the endpoint itself (REST v2).
        container = desired_template(
            ctx.config,
            image=_image(ctx),
            registry_auth_id=ctx.outputs.get("account", {}).get("registry_auth_id", ""),
            environ=ctx.environ,
            init_timeout=ctx.init_timeout(),
        )
    spec, live, operation = plan_endpoint_only(
        ctx.config,
        endpoints=ctx.endpoints(),
        templates=ctx.templates(),
        template_id=ctx.outputs["template"]["template_id"],
        gpus=ctx.gpus(),
        owner=ctx.owner(),
        container=container,
        cp=ctx.cp(),
    )
    for change in operation.changes if operation and live is not None else ():
        ctx.reporter.info(f"  {change}")
    endpoint = apply_endpoint(ctx.cp(), spec, live, ctx.reporter)
    if operation is not None:
        ctx.changed_runpod()
    if container is not None:
        # REST v2: the release reached RunPod with the endpoint (`rpdeploy smoke-test` checks for it).
        ctx.ledger.extra[RELEASE_KEY] = container.release
    urls = endpoint_urls(ctx.config, endpoint.id, ctx.environ)
    return {
        "endpoint_id": endpoint.id,
        "operation": operation.kind if operation else None,
        "urls": {"run": urls.run, "runsync": urls.runsync, "health": urls.health, "openai_base": urls.openai_base},
    }


def _endpoint_still_valid(ctx: Context, outputs: dict[str, Any]) -> bool:
    template_id = ctx.outputs.get("template", {}).get("template_id")
    # REST v2 shows no template link: the endpoint's existence is what there is to check.
    return any(
        e.id == outputs.get("endpoint_id") and (not template_id or e.template_id == template_id)
        for e in ctx.endpoints()
    )


RUNPOD_STAGES: tuple[Stage, ...] = (
    Stage("account", "verify the RunPod account", always, _account_inputs, _account_run),
    Stage("template", "create or update the template", always, _template_inputs, _template_run, _template_still_valid),
    Stage("gpu", "check GPU, memory fit and cost", always, gpu_inputs, _gpu_run),
    Stage("endpoint", "create or update the endpoint", always, _endpoint_inputs, _endpoint_run, _endpoint_still_valid),
)
