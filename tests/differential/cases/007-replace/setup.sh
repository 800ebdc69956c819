#!/bin/bash
cat > "$1/app.ini" <<'INI'
[db]
host = db.old.example
port = 5432
user = app

[cache]
host = cache.old.example
port = 6379

[log]
level = DEBUG
path = /var/log/old/app.log
INI
