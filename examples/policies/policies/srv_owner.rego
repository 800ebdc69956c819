# Every file created under /srv is owned by a non-root user.
package tend.srv_owner

import data.tend.lib
import rego.v1

deny contains {"msg": msg, "host": c.host, "task": c.task} if {
	some c in input.changes
	c.action == "create"
	lib.under(c, "/srv")
	not non_root(lib.attr(c, "owner"))
	msg := sprintf("%s would be created owned by %v: files under /srv must be owned by a non-root user (set owner:)", [c.path, owner(c)])
}

non_root(o) if {
	is_string(o)
	not o in {"root", "0"}
}

non_root(o) if {
	is_number(o)
	o != 0
}

owner(c) := o if {
	o := lib.attr(c, "owner")
	o != null
} else := "root (the task gives no owner)"
