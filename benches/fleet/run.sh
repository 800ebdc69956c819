#!/usr/bin/env bash
# The fleet benchmark: tend vs ansible-core vs pyinfra over SSH on 10 and 50 lab hosts.
#
#   benches/fleet/run.sh            # full run (as root); rewrites the results in docs/benchmarks.md
#   benches/fleet/run.sh --quick    # 10 hosts, tend and ansible-core (fast) only; docs untouched
#
# Builds tend (build-release.sh: the slim agent embedded) and tend-lab, installs pyinfra (pinned) into its own venv if missing,
# generates the workload (benches/fleet/gen.py: 31 tasks per host, one task list written as an
# Ansible playbook and as a pyinfra deploy), then for each fleet size and tool brings up a fresh
# lab (crates/tend-lab), times the first apply and the no-op re-apply, checks the recaps, compares
# every host's end state with tend's, and tears the lab down (benches/fleet/measure.py).
# Exit status 1 when a check failed.
#
# Environment knobs:
#   BENCH_HOSTS=10,50      fleet sizes
#   BENCH_TOOLS=tend,tend-persist,tend-x25519,ansible-fast,pyinfra,ansible-default   (tend first: its end state is the reference)
#   BENCH_CAP=1200         seconds after which one tool run is stopped and reported as "> N min"
#   BENCH_WORKDIR          where logs and configs go (default: a fresh temporary directory)
#   BENCH_KEEP=1           keep the work directory
#   BENCH_DOCS=0           do not rewrite docs/benchmarks.md after a full run
#   ANSIBLE_PLAYBOOK       default /opt/tend-test/venv/bin/ansible-playbook (tests/setup.sh)
#   PYINFRA_VENV           default /opt/tend-bench/pyinfra-venv
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

PYINFRA_VERSION=3.10.0
quick=0
for a in "$@"; do
    case "$a" in
        --quick) quick=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $a (try --help)" >&2; exit 2 ;;
    esac
done
if [ "$quick" = 1 ]; then
    BENCH_HOSTS=${BENCH_HOSTS:-10}
    BENCH_TOOLS=${BENCH_TOOLS:-tend,ansible-fast}
    BENCH_DOCS=0
fi
BENCH_HOSTS=${BENCH_HOSTS:-10,50}
BENCH_TOOLS=${BENCH_TOOLS:-tend,tend-persist,tend-x25519,ansible-fast,pyinfra,ansible-default}
BENCH_CAP=${BENCH_CAP:-1200}
BENCH_DOCS=${BENCH_DOCS:-1}
ANSIBLE_PLAYBOOK=${ANSIBLE_PLAYBOOK:-/opt/tend-test/venv/bin/ansible-playbook}
PYINFRA_VENV=${PYINFRA_VENV:-/opt/tend-bench/pyinfra-venv}

if [ "$(id -u)" != 0 ]; then
    echo "error: the lab needs root; run benches/fleet/run.sh as root" >&2
    exit 2
fi
if [ ! -x "$ANSIBLE_PLAYBOOK" ]; then
    echo "error: $ANSIBLE_PLAYBOOK not found; run tests/setup.sh (it installs ansible-core) or set ANSIBLE_PLAYBOOK" >&2
    exit 2
fi
if [ ! -x /usr/bin/time ]; then
    echo "== installing GNU time (peak RSS)" >&2
    apt-get install -y --no-install-recommends time >&2
fi
if [ ! -x "$PYINFRA_VENV/bin/pyinfra" ] || [ "$("$PYINFRA_VENV/bin/pyinfra" --version 2>/dev/null)" != "pyinfra: v$PYINFRA_VERSION" ]; then
    echo "== installing pyinfra $PYINFRA_VERSION into $PYINFRA_VENV" >&2
    rm -rf "$PYINFRA_VENV"
    /usr/bin/python3 -m venv "$PYINFRA_VENV"
    "$PYINFRA_VENV/bin/pip" install --disable-pip-version-check --quiet "pyinfra==$PYINFRA_VERSION" >&2
fi

echo "== building tend (release, with the slim agent embedded) and tend-lab" >&2
"$repo/build-release.sh" >&2
(cd "$repo" && cargo build --release -p tend-lab >&2)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac
tend="$target_dir/release/tend"
tend_lab="$target_dir/release/tend-lab"
"$tend_lab" rootfs >&2

if [ -n "${BENCH_WORKDIR:-}" ]; then
    work=$BENCH_WORKDIR
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/tend-bench-fleet.XXXXXX")
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        trap 'rm -rf "$work"' EXIT
    fi
fi
python3 "$here/gen.py" "$work/workload"

machine="$work/machine.md"
{
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | $(nproc) CPUs (\`nproc\`), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
    echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
    echo "| kernel | $(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME") |"
    echo "| tend | $("$tend" --version) (git $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- crates || echo ', crates modified')) |"
    echo "| ansible-core | $("$ANSIBLE_PLAYBOOK" --version | head -1 | sed 's/.*\[core \(.*\)\]/\1/'), $("$(dirname "$ANSIBLE_PLAYBOOK")/python" --version) |"
    echo "| pyinfra | $("$PYINFRA_VENV/bin/pyinfra" --version | sed 's/pyinfra: v//'), $("$PYINFRA_VENV/bin/python" --version), paramiko $("$PYINFRA_VENV/bin/python" -c 'import paramiko; print(paramiko.__version__)') |"
    echo "| OpenSSH (controller) | $(ssh -V 2>&1) |"
    echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
} > "$machine"
cat "$machine" >&2

status=0
python3 "$here/measure.py" --tend "$tend" --tend-lab "$tend_lab" --ansible-playbook "$ANSIBLE_PLAYBOOK" \
    --pyinfra "$PYINFRA_VENV/bin/pyinfra" --workload "$work/workload" --workdir "$work/runs" \
    --hosts "$BENCH_HOSTS" --tools "$BENCH_TOOLS" --cap "$BENCH_CAP" \
    --json "$work/results.json" --markdown "$work/results.md" || status=$?
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "raw results: $work/results.json" >&2

if [ "$BENCH_DOCS" = 1 ] && [ -s "$work/results.md" ]; then
    python3 "$here/docs.py" "$repo/docs/benchmarks.md" "$machine" "$work/results.md" \
        "benches/fleet/run.sh (BENCH_HOSTS=$BENCH_HOSTS BENCH_TOOLS=$BENCH_TOOLS BENCH_CAP=$BENCH_CAP)"
    echo "== wrote the results into docs/benchmarks.md" >&2
fi
exit $status
