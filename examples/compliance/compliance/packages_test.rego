package compliance.packages_test

import rego.v1

import data.compliance.packages

test_vulnerable_version_denied if {
	packages.deny == {"tend-demo 1.0 is a known-vulnerable version: upgrade it"} with input as {"host": {"packages": {"tend-demo": [{"version": "1.0"}]}}}
}

test_fixed_version_passes if {
	count(packages.deny) == 0 with input as {"host": {"packages": {"tend-demo": [{"version": "2.0"}]}}}
}

test_forbidden_package_denied if {
	count(packages.deny) == 1 with input as {"host": {"packages": {"telnetd": [{"version": "0.17"}]}}}
}
