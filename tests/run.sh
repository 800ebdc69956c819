#!/usr/bin/env bash
# tend's whole test suite, exactly as CI runs it (.ci/run calls this script):
#   1. tests/setup.sh   system packages and ansible-core (needs root; skipped with TEND_SKIP_SETUP=1)
#   2. cargo fmt --check
#   3. cargo clippy --all-targets -D warnings
#   4. every test of the workspace, the differential suite against ansible-core included
#      (cargo nextest when installed, else cargo test); its summary is the last thing printed.
#
# Budget: 2 cores, 25 minutes, debug builds only (nothing here needs --release).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL=0
# The stable fuzz test of the loaders gets a fixed time budget (seconds).
export TEND_FUZZ_SECONDS="${TEND_FUZZ_SECONDS:-15}"
# The PostgreSQL server tests/setup.sh starts, for tend-store's second backend.
export TEND_TEST_POSTGRES="${TEND_TEST_POSTGRES:-postgres://tend_test:tend_test@127.0.0.1:5432/tend_test}"

step() { printf '\n==> %s\n' "$*"; }

if [ "${TEND_SKIP_SETUP:-0}" != 1 ]; then
    step "tests/setup.sh"
    if [ "$(id -u)" -eq 0 ]; then
        tests/setup.sh
    elif command -v sudo >/dev/null; then
        sudo tests/setup.sh
    else
        echo "error: tests/setup.sh needs root (or set TEND_SKIP_SETUP=1 if it already ran)" >&2
        exit 1
    fi
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first: nextest does not run them, and its summary must come last.
    step "cargo test --workspace --doc"
    cargo test --workspace --locked --doc
    step "cargo nextest run --workspace"
    cargo nextest run --workspace --locked --no-fail-fast
else
    step "cargo test --workspace"
    cargo test --workspace --locked --no-fail-fast
fi
