"""The worker image (methods 2 and 3): build it and push it with the docker SDK.

Owns: the engine connection (``engine``), the build context and its hash (``context``), the
tag (``tags``), the build with its disk and base-image checks (``image``), the push
(``push``), what both show while they run (``progress``), registry credentials
(``registry_auth``) and ``rpdeploy build``'s sequence of them (``pipeline.build_and_push``).

May import: the ground floor (``rpdeploy.config``, ``errors``, ``limits``, ``output``,
``secrets``), ``rpdeploy.preflight`` (the weights' size, for the disk check),
``rpdeploy.worker.scaffold`` (the placeholder repository) and ``rpdeploy.deploy.ledger`` (where a build and a
push are recorded). This is the only package that imports ``docker``, and only inside
functions: the CLI must start fast. Never ``rpdeploy.commands``, the emulator or rich.
"""
