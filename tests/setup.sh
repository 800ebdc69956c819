#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) for tend's tests.
# Idempotent: safe to run again; reuses the venv when it is already right.
set -euo pipefail

ANSIBLE_CORE_VERSION=2.19.14
VENV=/opt/tend-test/venv

if [ "$(id -u)" -ne 0 ]; then
    echo "error: run tests/setup.sh as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# python3*: ansible-core's venv. The rest: the lab (crates/tend-lab) builds its hosts' rootfs
# with debootstrap, caches it with zstd, and runs hosts with ip/nsenter/unshare/mount and
# ssh-keygen; systemd-mode hosts boot with systemd-nspawn (systemd-container); the hosts'
# package repository is published with apt-ftparchive (apt-utils). postgresql: the history
# store's second backend (started below); git: the history records the playbook's commit.
apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    debootstrap openssh-client zstd tar iproute2 util-linux sudo \
    systemd-container apt-utils postgresql git

# A venv made before python3-venv was installed has no pip: make it again.
if [ ! -x "$VENV/bin/python" ] || [ ! -x "$VENV/bin/pip" ]; then
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
fi

installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-core"))' 2>/dev/null || true)
if [ "$installed" != "$ANSIBLE_CORE_VERSION" ]; then
    "$VENV/bin/pip" install --disable-pip-version-check --quiet "ansible-core==$ANSIBLE_CORE_VERSION"
fi

# ansible.posix (authorized_key, used by the system differential cases) from the collections
# the `ansible` package bundles (PyPI), unpacked beside ansible-core: ansible-core finds
# `ansible_collections` on its sys.path. ansible-core itself is left as it is.
ANSIBLE_BUNDLE_VERSION=12.3.0
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -f "$SITE/ansible_collections/ansible/posix/MANIFEST.json" ]; then
    tmp=$(mktemp -d)
    "$VENV/bin/pip" download --no-deps --disable-pip-version-check --quiet -d "$tmp" \
        "ansible==$ANSIBLE_BUNDLE_VERSION"
    "$VENV/bin/python" - "$tmp"/ansible-*.whl "$SITE" <<'PY'
import sys, zipfile
whl, site = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith("ansible_collections/ansible/posix/"):
            z.extract(n, site)
PY
    rm -rf "$tmp"
fi

version=$("$VENV/bin/ansible-playbook" --version)
echo "${version%%$'\n'*}"
echo "ansible-playbook: $VENV/bin/ansible-playbook"

# PostgreSQL for tend-store's tests (the history store's second backend). PID 1 is not systemd
# in CI, so the cluster is started with pg_ctlcluster. Tests connect as tend_test (CREATEDB: each
# test makes and drops its own database) at the URL in TEND_TEST_POSTGRES, default:
#   postgres://tend_test:tend_test@127.0.0.1:5432/tend_test
pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$pg_version" main
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$pg_version" main start
fi
pg() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -tAq "$@"; }
if [ "$(pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'tend_test'")" != 1 ]; then
    pg -c "CREATE ROLE tend_test LOGIN CREATEDB PASSWORD 'tend_test'"
fi
if [ "$(pg -c "SELECT 1 FROM pg_database WHERE datname = 'tend_test'")" != 1 ]; then
    pg -c "CREATE DATABASE tend_test OWNER tend_test"
fi
echo "postgresql $pg_version: online (role and database tend_test)"

# The lab's hosts share one Debian rootfs: built once (debootstrap, 1-5 minutes), cached
# under /var/cache/tend-lab, unpacked under /var/lib/tend-lab; later runs only check it.
cd "$(dirname "$0")/.."
if command -v cargo >/dev/null; then
    start=$SECONDS
    cargo run -q -p tend-lab -- rootfs
    cargo run -q -p tend-lab -- repo
    echo "tend-lab rootfs and package repository: ready in $((SECONDS - start)) s (building tend-lab included)"
else
    echo "note: cargo not found; the first lab a test starts builds the rootfs (1-5 minutes)"
fi
