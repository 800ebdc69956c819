#!/bin/bash
# A root crontab with an entry to remove and one to keep, and a cron file with one entry.
set -euo pipefail
printf '%s\n' '#Ansible: old cleanup' '0 4 * * * /usr/local/bin/cleanup' \
    '#Ansible: keep me' '@hourly /bin/true' | crontab -u root -
printf '%s\n' '#Ansible: legacy' '0 0 * * * root /bin/legacy' > /etc/cron.d/tend-legacy
