# sshd's PermitRootLogin must be `no` in any rendered sshd_config.
package tend.sshd

import rego.v1

deny contains {"msg": msg, "host": c.host, "task": c.task} if {
	some c in input.changes
	c.action in {"create", "update"}
	sshd_config(c.path)
	is_string(c.content.after)
	value := permit_root_login(c.content.after)
	value != "no"
	msg := sprintf("%s: PermitRootLogin must be \"no\", the rendered file says %s", [c.path, value])
}

sshd_config(path) if endswith(path, "/sshd_config")

sshd_config(path) if regex.match(`/sshd_config\.d/[^/]+\.conf$`, path)

# sshd takes the first value it reads; unset means sshd's default.
permit_root_login(text) := lower(m[0][1]) if {
	m := regex.find_all_string_submatch_n(`(?mi)^[ \t]*PermitRootLogin[ \t]+(\S+)`, text, 1)
	count(m) > 0
} else := "nothing (sshd's default: prohibit-password)"
