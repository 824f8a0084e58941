"""The rules of the fixtures themselves: a missing service fails in CI and skips elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.services import read_registry_env, service_missing


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"no registry.*scripts/services\.sh"):
        service_missing("no registry")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_service_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"no registry.*scripts/services\.sh"):
        service_missing("no registry")


def test_registry_env_is_parsed_as_data(tmp_path: Path) -> None:
    env = tmp_path / "registry.env"
    env.write_text("# note\nREGISTRY_HOST=127.0.0.1:5000\nREGISTRY_USERNAME=u\nREGISTRY_PASSWORD=a=b$c\n")
    registry = read_registry_env(env)
    assert (registry.host, registry.username, registry.password) == ("127.0.0.1:5000", "u", "a=b$c")
    assert "a=b$c" not in repr(registry)
    assert registry.image("team/worker", "v1") == "127.0.0.1:5000/team/worker:v1"
