"""The huggingface_hub stand-in: right size, deterministic bytes, and the token recorded only as yes/no."""

from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path
from types import ModuleType

import pytest

STANDIN = Path(__file__).resolve().parents[1] / "standins" / "huggingface_hub" / "__init__.py"
TOKEN = "hf_TESTTOKEN_0123456789abcdef"
MIB = 1024 * 1024


@pytest.fixture
def hf(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The stand-in loaded from its file, whatever huggingface_hub the host has installed."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("RPDEPLOY_STANDIN_MODEL_MB", raising=False)
    spec = importlib.util.spec_from_file_location("huggingface_hub_standin", STANDIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def everything_written(folder: Path) -> bytes:
    return b"".join(p.name.encode() + p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_default_size_and_layout(hf: ModuleType, tmp_path: Path) -> None:
    out = hf.snapshot_download("Qwen/Qwen2.5-7B-Instruct", local_dir=tmp_path / "m")
    assert out == str(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.safetensors", "token_seen"]
    assert (tmp_path / "m" / "model.safetensors").stat().st_size == MIB
    assert (tmp_path / "m" / "token_seen").read_text() == "no"


def test_bytes_are_deterministic_per_repo_and_revision(
    hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RPDEPLOY_STANDIN_MODEL_MB", "0.5")
    a, b, c = (
        Path(hf.snapshot_download("org/model", revision=rev, local_dir=tmp_path / name)) / "model.safetensors"
        for name, rev in (("a", "abc"), ("b", "abc"), ("c", "def"))
    )
    assert a.stat().st_size == MIB // 2
    assert digest(a) == digest(b) != digest(c)


def test_token_is_recorded_only_as_yes(hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = Path(hf.snapshot_download("org/gated", local_dir=tmp_path / "given", token=TOKEN))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    from_env = Path(hf.snapshot_download("org/gated", local_dir=tmp_path / "env"))
    refused = Path(hf.snapshot_download("org/gated", local_dir=tmp_path / "refused", token=False))
    assert (given / "token_seen").read_text() == "yes"
    assert (from_env / "token_seen").read_text() == "yes"
    assert (refused / "token_seen").read_text() == "no"
    assert TOKEN.encode() not in everything_written(tmp_path)


def test_default_folder_is_the_hub_cache(hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    out = hf.snapshot_download("org/model", revision="v1")
    assert out == str(tmp_path / "hub" / "models--org--model" / "snapshots" / "v1")


@pytest.mark.slow
def test_a_large_model_is_fast(hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPDEPLOY_STANDIN_MODEL_MB", "200")
    start = time.monotonic()
    out = Path(hf.snapshot_download("org/big", local_dir=tmp_path / "big"))
    assert (out / "model.safetensors").stat().st_size == 200 * MIB
    assert time.monotonic() - start < 30  # about 1.5 s here; the bound only catches a byte-at-a-time rewrite
