package tend.db_bind

import rego.v1

rendered(path, text) := {"changes": [{"host": "h", "task": "t", "action": "create", "path": path, "content": {"after": text}}]}

test_redis_on_all_addresses_denied if {
	count(deny) == 1 with input as rendered("/etc/redis/redis.conf", "port 6379\nbind 127.0.0.1 0.0.0.0\n")
}

test_postgres_star_denied if {
	count(deny) == 1 with input as rendered("/etc/postgresql/16/main/postgresql.conf", "listen_addresses = '*'\n")
}

test_mysql_denied if {
	count(deny) == 1 with input as rendered("/etc/mysql/my.cnf", "[mysqld]\nbind-address = 0.0.0.0\n")
}

test_listen_address_with_port_denied if {
	count(deny) == 1 with input as rendered("/etc/app/env", "DB=0.0.0.0:5432\n")
}

test_loopback_allowed if {
	count(deny) == 0 with input as rendered("/etc/redis/redis.conf", "bind 127.0.0.1 ::1\n# bind 0.0.0.0\nlisten 0.0.0.0:8080\n")
}
