# What the app server is deployed from, all on the host itself (the lab has no route out):
# an upstream git repository with fixed dates (so both tools' hosts get the same commit ids)
# and a web server on loopback publishing a release tarball and its checksum.
set -e
export HOME=/root GIT_AUTHOR_NAME=lab GIT_AUTHOR_EMAIL=lab@example.com
export GIT_COMMITTER_NAME=lab GIT_COMMITTER_EMAIL=lab@example.com
export GIT_AUTHOR_DATE="2021-05-06T07:08:09Z" GIT_COMMITTER_DATE="2021-05-06T07:08:09Z"
work=$(mktemp -d)
cd "$work"
git init -q -b main
mkdir conf
printf 'greeting = hello\n' > conf/app.conf
git add .
git commit -q -m "config 1"
git tag v2
mkdir -p /srv/upstream
git clone -q --bare "$work" /srv/upstream/config.git
rm -rf "$work"

mkdir -p /srv/www/rel/app-2.0/bin
printf '#!/bin/sh\nexec python3 -m http.server 8081 --bind 127.0.0.1 --directory /srv/app/current/public\n' \
    > /srv/www/rel/app-2.0/bin/serve
chmod 0755 /srv/www/rel/app-2.0/bin/serve
mkdir -p /srv/www/rel/app-2.0/public
printf 'app 2.0\n' > /srv/www/rel/app-2.0/public/index.html
tar -C /srv/www/rel --owner=0 --group=0 --mtime=2021-05-06 -czf /srv/www/app-2.0.tar.gz app-2.0
rm -rf /srv/www/rel
cd /srv/www
sha256sum app-2.0.tar.gz > SHA256SUMS
setsid python3 -m http.server 8000 --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &
for i in $(seq 1 100); do
  python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/SHA256SUMS")' 2>/dev/null && exit 0
  sleep 0.1
done
echo "http.server did not start" >&2
exit 1
