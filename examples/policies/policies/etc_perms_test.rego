package tend.etc_perms

import rego.v1

change(path, mode) := {"host": "h", "task": "t", "action": "create", "path": path, "after": {"mode": mode}}

test_world_writable_octal_under_etc_denied if {
	count(deny) == 1 with input as {"changes": [change("/etc/app.conf", "0666")]}
}

test_symbolic_o_plus_w_denied if {
	count(deny) == 1 with input as {"changes": [change("/etc/app.conf", "u=rw,o+w")]}
}

test_numeric_mode_denied if {
	count(deny) == 1 with input as {"changes": [change("/etc/app.conf", 511)]}
}

test_mode_from_the_task_arguments if {
	count(deny) == 1 with input as {"changes": [{"host": "h", "task": "t", "action": "create", "path": "/etc/x", "after": {}, "args": {"mode": "0666"}}]}
}

test_0644_allowed if {
	count(deny) == 0 with input as {"changes": [change("/etc/app.conf", "0644")]}
}

test_outside_etc_allowed if {
	count(deny) == 0 with input as {"changes": [change("/srv/app/x", "0666"), change("/etcetera/x", "0666")]}
}

test_under_a_test_root if {
	count(deny) == 1 with input as {
		"hosts": {"h": {"vars": {"policy_root": "/tmp/r"}}},
		"changes": [change("/tmp/r/etc/app.conf", "0777")],
	}
}
