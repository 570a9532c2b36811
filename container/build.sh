#!/usr/bin/env bash
# Builds the container image: the binary, statically linked against glibc
# (cargo profile `container`), then the FROM-scratch image around it.
#   container/build.sh [TAG]       TAG defaults to gatehouse:latest
# CONTAINER_ENGINE=docker builds with docker instead of podman.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-gatehouse:latest}
engine=${CONTAINER_ENGINE:-podman}
target=x86_64-unknown-linux-gnu

# +crt-static links glibc into the binary. The explicit --target keeps it
# off build scripts and proc macros, which are built for the host and must
# stay dynamic.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --locked --profile container --target "$target" --bin gatehouse
binary="${CARGO_TARGET_DIR:-target}/$target/container/gatehouse"
if readelf --program-headers "$binary" | grep -q INTERP; then
  echo "$binary asks for a dynamic loader; the image has none" >&2
  exit 1
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -R container/rootfs "$context/rootfs"
# SQLite writes its temporary files (large sorts, VACUUM) to /tmp.
mkdir -m 1777 "$context/rootfs/tmp"
mkdir -p "$context/owned" && mkdir -m 0700 "$context/owned/data"
cp "$binary" "$context/gatehouse"

format=()
[ "$engine" = podman ] && format=(--format docker)
"$engine" build "${format[@]}" --file Containerfile --tag "$tag" \
  --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$context"
