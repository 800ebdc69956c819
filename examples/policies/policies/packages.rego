# Packages only from an allow-list (data.json beside this file: `package_allow_list`).
package tend.packages

import rego.v1

allowed := {p | some p in data.package_allow_list}

deny contains {"msg": msg, "host": c.host, "task": c.task} if {
	some c in input.changes
	c.action != "delete"
	some p in c.packages
	not p in allowed
	msg := sprintf("package %s is not on the allow-list (package_allow_list in the policies' data.json)", [p])
}
