"""The deploy engine: the 11 stages, plan/status/rollback, the ledger and the lock.

Owns: the stages in run order with the seed's step numbers (``stages``), plan/status/rollback
(``planning``), the ledger (``ledger``), one deploy of a project at a time (``lock``), destroy
(``teardown``), the endpoint check and smoke test (``smoke``), where a project and its endpoint
are (``project``) and ``rpdeploy doctor`` (``doctor``).

May import: every concern package (``rpdeploy.preflight``, ``build``, ``backend``, ``runpod``,
``worker``) and the ground floor. Never ``rpdeploy.commands`` or the emulator. The ledger is the
one module of this package the concern packages may import: each of them records its result in
it.
"""
