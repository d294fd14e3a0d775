#!/usr/bin/env bash
# Build the COELHO images with podman (preferred) or docker: `make image`, the container tests and the benchmark.
#   infra/image/build.sh [--base IMAGE] [--target runtime|spark|all] TAG
# TAG is the function image (coelho.local/coelho-realtime:<version>); the Spark image is TAG's repository + "-spark".
# --base: a Debian bookworm image with python3.11 (default: the Containerfile's pinned official python:3.11-slim;
# offline, build one with infra/image/base.sh). A CA bundle in SSL_CERT_FILE is passed as the build secret `ca`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
base="" target=all
while [ $# -gt 1 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--base IMAGE] [--target runtime|spark|all] TAG" >&2; exit 2; }
tag=$1
engine=${CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$engine" ] || { echo "neither podman nor docker is installed (apt-get install podman)" >&2; exit 1; }
flags=()
if [ "$(basename "$engine")" = podman ] && [ "$("$engine" info --format '{{.Host.CgroupsVersion}}')" = v1 ]; then
  # crun refuses cgroups v1 (hybrid) hosts, and raising rlimits needs CAP_SYS_RESOURCE: runc, lowered rlimits.
  flags+=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
fi
[ -n "$base" ] && flags+=(--build-arg "BASE=$base")
[ -s "${SSL_CERT_FILE:-}" ] && flags+=(--secret "id=ca,src=$SSL_CERT_FILE")
build() {  # build STAGE TAG
  "$engine" build "${flags[@]}" -f "$root/infra/image/Containerfile" --target "$1" -t "$2" "$root"
}
case "$target" in
  runtime) build runtime "$tag" ;;
  spark) build spark "${tag%:*}-spark:${tag##*:}" ;;
  all) build runtime "$tag" && build spark "${tag%:*}-spark:${tag##*:}" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
