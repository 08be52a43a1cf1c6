#!/usr/bin/env bash
# Test scaffolding for `make test-stack`, never part of the stack users run: on a machine that cannot pull from
# Docker Hub, local stand-ins for the images docker-compose.yml names, made from Debian's packages.
#
#   elcrec-stack-test/python:bookworm      for python:3.11-slim-bookworm (Debian's python3 is 3.11; ca-certificates)
#   elcrec-stack-test/redis:bookworm       for redis:7.4-alpine (Debian's redis-server, protected mode off as there)
#   elcrec-stack-test/prometheus:bookworm  for prom/prometheus (Debian's prometheus, entrypoint the server)
#
# One debootstrap (minbase) feeds all three; an image that exists already is kept. Prints nothing on success
# but what it does.
set -euo pipefail

TAG=elcrec-stack-test
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$TAG/base:bookworm"; then
    root=$(mktemp -d /tmp/elcrec-stack-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    echo "standins: debootstrap bookworm into $root (a few minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,redis-server,prometheus,wget \
        bookworm "$root/rootfs" "$MIRROR" >"$root/debootstrap.log" 2>&1 \
        || { tail -20 "$root/debootstrap.log"; exit 1; }
    ln -sf python3 "$root/rootfs/usr/bin/python"  # the official python image has `python`
    rm -rf "$root"/rootfs/var/cache/apt/archives/*.deb "$root"/rootfs/var/lib/apt/lists/*
    tar -C "$root/rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$TAG/base:bookworm" >/dev/null
    echo "standins: made $TAG/base:bookworm"
fi

build() {  # build NAME with the Dockerfile on stdin, FROM the base
    have "$TAG/$1:bookworm" || { docker build -q -t "$TAG/$1:bookworm" - >/dev/null && echo "standins: made $TAG/$1:bookworm"; }
}
build python <<DOCKERFILE
FROM $TAG/base:bookworm
DOCKERFILE
build redis <<DOCKERFILE
FROM $TAG/base:bookworm
RUN printf '#!/bin/sh\nexec /usr/bin/redis-server "\$@" --protected-mode no\n' > /usr/local/bin/redis-server \
    && chmod +x /usr/local/bin/redis-server && mkdir -p /data
WORKDIR /data
DOCKERFILE
build prometheus <<DOCKERFILE
FROM $TAG/base:bookworm
ENTRYPOINT ["/usr/bin/prometheus"]
DOCKERFILE
