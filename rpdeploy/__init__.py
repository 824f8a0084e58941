"""rpdeploy: deploy vLLM servers to RunPod Serverless and wire up the backend that calls them."""

__version__ = "0.1.0"
