"""Stand-in package (upstream: vllm/v1/__init__.py)."""
