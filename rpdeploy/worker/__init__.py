"""The worker: what runs on RunPod, rendered from templates/ into the project (methods 2 and 3).

Owns: rendering (``render``: typed context in, text out; one Jinja environment with
StrictUndefined and the escaping filters). The project files ``rpdeploy init`` and ``rpdeploy
render`` write (``rpdeploy.worker.scaffold``) join it in the re-layout's second step.

May import: the ground floor (``rpdeploy.config``, ``errors``, ``fsutil``, ``limits``,
``methods``, ``output``, ``secrets``, ``versions``). Never ``rpdeploy.commands``, the emulator,
docker or rich.
"""
