"""Stand-in package (upstream: vllm/v1/engine/__init__.py)."""
