package compliance.sshd_test

import rego.v1

import data.compliance.sshd

host(files) := {"host": {"packages": {"openssh-server": [{"version": "1:9.2p1-2"}]}, "files": files}}

main(text) := {"/etc/ssh/sshd_config": {"exists": true, "content": text}}

test_root_password_login_denied if {
	count(sshd.deny) == 1 with input as host(main("Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n"))
}

test_no_passes_quietly if {
	count(sshd.deny) == 0 with input as host(main("PermitRootLogin no\n"))
	count(sshd.warn) == 0 with input as host(main("PermitRootLogin no\n"))
}

test_unset_is_the_default_and_warns if {
	count(sshd.deny) == 0 with input as host(main("# nothing\n"))
	count(sshd.warn) == 1 with input as host(main("# nothing\n"))
}

test_a_drop_in_wins_over_the_main_file if {
	files := object.union(main("PermitRootLogin no\n"), {
		"/etc/ssh/sshd_config.d/00-bad.conf": {"exists": true, "content": "PermitRootLogin yes\n"},
		"/etc/ssh/sshd_config.d/50-good.conf": {"exists": true, "content": "PermitRootLogin no\n"},
	})
	count(sshd.deny) == 1 with input as host(files)
}

test_without_openssh_nothing_is_said if {
	count(sshd.deny) == 0 with input as {"host": {"packages": {}, "files": main("PermitRootLogin yes\n")}}
}

test_a_missing_config_is_denied if {
	count(sshd.deny) == 1 with input as host({"/etc/ssh/sshd_config": {"exists": false}})
}
