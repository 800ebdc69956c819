# An upstream repository on the host, with fixed dates so both tools' hosts get the same
# commit ids: main (two commits), an annotated tag v1, a branch stable one commit ahead.
set -e
export HOME=/root GIT_AUTHOR_NAME=lab GIT_AUTHOR_EMAIL=lab@example.com
export GIT_COMMITTER_NAME=lab GIT_COMMITTER_EMAIL=lab@example.com
export GIT_AUTHOR_DATE="2020-01-02T03:04:05Z" GIT_COMMITTER_DATE="2020-01-02T03:04:05Z"
work=$(mktemp -d)
cd "$work"
git init -q -b main
mkdir bin
echo 1.0 > VERSION
printf '#!/bin/sh\necho app\n' > bin/app
chmod 0755 bin/app
git add .
git commit -q -m "1.0"
git tag -a v1 -m "release 1.0"
echo 1.1 > VERSION
git commit -q -am "1.1"
git checkout -q -b stable
echo 1.1-stable > VERSION
git commit -q -am "stable"
git checkout -q main
mkdir -p /srv/upstream
git clone -q --bare "$work" /srv/upstream/app.git
rm -rf "$work"
