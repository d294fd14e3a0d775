#!/usr/bin/env bash
# A base image for builds where no image registry is reachable: Debian bookworm (the official slim image's release)
# with python3.11, built from Debian's packages with mmdebstrap and imported into podman.
#   infra/image/base.sh TAG      (cached: .cache/image/base-bookworm-py311.tar; does nothing when TAG exists)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 TAG" >&2; exit 2; }
tag=$1
podman image exists "$tag" && exit 0
archive=$root/.cache/image/base-bookworm-py311.tar
if [ ! -s "$archive" ]; then
  mkdir -p "$(dirname "$archive")"  # --format: the name ends in .tmp, from which mmdebstrap would guess a directory
  mmdebstrap --quiet --format=tar --variant=minbase --include=python3.11,python3.11-venv bookworm "$archive.tmp"
  mv "$archive.tmp" "$archive"
fi
podman import --quiet "$archive" "$tag" >/dev/null
