#!/bin/bash
mkdir -p "$1/logs/old" "$1/conf"
for n in app worker cron; do echo "log of $n" > "$1/logs/$n.log"; done
echo "rotated" > "$1/logs/old/app.log.1"
echo "not a log" > "$1/logs/README"
printf 'token=s3cr3t\nregion=eu\n' > "$1/conf/settings.ini"
