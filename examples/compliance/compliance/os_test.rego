package compliance.os_test

import rego.v1

import data.compliance.os

test_old_debian_denied if {
	count(os.deny) == 1 with input as {"host": {"facts": {"distribution": "Debian", "distribution_major_version": "11", "distribution_version": "11.9"}}}
}

test_bookworm_passes if {
	count(os.deny) == 0 with input as {"host": {"facts": {"distribution": "Debian", "distribution_major_version": "12", "distribution_version": "12.8"}}}
}

test_unknown_version_says_nothing if {
	count(os.deny) == 0 with input as {"host": {"facts": {"distribution": "Debian", "distribution_major_version": "n/a"}}}
}
