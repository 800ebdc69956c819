#!/bin/bash
# An account to remove, with a home and a key that had been authorized.
set -euo pipefail
useradd -m -s /bin/bash olduser
mkdir -p -m 0700 /home/olduser/.ssh
echo "ssh-rsa AAAAB3NzaC1yc2EAAAOldKey old@example" > /home/olduser/.ssh/authorized_keys
