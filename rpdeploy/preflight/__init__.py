"""Before anything is built or created: will the model fit the GPU, and what will it cost?

Owns: the fit estimate, split along its seams: the model's architecture (``arch``) and where it
comes from (``sources``: deploy.yaml's file, the HF cache, the Hub, the built-in table), the
memory per GPU and the verdict (``memory``: weights, activations, KV cache), the fixes it
suggests (``fixes``), the estimate as a whole (``estimate``), and the check ``rpdeploy check``
and stage 7 run (``check``: fit and cost together); the cost preview (``cost``); RunPod's GPU
types and pools (``gpus``); the built-in model table (``models_table``) and what the Hugging Face
Hub says of a model and a token (``hub``: gated models, pasted keys).

May import: the ground floor (``rpdeploy.config``, ``errors``, ``limits``, ``methods``,
``output``, ``secrets``, ``versions``) and ``rpdeploy.preflight.models_table``. Never
``rpdeploy.commands``, the emulator, docker or rich. Everything else may import this package.

This ``__init__`` imports nothing: ``rpdeploy.preflight.gpus`` is imported at start-up by the
RunPod models, and must not bring the estimate with it.
"""
