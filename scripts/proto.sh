#!/usr/bin/env bash
# Generates the Go code of proto/ with buf and the pinned generators, all built into .cache/bin
# by make: into proto/ by default, or into the folder given as $1 (the staleness check compares
# that against what is committed). No protoc is needed: buf compiles the .proto files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-proto}
bin=$PWD/.cache/bin
for tool in buf protoc-gen-go protoc-gen-micro; do
	[ -x "$bin/$tool" ] || { echo "proto: $bin/$tool is missing; run 'make proto', which builds it" >&2; exit 1; }
done
# buf keeps the well-known types it extracts in a cache: the checkout's, not the user's.
export BUF_CACHE_DIR=${BUF_CACHE_DIR:-$PWD/.cache/buf}
mkdir -p "$out"
# The plugins are found on PATH; the pinned ones come first.
PATH=$bin:$PATH "$bin/buf" generate proto --template proto/buf.gen.yaml -o "$out"
