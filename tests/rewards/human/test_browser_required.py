"""The browser test may skip on a developer's machine without chromium, never in CI (CI=true): there it fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import browser_paths, in_ci, skip_unless_ci


def outcome(check: Callable[[], object]) -> tuple[str, str]:
    """What ``check`` did, caught here so that neither a skip nor a failure ends this test: (kind, message)."""
    try:
        check()
    except pytest.skip.Exception as exc:
        return "skip", str(exc)
    except pytest.fail.Exception as exc:
        return "fail", str(exc)
    return "ok", ""


@pytest.fixture
def tools(tmp_path: Path) -> tuple[str, str]:
    """Paths standing for an installed chromium and chromedriver (files that exist)."""
    chromium, chromedriver = tmp_path / "chromium", tmp_path / "chromedriver"
    chromium.write_bytes(b"")
    chromedriver.write_bytes(b"")
    return str(chromium), str(chromedriver)


@pytest.mark.parametrize("environ", [{}, {"CI": "true"}])
def test_both_found_neither_skips_nor_fails(tools: tuple[str, str], environ: dict[str, str]) -> None:
    assert outcome(lambda: browser_paths(*tools, environ=environ)) == ("ok", "")


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}])
def test_a_missing_chromium_skips_outside_ci(tools: tuple[str, str], tmp_path: Path, environ: dict[str, str]) -> None:
    kind, message = outcome(lambda: browser_paths(str(tmp_path / "absent"), tools[1], environ=environ))
    assert kind == "skip"
    assert message.startswith("chromium not found")
    assert "apt-get install -y chromium chromium-driver" in message


@pytest.mark.parametrize("value", ["true", "True", "1", "yes"])
def test_a_missing_browser_fails_in_ci(tools: tuple[str, str], tmp_path: Path, value: str) -> None:
    environ = {"CI": value}
    kind, message = outcome(lambda: browser_paths(tools[0], str(tmp_path / "absent"), environ=environ))
    assert kind == "fail"
    assert message.startswith("chromedriver not found")
    assert "CI=true: a test that cannot run fails here instead of skipping" in message
    kind, message = outcome(lambda: browser_paths(None, None, environ=environ))
    assert (kind, message.split(" not found")[0]) == ("fail", "chromium and chromedriver")


def test_missing_packages_follow_the_same_rule() -> None:
    reason = "the browser test needs selenium"
    assert outcome(lambda: skip_unless_ci(reason, {})) == ("skip", reason)
    kind, message = outcome(lambda: skip_unless_ci(reason, {"CI": "true"}))
    assert (kind, message.startswith(f"{reason}. CI=true")) == ("fail", True)
    assert in_ci({"CI": "true"})
    assert not in_ci({})
