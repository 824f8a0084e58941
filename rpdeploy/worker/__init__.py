"""The worker: what runs on RunPod, rendered from templates/ into the project (methods 2 and 3).

Owns: rendering (``render``: typed context in, text out; one Jinja environment with
StrictUndefined and the escaping filters) and the project files ``rpdeploy init`` and ``rpdeploy
render`` write (``scaffold``: deploy.yaml edited in place, worker files never overwriting an edit).

May import: the ground floor (``rpdeploy.config``, ``errors``, ``fsutil``, ``limits``,
``methods``, ``output``, ``secrets``, ``versions``). Never ``rpdeploy.commands``, the emulator,
docker or rich.
"""
