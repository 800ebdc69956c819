#!/usr/bin/env bash
# The release build users get: one static `tend` binary that embeds the slim agent it pushes to
# SSH hosts (crates/tend-agentd: the agent alone, without the CLI, engine and history store),
# gzipped at build time. Honours CARGO_TARGET_DIR; extra arguments go to both cargo builds
# (e.g. --locked). Prints both binaries' sizes.
#
# A plain `cargo build --release -p tend` still works: that tend pushes itself.
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac

cargo build --release -p tend-agentd "$@"
TEND_EMBED_AGENT="$target_dir/release/tend-agentd" cargo build --release -p tend "$@"

size() {
    printf '%-12s %9d bytes, %9d gzipped: %s\n' "$(basename "$1")" \
        "$(stat -c %s "$1")" "$(gzip -9 -c "$1" | wc -c)" "$1"
}
size "$target_dir/release/tend-agentd"
size "$target_dir/release/tend"
"$target_dir/release/tend" --version
