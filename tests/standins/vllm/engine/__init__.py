"""Stand-in package (upstream: vllm/engine/__init__.py)."""
