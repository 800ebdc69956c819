# No file under /etc with mode o+w.
package tend.etc_perms

import data.tend.lib
import rego.v1

deny contains {"msg": msg, "host": c.host, "task": c.task} if {
	some c in input.changes
	c.action in {"create", "update"}
	lib.under(c, "/etc")
	mode := lib.attr(c, "mode")
	world_writable(mode)
	msg := sprintf("%s would be world-writable (mode %v): no file under /etc may be o+w", [c.path, mode])
}

# Octal as a string: "0666", "777", "0002".
world_writable(mode) if {
	is_string(mode)
	regex.match(`^[0-7]{2,3}[2367]$`, mode)
}

# Symbolic: "o+w", "a=rw", "u=rw,go+w", "+w".
world_writable(mode) if {
	is_string(mode)
	regex.match(`(^|,)([ugoa]*[oa][ugoa]*|)[+=][rwxXst]*w`, mode)
}

# A number (YAML's 0666 without quotes).
world_writable(mode) if {
	is_number(mode)
	bits.and(mode, 2) != 0
}
