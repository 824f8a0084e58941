"""Talking to RunPod: the control plane (templates, endpoints) and the serverless invoke API.

Owns: the control plane over GraphQL and REST v2 (``controlplane``, ``rest``, ``graphql_ops``,
``schema``, ``models``), what a deploy asks of it (``deployment``, with ``desired``,
``ownership``, ``plan``, ``account``, ``delete``), the invoke API (``invoke``), what RunPod
reports of an endpoint's workers, releases and logs (``fleet``), the release id a deploy's
content makes (``release``) and how far RunPod has rolled it out (``rollout``).

May import: the ground floor (``rpdeploy.config``, ``errors``, ``methods``, ``output``,
``secrets``, ``versions``), ``rpdeploy.preflight`` (GPU types; the fit check before an endpoint
is created) and ``rpdeploy.deploy.ledger`` (what an earlier run created). Never ``rpdeploy.commands``,
the emulator (which stands in for RunPod over HTTP, never by import), docker or rich.
"""
