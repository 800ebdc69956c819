package compliance.services_test

import rego.v1

import data.compliance.services

h(svc) := {"host": {
	"facts": {"service_mgr": "systemd"},
	"packages": {"openssh-server": [{"version": "1"}]},
	"services": svc,
}}

test_running_enabled_ssh_passes if {
	ok := {"ssh.service": {"state": "running", "status": "enabled"}}
	count(services.deny) == 0 with input as h(ok)
	count(services.warn) == 0 with input as h(ok)
}

test_stopped_ssh_denied if {
	services.deny == {"ssh.service is stopped: the host cannot be managed"} with input as h({"ssh.service": {"state": "stopped", "status": "enabled"}})
}

test_missing_unit_denied if {
	count(services.deny) == 1 with input as h({})
}

test_disabled_ssh_warns if {
	count(services.warn) == 1 with input as h({"ssh.service": {"state": "running", "status": "disabled"}})
}

test_without_systemd_nothing_is_said if {
	count(services.deny) == 0 with input as {"host": {"facts": {"service_mgr": "sysvinit"}, "packages": {"openssh-server": []}, "services": {}}}
}
