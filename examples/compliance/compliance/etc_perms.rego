# Nothing under /etc may be world-writable (symbolic links do not count: their mode means
# nothing; a sticky directory does not excuse it either).
package compliance.etc_perms

import rego.v1

collect_metadata contains "/etc/**"

deny contains msg if {
	some path, f in input.host.files
	startswith(path, "/etc/")
	f.world_writable
	msg := sprintf("%s is world-writable (mode %s)", [path, f.mode])
}
