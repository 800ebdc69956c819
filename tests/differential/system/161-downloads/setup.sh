# A web server on the host's loopback serving a package and its checksum file.
set -e
mkdir -p /srv/www
printf 'payload 1.0\n' > /srv/www/pkg-1.0.txt
cd /srv/www
sha256sum pkg-1.0.txt > SHA256SUMS
mkdir -p /tmp/xz/data/sub
printf 'compressed with xz\n' > /tmp/xz/data/sub/readme.txt
tar -C /tmp/xz --owner=0 --group=0 --mtime=2020-03-04 -cJf /srv/www/data.tar.xz data
rm -rf /tmp/xz
setsid python3 -m http.server 8000 --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &
for i in $(seq 1 100); do
  python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/SHA256SUMS")' 2>/dev/null && exit 0
  sleep 0.1
done
echo "http.server did not start" >&2
exit 1
