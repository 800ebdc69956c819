#!/bin/bash
# Pre-existing config file edited by the playbook.
mkdir -p "$1/etc/ssh"
cat > "$1/etc/ssh/sshd_config" <<'CONF'
# sshd config
Port 22
#PermitRootLogin yes
PasswordAuthentication yes
X11Forwarding yes
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
cat > "$1/etc/limits.conf" <<'CONF'
# limits
* soft nofile 1024
* hard nofile 4096
# End of file
CONF
