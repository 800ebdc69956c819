# Only supported Debian releases (12 and later).
package compliance.os

import rego.v1

deny contains msg if {
	input.host.facts.distribution == "Debian"
	v := input.host.facts.distribution_major_version
	regex.match(`^[0-9]+$`, v)
	major := to_number(v)
	major < 12
	msg := sprintf("Debian %v is out of support: upgrade to 12 or later", [input.host.facts.distribution_version])
}
