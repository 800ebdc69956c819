# No package known to be vulnerable (data.json: `vulnerable`, package → versions), and none of
# the legacy cleartext servers (`forbidden`).
package compliance.packages

import rego.v1

deny contains msg if {
	some name, versions in data.vulnerable
	some p in input.host.packages[name]
	p.version in versions
	msg := sprintf("%s %s is a known-vulnerable version: upgrade it", [name, p.version])
}

deny contains msg if {
	some name in data.forbidden
	input.host.packages[name]
	msg := sprintf("%s is installed: legacy cleartext services are not allowed", [name])
}
