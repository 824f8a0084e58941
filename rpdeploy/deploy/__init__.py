"""The deploy engine: the 11 stages, plan/status/rollback, the ledger and the lock.

Owns: one deploy of a project at a time (``lock``). The re-layout's second step brings the rest
here: the stages (``stages``), plan/status/rollback (``planning``), the ledger (``ledger``),
teardown, the smoke test, releases and ``rpdeploy doctor``.

May import: every concern package (``rpdeploy.preflight``, ``build``, ``backend``, ``runpod``,
``worker``) and the ground floor. Never ``rpdeploy.commands`` or the emulator. The ledger is the
one module of this package the concern packages may import: each of them records its result in
it.
"""
