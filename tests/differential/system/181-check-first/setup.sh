# State a check run can read: fresh package lists, an upstream repository, a web server on
# loopback, and a running cron that the play stops.
set -e
apt-get update -qq
export HOME=/root GIT_AUTHOR_NAME=lab GIT_AUTHOR_EMAIL=lab@example.com
export GIT_COMMITTER_NAME=lab GIT_COMMITTER_EMAIL=lab@example.com
export GIT_AUTHOR_DATE="2022-02-03T04:05:06Z" GIT_COMMITTER_DATE="2022-02-03T04:05:06Z"
work=$(mktemp -d)
cd "$work"
git init -q -b main
echo one > README
git add .
git commit -q -m one
mkdir -p /srv/upstream
git clone -q --bare "$work" /srv/upstream/docs.git
rm -rf "$work"
mkdir -p /srv/www
printf 'motd from the web\n' > /srv/www/motd
cd /srv/www
setsid python3 -m http.server 8000 --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &
for i in $(seq 1 100); do
  python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/motd")' 2>/dev/null && break
  sleep 0.1
done
systemctl start cron
