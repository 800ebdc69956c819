# Helpers the example policies share.
package tend.lib

import rego.v1

# The directory a host's paths live under: "" on a real host. Tests run each host under a
# directory of its own and say so with the host variable `policy_root`, so the same policies
# judge `/etc/...` on a host and `<root>/etc/...` in a test.
root(host) := r if {
	r := input.hosts[host].vars.policy_root
	is_string(r)
} else := ""

# The value a change gives a file attribute (`mode`, `owner` …): from its diff when the file
# exists, else from the task's arguments (a new file's attributes show only there).
attr(change, name) := change.after[name]

attr(change, name) := change.args[name] if not change.after[name]

# Whether a change's path is strictly under `dir` (`/etc`, `/srv`) on its host.
under(change, dir) if {
	is_string(change.path)
	startswith(change.path, concat("", [root(change.host), dir, "/"]))
}
