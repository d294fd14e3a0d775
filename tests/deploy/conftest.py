"""Fixtures of the deployment tests: the manifests, Knative's own validator (built once), the CRD schemas."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import ROOT
from support.crds import CACHE, GO_ENV, crd_files, crd_schemas, manifest_files

VALIDATOR_SOURCE = ROOT / "infra" / "validate"
BINARY = CACHE / "bin" / "knative-validate"
STAMP = BINARY.with_suffix(".sha256")


@pytest.fixture(scope="session")
def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) of every Kubernetes object under infra/ and eventing/knative/."""
    return [(path, doc) for path in manifest_files() for doc in yaml.safe_load_all(path.read_text())
            if isinstance(doc, dict)]


@pytest.fixture(scope="session", autouse=True)
def validator_build() -> Iterator[subprocess.Popen[bytes] | None]:
    """Start building infra/validate (Knative's Go modules) into .cache/bin when its source changed, in the
    background from the first deployment test on: the cold build takes several minutes on 2 cores and overlaps the
    image build; later builds reuse Go's build cache under .cache/go (seconds)."""
    if _built():
        yield None
        return
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    with (BINARY.parent / "knative-validate.log").open("wb") as log:
        build = subprocess.Popen(["go", "build", "-o", str(BINARY), "."], cwd=VALIDATOR_SOURCE, stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, **GO_ENV})
    yield build
    if build.poll() is None:
        build.kill()
        build.wait()


@pytest.fixture(scope="session")
def validator(validator_build: subprocess.Popen[bytes] | None) -> Path:
    """The built validator (waits for the background build)."""
    if validator_build is not None:
        if validator_build.wait(timeout=1800) != 0:
            pytest.fail(f"go build of infra/validate failed:\n{BINARY.with_name('knative-validate.log').read_text()}")
        STAMP.write_text(_digest())
    return BINARY


def _digest() -> str:
    return hashlib.sha256(b"".join((VALIDATOR_SOURCE / name).read_bytes()
                                   for name in ("main.go", "go.mod", "go.sum"))).hexdigest()


def _built() -> bool:
    return BINARY.exists() and STAMP.exists() and STAMP.read_text() == _digest()


@pytest.fixture(scope="session")
def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → strict JSON schema of every CRD of the pinned releases."""
    return crd_schemas(crd_files())
