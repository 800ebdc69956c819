package tend.packages

import rego.v1

install(names) := {"changes": [{"host": "h", "task": "t", "module": "apt", "action": "run", "packages": names}]}

test_unlisted_denied if {
	deny == {{"msg": "package telnetd is not on the allow-list (package_allow_list in the policies' data.json)", "host": "h", "task": "t"}} with input as install(["nginx", "telnetd"])
}

test_listed_allowed if {
	count(deny) == 0 with input as install(["nginx", "redis-server"])
}

test_removal_allowed if {
	count(deny) == 0 with input as {"changes": [{"host": "h", "action": "delete", "packages": ["telnetd"]}]}
}

test_the_list_can_be_replaced if {
	count(deny) == 1 with input as install(["nginx"]) with data.package_allow_list as ["redis-server"]
}
