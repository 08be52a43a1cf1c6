#!/usr/bin/env bash
# `make test-stack`: a Docker engine that answers, started by hand where none runs (no systemd on these
# machines). Its log: ${DOCKERD_LOG:-/tmp/elcrec-dockerd.log}.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
[ "$(id -u)" = 0 ] || { echo "no Docker engine answers and starting one needs root: start dockerd, then rerun"; exit 1; }
log=${DOCKERD_LOG:-/tmp/elcrec-dockerd.log}
echo "engine: starting dockerd (log $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { echo "engine: dockerd $(docker info --format '{{.ServerVersion}}') is up"; exit 0; }
    sleep 1
done
echo "engine: dockerd did not answer within 60 s:"; tail -20 "$log"; exit 1
