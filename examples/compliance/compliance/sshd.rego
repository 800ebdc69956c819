# Root must not log in with a password: sshd's effective PermitRootLogin may not be `yes`.
# `prohibit-password` (keys only) is allowed with a warning; `no` is best.
package compliance.sshd

import rego.v1

collect_files contains "/etc/ssh/sshd_config"

collect_files contains "/etc/ssh/sshd_config.d/*.conf"

# sshd reads the drop-ins first (Debian's sshd_config includes them on its first line), in
# name order, and keeps the first value it reads of each keyword.
sources := array.concat(
	[f | some path in sort(object.keys(input.host.files)); regex.match(`^/etc/ssh/sshd_config\.d/[^/]+\.conf$`, path); f := input.host.files[path]],
	[f | f := input.host.files["/etc/ssh/sshd_config"]],
)

values := [lower(m[0][1]) |
	some f in sources
	is_string(f.content)
	m := regex.find_all_string_submatch_n(`(?mi)^[ \t]*PermitRootLogin[ \t]+(\S+)`, f.content, 1)
	count(m) > 0
]

# Unset: sshd's default, prohibit-password.
effective := v if {
	count(values) > 0
	v := values[0]
} else := "prohibit-password"

installed if input.host.packages["openssh-server"]

deny contains msg if {
	installed
	effective == "yes"
	msg := "sshd lets root log in with a password (PermitRootLogin yes): set it to no or prohibit-password"
}

deny contains msg if {
	installed
	not input.host.files["/etc/ssh/sshd_config"].exists
	msg := "openssh-server is installed but /etc/ssh/sshd_config is missing"
}

warn contains msg if {
	installed
	effective == "prohibit-password"
	msg := "root may log in over SSH with a key (PermitRootLogin prohibit-password)"
}
