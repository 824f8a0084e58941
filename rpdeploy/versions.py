"""Every version rpdeploy pins, in one place, with why.

Changing one of these changes what users deploy: bump them deliberately, together with the
golden files (tests/golden) and a note in the changelog.
"""

from __future__ import annotations

#: RunPod's prebuilt vLLM worker (method 1). Pinned, never ``latest``: worker-vllm changed
#: its input/output shapes and its CUDA floor between releases (v2.24 moved to the
#: vllm/vllm-openai base), and a floating tag makes a redeploy silently run other code.
#: v2.25.2 (2026-08-20) ships vLLM 0.27.1 and runpod 1.12.0.
WORKER_VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"

#: CUDA versions the host driver must support for WORKER_VLLM_IMAGE. Images from v2.19 on
#: are built against CUDA 13.0 (the worker's own hub.json pins exactly this), so RunPod must
#: not schedule them on hosts with an older driver.
WORKER_VLLM_CUDA_VERSIONS: tuple[str, ...] = ("13.0",)

#: Base image for our own workers (methods 2 and 3): vLLM and CUDA already inside, so the
#: Dockerfile never runs `pip install vllm` on top of a torch image (slow, and easy to get a
#: torch/CUDA mismatch). Same vLLM as WORKER_VLLM_IMAGE, so the two methods behave alike.
VLLM_BASE_IMAGE = "vllm/vllm-openai:v0.27.1"

#: CUDA floor of VLLM_BASE_IMAGE (vLLM builds against CUDA 13.0 from this line on).
VLLM_BASE_CUDA_VERSIONS: tuple[str, ...] = ("13.0",)

#: The runpod SDK inside our worker images. 1.10.1 fixed jobs funnelling to one worker on
#: network-volume endpoints; 1.12.0 is the release the reference notes were checked against.
RUNPOD_SDK_VERSION = "1.12.0"

#: Pool/price table date (see rpdeploy/preflight/gpus.py); shown next to cost estimates.
PRICE_TABLE_DATE = "2025-08-25"
