#!/bin/sh
# Build the vSphere simulator used by patchgate's vSphere tests and simulator labs.
# Needs Debian's golang-go, golang-github-vmware-govmomi-dev and golang-github-google-uuid-dev.
# Idempotent: rebuilds only when main.go is newer than the binary; prints the binary's path.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/vcsim"
if [ -x "$bin" ] && [ "$bin" -nt "$here/main.go" ] && [ "$bin" -nt "$here/build.sh" ]; then
    echo "$bin"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: 'go' not found; install: apt-get install -y golang-go golang-github-vmware-govmomi-dev golang-github-google-uuid-dev" >&2
    exit 1
fi
if [ ! -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ]; then
    echo "build.sh: govmomi sources missing; install: apt-get install -y golang-github-vmware-govmomi-dev golang-github-google-uuid-dev" >&2
    exit 1
fi
gopath="$here/.gopath"
mkdir -p "$gopath/src/patchgate-vcsim" "$gopath/cache"
cp "$here/main.go" "$gopath/src/patchgate-vcsim/main.go"
(
    cd "$gopath/src/patchgate-vcsim"
    GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOCACHE="$gopath/cache" \
        go build -o "$bin.tmp" . >&2
)
mv "$bin.tmp" "$bin"
echo "$bin"
