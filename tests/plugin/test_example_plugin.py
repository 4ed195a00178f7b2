"""The provider plugin API, end to end: examples/provider-plugin installed as a package (into a
scratch directory, so the rest of the suite never sees it) is a provider like the built-in
ones. Each check runs in a fresh interpreter with that directory on its path: entry points are
read once, when the registry is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.providers import ENTRY_POINT_GROUP

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "examples" / "provider-plugin"
MO = b'{"type":"mo","id":"a1","from":"+14155550100","to":"+14155550199","text":"hi"}'


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True,
    )  # fmt: skip
    return target


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(installed: Path) -> Run:
    """Python with the plugin installed: `run(*args)`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(REPO)])}

    def _run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    return _run


def test_the_registry_finds_the_plugin(run: Run) -> None:
    done = run("-c", "from connector.providers import PROVIDERS; "
                     "import json; print(json.dumps(sorted(PROVIDERS)))")  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = set(json.loads(done.stdout))
    assert {"acme", "bandwidth-v2", "openmarket", "sinch"} <= found  # beside the built-ins


def test_check_config_validates_its_options_and_warns_without_its_keys(
    run: Run, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "providers:\n  acme:\n    enabled: true\n    subject_in_text: true\n"
        "    auth: {allow_cidrs: [203.0.113.0/24]}\n"
    )
    done = run("-m", "connector.cli", "check-config", str(good))
    assert done.returncode == 0, done.stderr
    assert "providers.acme.auth.signature is not set" in done.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  acme:\n    enabled: true\n    max_subject_chars: 0\n")
    done = run("-m", "connector.cli", "check-config", str(bad))
    assert done.returncode != 0
    assert "providers.acme.max_subject_chars" in done.stdout + done.stderr


def test_translate_runs_it(run: Run, tmp_path: Path) -> None:
    body = tmp_path / "mo.json"
    body.write_bytes(MO)
    done = run("-m", "connector.cli", "translate", "--provider", "acme", str(body))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["key"], record["value"]["provider"], record["value"]["text"]) == (
        "+14155550199",
        "acme",
        "hi",
    )


def test_its_table_and_the_shared_signature_tests_pass(run: Run) -> None:
    done = run(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests"),
        "tests/unit/test_signatures.py", "-k", "acme or not provider",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def registry_with(tmp_path: Path, name: str, value: str) -> subprocess.CompletedProcess[str]:
    """Import the registry with one more installed distribution whose entry point `name` is
    `value`."""
    dist = tmp_path / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {value}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-c", "import connector.providers"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_plugin_that_is_no_provider_stops_the_registry(tmp_path: Path) -> None:
    done = registry_with(tmp_path, "broken", "json:dumps")
    assert done.returncode != 0
    assert "entry point 'broken' (json:dumps) is a function, not a Provider" in done.stderr


def test_a_plugin_that_does_not_import_is_named(tmp_path: Path) -> None:
    done = registry_with(tmp_path, "gone", "mms_gone:PROVIDER")
    assert done.returncode != 0
    assert "PluginError: entry point 'gone' (mms_gone:PROVIDER) does not load" in done.stderr


def test_a_plugin_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    done = registry_with(tmp_path, "twin", "connector.providers.sinch:PROVIDER")
    assert done.returncode != 0
    assert "declares 'sinch', which is already a provider" in done.stderr
