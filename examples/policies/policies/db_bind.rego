# No service configuration that binds a database port (PostgreSQL 5432, MySQL 3306, Redis
# 6379, MongoDB 27017) on 0.0.0.0.
package tend.db_bind

import rego.v1

binds := {
	"a database port on 0.0.0.0": `0\.0\.0\.0:(5432|3306|6379|27017)\b`,
	"PostgreSQL (5432) on every address": `(?m)^[ \t]*listen_addresses[ \t]*=[ \t]*'[^']*(\*|0\.0\.0\.0)`,
	"MySQL (3306) on 0.0.0.0": `(?m)^[ \t]*bind[-_]address[ \t]*=[ \t]*0\.0\.0\.0`,
	"Redis (6379) on 0.0.0.0": `(?m)^[ \t]*bind[ \t]+([^#\n]*[ \t])?0\.0\.0\.0\b`,
	"MongoDB (27017) on 0.0.0.0": `(?m)^[ \t]*bindIp[ \t]*:[^#\n]*0\.0\.0\.0`,
}

deny contains {"msg": msg, "host": c.host, "task": c.task} if {
	some c in input.changes
	c.action in {"create", "update"}
	is_string(c.content.after)
	some what, pattern in binds
	regex.match(pattern, c.content.after)
	msg := sprintf("%s binds %s: bind databases to loopback or a private address", [c.path, what])
}
