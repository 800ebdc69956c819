# The SSH daemon runs and starts at boot, on hosts managed by systemd.
package compliance.services

import rego.v1

systemd if input.host.facts.service_mgr == "systemd"

deny contains msg if {
	systemd
	input.host.packages["openssh-server"]
	s := object.get(input.host.services, "ssh.service", {"state": "missing", "status": "missing"})
	s.state != "running"
	msg := sprintf("ssh.service is %s: the host cannot be managed", [s.state])
}

warn contains msg if {
	systemd
	s := input.host.services["ssh.service"]
	s.status != "enabled"
	msg := sprintf("ssh.service is %s, not enabled: it will not start at boot", [s.status])
}
