package tend.srv_owner

import rego.v1

created(after) := {"changes": [{"host": "h", "task": "t", "action": "create", "path": "/srv/app/index.html", "after": after}]}

test_root_owned_denied if {
	count(deny) == 1 with input as created({"owner": "root"})
}

test_no_owner_denied if {
	count(deny) == 1 with input as created({"mode": "0644"})
}

test_uid_zero_denied if {
	count(deny) == 1 with input as created({"owner": 0})
}

test_app_user_allowed if {
	count(deny) == 0 with input as created({"owner": "www-data"})
}

test_owner_from_the_task_arguments if {
	count(deny) == 0 with input as {"changes": [{"host": "h", "task": "t", "action": "create", "path": "/srv/x", "after": {}, "args": {"owner": "www-data"}}]}
	count(deny) == 1 with input as {"changes": [{"host": "h", "task": "t", "action": "create", "path": "/srv/x", "after": {}, "args": {"owner": "root"}}]}
}

test_updates_and_other_dirs_ignored if {
	count(deny) == 0 with input as {"changes": [
		{"host": "h", "action": "update", "path": "/srv/x", "after": {"owner": "root"}},
		{"host": "h", "action": "create", "path": "/opt/x", "after": {}},
	]}
}
