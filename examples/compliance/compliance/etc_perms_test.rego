package compliance.etc_perms_test

import rego.v1

import data.compliance.etc_perms

test_world_writable_file_denied if {
	etc_perms.deny == {"/etc/app.conf is world-writable (mode 0666)"} with input as {"host": {"files": {
		"/etc/app.conf": {"world_writable": true, "mode": "0666"},
		"/etc/ok.conf": {"world_writable": false, "mode": "0644"},
	}}}
}

test_outside_etc_and_links_pass if {
	count(etc_perms.deny) == 0 with input as {"host": {"files": {
		"/tmp/x": {"world_writable": true, "mode": "1777"},
		"/etc/alternatives/x": {"world_writable": false, "mode": "0777", "type": "link"},
	}}}
}
