"""The cluster and image scripts: linted (bash -n, shellcheck), and their logic run against stand-in tools
(a `kubectl` that records what it is asked, no k3d), since no cluster can run here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import ROOT

SCRIPTS = sorted([*(ROOT / "infra").rglob("*.sh"), ROOT / "infra" / "image" / "with-ca"])
CLUSTER = ROOT / "infra" / "k3d" / "cluster.sh"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_parse_and_pass_shellcheck(script):
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is missing (make system installs it)")
    done = subprocess.run(["shellcheck", "-x", str(script)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def _fake_kubectl(folder: Path, existing: str = "") -> Path:
    """A kubectl that logs its arguments and knows the Secrets named in `existing`."""
    log = folder / "kubectl.log"
    script = folder / "kubectl"
    script.write_text(f"""#!/bin/bash
echo "$*" >> {log}
case " $* " in
  *" get secret "*) name=${{!#}}; [[ " {existing} " == *" $name "* ]]; exit ;;
esac
exit 0
""")
    script.chmod(0o755)
    return log


def _run_ensure_secret(folder: Path, *arguments: str) -> str:
    """Source cluster.sh's functions (not its main) and call ensure_secret with the fake kubectl first on PATH."""
    functions = CLUSTER.read_text().split("\ncase ")[0]
    (folder / "functions.sh").write_text(functions)
    shutil.copy(CLUSTER.with_name("versions.env"), folder)
    command = f'source "{folder}/functions.sh"; ensure_secret {" ".join(arguments)}'
    done = subprocess.run(["bash", "-c", command], env={**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    log = folder / "kubectl.log"
    return log.read_text() if log.exists() else ""


def test_ensure_secret_creates_once_with_generated_and_derived_values(tmp_path):
    _fake_kubectl(tmp_path)
    calls = _run_ensure_secret(tmp_path, "coelho", "db", "USER=mlflow", "PASSWORD",
                               "'URL=postgresql://mlflow:{PASSWORD}@postgres:5432/mlflow'")
    create = next(line for line in calls.splitlines() if " create secret generic db " in line)
    literals = dict(part.removeprefix("--from-literal=").split("=", 1) for part in create.split()
                    if part.startswith("--from-literal="))
    assert literals["USER"] == "mlflow" and len(literals["PASSWORD"]) == 48
    assert literals["URL"] == f"postgresql://mlflow:{literals['PASSWORD']}@postgres:5432/mlflow"


def test_ensure_secret_keeps_an_existing_secret(tmp_path):
    _fake_kubectl(tmp_path, existing="db")
    calls = _run_ensure_secret(tmp_path, "coelho", "db", "PASSWORD")
    assert "get secret db" in calls and "create" not in calls


def test_missing_tools_are_named_with_an_install_hint(tmp_path):
    (tmp_path / "bin").mkdir()
    for tool in ("bash", "dirname", "sed", "sort", "head"):
        (tmp_path / "bin" / tool).symlink_to(shutil.which(tool))
    done = subprocess.run([str(CLUSTER), "up"], env={"PATH": str(tmp_path / "bin")}, capture_output=True, text=True)
    assert done.returncode == 1
    assert "k3d is not installed" in done.stderr and "https://k3d.io" in done.stderr
    done = subprocess.run([str(CLUSTER), "sideways"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr
