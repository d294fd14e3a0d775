"""Jars from Maven Central into the local cache: one `mvn dependency:copy-dependencies` per pom, done once.

A pom under `infra/` lists the jars (nothing is built); the copy lands in a staging folder that is renamed
into place and marked with a digest of the pom and profiles, so an interrupted or outdated fetch is redone
and concurrent fetches wait for each other (file lock). Maven's own repository lives under `<cache>/m2`.

>>> digest_of(b"<project/>", ("s3",)) == digest_of(b"<project/>", ())
False
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from coelho.config import Settings

__all__ = ["REPO_ROOT", "MavenError", "default_cache_dir", "digest_of", "fetch_jars"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
MARKER = ".complete"


class MavenError(RuntimeError):
    """Maven is missing or could not copy the jars; the message quotes its output."""


def default_cache_dir() -> Path:
    """`$COELHO_CACHE_DIR` when set, else `.cache/` at the repository root (git-ignored)."""
    configured = Settings.from_env().cache_dir
    return configured.expanduser().resolve() if configured else REPO_ROOT / ".cache"


def digest_of(pom: bytes, profiles: Sequence[str]) -> str:
    """What a complete folder is marked with: the pom's content and the active profiles."""
    return hashlib.sha256(pom + b"\0" + ",".join(sorted(profiles)).encode()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _complete(folder: Path, digest: str) -> bool:
    marker = folder / MARKER
    return marker.is_file() and marker.read_text().strip() == digest


def fetch_jars(
    pom: Path, folder: Path, *, expect: str, cache_dir: Path | None = None, profiles: Sequence[str] = (),
) -> Path:
    """Copy the dependencies of `pom` into `folder` unless already there; return `folder`.

    Parameters
    ----------
    pom : Path
        The pom listing the jars.
    folder : Path
        Destination (replaced as a whole when the pom or the profiles changed).
    expect : str
        A glob that must match a copied jar, else the fetch counts as failed.
    cache_dir : Path, optional
        Holds Maven's repository (`m2/`); default `default_cache_dir()`.
    profiles : sequence of str
        Maven profiles to activate (`-P`).
    """
    if not pom.is_file():
        raise MavenError(f"{pom} not found: the poms ship with the source tree, not the wheel")
    cache = (cache_dir or default_cache_dir()).resolve()
    digest = digest_of(pom.read_bytes(), profiles)
    if _complete(folder, digest):
        return folder
    with _locked(folder.parent / f"{folder.name}.lock"):
        if _complete(folder, digest):  # another process fetched while we waited
            return folder
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MavenError("`mvn` not found on PATH: install Maven 3.8+ (apt-get install maven)")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
        command = [
            mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", f"-Dmaven.repo.local={cache / 'm2'}",
        ] + ([f"-P{','.join(profiles)}"] if profiles else [])
        log.warning("fetching the jars of %s from Maven Central into %s (the first time takes a while)", pom, folder)
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0 or not any(staging.glob(expect)):
            shutil.rmtree(staging, ignore_errors=True)
            output = (done.stdout + done.stderr).strip().splitlines()[-30:]
            raise MavenError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n" + "\n".join(output))
        shutil.rmtree(folder, ignore_errors=True)
        staging.chmod(0o755)  # mkdtemp made it private
        staging.rename(folder)
        (folder / MARKER).write_text(digest + "\n")
        log.info("fetched %d jars of %s in %.1f s", len(list(folder.glob("*.jar"))), pom, time.monotonic() - started)
        return folder
