"""The three ways rpdeploy can deploy a model. Kept free of heavy imports: the CLI uses it."""

from __future__ import annotations

from enum import Enum


class Method(str, Enum):
    """How the model is served on RunPod."""

    WORKER_VLLM = "worker-vllm"
    CUSTOM_HANDLER = "custom-handler"
    FASTAPI = "fastapi"

    @property
    def number(self) -> int:
        return _NUMBERS[self]

    @property
    def builds_image(self) -> bool:
        """Methods 2 and 3 build and push our own image; method 1 uses RunPod's."""
        return self is not Method.WORKER_VLLM

    @property
    def summary(self) -> str:
        return _TITLES[self]

    @classmethod
    def parse(cls, value: object) -> Method:
        """Accept 1/2/3 (int or str) or the method's name; raise ValueError otherwise."""
        if isinstance(value, Method):
            return value
        if isinstance(value, bool):  # YAML "yes" is a bool, and bool is an int subclass
            raise ValueError(f"expected one of {cls.choices_text()}, got {value!r}")
        text = str(value).strip()
        for method in cls:
            if text in (method.value, str(method.number)):
                return method
        import difflib

        guess = difflib.get_close_matches(text, [m.value for m in cls], n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise ValueError(f"expected one of {cls.choices_text()}, got {value!r}{hint}")

    @classmethod
    def choices_text(cls) -> str:
        return ", ".join(f"{m.number} ({m.value})" for m in cls)


_NUMBERS = {Method.WORKER_VLLM: 1, Method.CUSTOM_HANDLER: 2, Method.FASTAPI: 3}
_TITLES = {
    Method.WORKER_VLLM: "RunPod's prebuilt vLLM worker, configured by env vars",
    Method.CUSTOM_HANDLER: "our own handler.py (runpod SDK + vLLM) in our own image",
    Method.FASTAPI: "a FastAPI app with vLLM, wrapped by a runpod handler, in our own image",
}
