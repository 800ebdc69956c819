# A router's sysctl file from an earlier tool (a comment, spaces around '=', mode 0640), and
# a small HTTP API on the host's loopback: a JSON status, a page, a directory.
set -e
printf '# router settings\nnet.ipv4.tcp_syncookies = 1\n' > /etc/sysctl.d/60-router.conf
chmod 0640 /etc/sysctl.d/60-router.conf
mkdir -p /srv/www/docs /srv/out
printf '{"app": "router", "healthy": true, "peers": [1, 2]}\n' > /srv/www/status.json
printf '<h1>router admin</h1>\n' > /srv/www/index.html
printf 'docs\n' > /srv/www/docs/index.html
cd /srv/www
setsid python3 -m http.server 8000 --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &
for i in $(seq 1 100); do
  python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/status.json")' 2>/dev/null && exit 0
  sleep 0.1
done
echo "http.server did not start" >&2
exit 1
