package tend.sshd

import rego.v1

rendered(text) := {"changes": [{"host": "h", "task": "t", "action": "update", "path": "/etc/ssh/sshd_config", "content": {"after": text}}]}

test_yes_denied if {
	count(deny) == 1 with input as rendered("Port 22\nPermitRootLogin yes\n")
}

test_unset_denied if {
	count(deny) == 1 with input as rendered("Port 22\n")
}

test_prohibit_password_denied if {
	count(deny) == 1 with input as rendered("permitrootlogin prohibit-password\n")
}

test_no_allowed if {
	count(deny) == 0 with input as rendered("Port 22\n  PermitRootLogin no\nPermitRootLogin yes\n")
}

test_other_files_ignored if {
	count(deny) == 0 with input as {"changes": [{"host": "h", "action": "create", "path": "/etc/motd", "content": {"after": "PermitRootLogin yes"}}]}
}
