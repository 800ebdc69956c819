#!/usr/bin/env bash
# The local benchmark: tend vs ansible-playbook on one local host, 500 file resources.
#
#   benches/local/run.sh
#
# Builds tend (build-release.sh), generates the playbook (benches/local/gen.py), measures the
# first apply on an empty root and the no-op re-apply for each tool, checks that both
# tools reach the same end state with changed=0 on the re-apply, and prints a
# markdown table. Exit status 1 when a check failed.
#
# Environment knobs:
#   TEND_RUNS=10          timed repetitions for tend (each of first apply and re-apply)
#   ANSIBLE_RUNS=1        timed repetitions for each ansible variant (it is slow)
#   BENCH_PIPELINING=0    1: also measure ansible-playbook with ANSIBLE_PIPELINING=1
#   ANSIBLE_PLAYBOOK      path of ansible-playbook (default: /opt/tend-test/venv/bin/ansible-playbook,
#                         installed by tests/setup.sh, else $PATH)
#   BENCH_WORKDIR         where roots and logs go (default: a fresh temporary directory, removed at the end)
#   BENCH_KEEP=1          keep the work directory
#
# Optional tools: hyperfine (apt-get install -y hyperfine) times tend, else a Python loop
# does; /usr/bin/time (package `time`) gives peak RSS; strace checks that files are
# written atomically (temporary file + rename).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

TEND_RUNS=${TEND_RUNS:-10}
ANSIBLE_RUNS=${ANSIBLE_RUNS:-1}
BENCH_PIPELINING=${BENCH_PIPELINING:-0}

if [ -z "${ANSIBLE_PLAYBOOK:-}" ]; then
    if [ -x /opt/tend-test/venv/bin/ansible-playbook ]; then
        ANSIBLE_PLAYBOOK=/opt/tend-test/venv/bin/ansible-playbook
    else
        ANSIBLE_PLAYBOOK=$(command -v ansible-playbook || true)
    fi
fi
if [ -z "$ANSIBLE_PLAYBOOK" ]; then
    echo "error: ansible-playbook not found (run tests/setup.sh or set ANSIBLE_PLAYBOOK)" >&2
    exit 2
fi

echo "== building tend (release, with the slim agent embedded)" >&2
"$repo/build-release.sh" >&2
target_dir=${CARGO_TARGET_DIR:-$repo/target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac
tend="$target_dir/release/tend"

if [ -n "${BENCH_WORKDIR:-}" ]; then
    work=$BENCH_WORKDIR
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/tend-bench-local.XXXXXX")
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        trap 'rm -rf "$work"' EXIT
    fi
fi

python3 "$here/gen.py" "$work/playbook"

{
    echo "== machine"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "tend: $("$tend" --version)"
    echo "ansible: $("$ANSIBLE_PLAYBOOK" --version | head -1)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >&2

args=(--tend "$tend" --ansible-playbook "$ANSIBLE_PLAYBOOK"
      --playbook-dir "$work/playbook" --workdir "$work/run"
      --tend-runs "$TEND_RUNS" --ansible-runs "$ANSIBLE_RUNS" --json "$work/results.json")
if [ "$BENCH_PIPELINING" = 1 ]; then
    args+=(--pipelining)
fi
python3 "$here/measure.py" "${args[@]}"
