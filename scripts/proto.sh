#!/usr/bin/env bash
# Generates the Go code of proto/ with the pinned generators: into proto/ by default, or into
# the folder given as $1 (the staleness check compares that against what is committed).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-proto}
bin=$PWD/.cache/bin
if ! command -v protoc >/dev/null; then
	echo "proto: protoc not found; install Debian's protobuf-compiler (apt-get install protobuf-compiler)" >&2
	exit 1
fi
mkdir -p "$out"
# protoc-gen-micro accepts one Go package per run.
for dir in proto/*/; do
	pkg=$(basename "$dir")
	PATH=$bin:$PATH protoc -I proto \
		--go_out="$out" --go_opt=paths=source_relative \
		--micro_out="$out" --micro_opt=paths=source_relative \
		"proto/$pkg/$pkg.proto"
done
