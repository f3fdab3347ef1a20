#!/usr/bin/env bash
# Vendored from the workplace tools (../shared/tools/compose-local.sh), so CI has it; `make
# compose-test` prefers that copy when it is there.
# compose-local.sh — run a docker-compose.yml for real on a machine that reaches only the Debian
# archive, PyPI and npm (no image registry). Needs root. Builds a local Debian base image with debootstrap,
# tags it (and stand-ins for service images) with the names the compose file expects, then runs compose.
#
#   usage: compose-local.sh up|test|down   (env: COMPOSE_FILES, PROJECT, TEST_SERVICE, COMPOSE=v1|v2, WORK)
set -euo pipefail
WORK=${WORK:-/tmp/compose-local}          # rootfs, logs, pid files (not in the repo)
PROJECT=${PROJECT:-cl}
COMPOSE=${COMPOSE:-v1}                    # v1: Debian 12 docker-compose 1.29.2; v2: plugin from trixie .deb
COMPOSE_FILES=${COMPOSE_FILES:-docker-compose.yml}
TEST_SERVICE=${TEST_SERVICE:-app}
SUITE=${SUITE:-bookworm}                  # bookworm: python 3.11, trixie: python 3.13
BASE=localhost/debian-python:$SUITE
# image names the compose file / Dockerfiles use  ->  what stands in for them
PY_ALIASES=${PY_ALIASES:-"python:3.12-slim python:3.12 python:3.11-slim"}
REDIS_ALIASES=${REDIS_ALIASES:-"redis:7-alpine redis:7"}
mkdir -p "$WORK"
log(){ printf '[%(%T)T] %s\n' -1 "$*" >&2; }
cf_args(){ local a=(); for f in $COMPOSE_FILES; do a+=(-f "$f"); done; echo "${a[@]}"; }

install_pkgs(){
  command -v dockerd >/dev/null && command -v debootstrap >/dev/null && command -v docker-compose >/dev/null && return
  log "apt-get install docker.io docker-compose debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io docker-compose debootstrap ca-certificates iptables >/dev/null
}

install_compose_v2(){   # docker compose v2 + buildx: Debian trixie's .debs (need libc6>=2.34; bookworm has 2.36)
  local P=$WORK/docker-config/cli-plugins; export DOCKER_CONFIG=$WORK/docker-config
  [ -x "$P/docker-compose" ] && return; mkdir -p "$P"
  local A=$WORK/apt-trixie; mkdir -p $A/lists/partial $A/cache/archives/partial $A/deb
  local M; M=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$M" ] || M=$(grep -hE '^deb ' /etc/apt/sources.list | head -1 | awk '{print $2}')
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $M trixie main" > $A/sources.list
  local O=(-o Dir::Etc::SourceList=$A/sources.list -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists=$A/lists -o Dir::Cache=$A/cache -o Debug::NoLocking=1)
  apt-get "${O[@]}" update -qq
  (cd $A/deb && apt-get "${O[@]}" download docker-compose docker-buildx)
  for d in $A/deb/*.deb; do dpkg-deb -x "$d" $A/x; done
  cp $A/x/usr/libexec/docker/cli-plugins/docker-{compose,buildx} "$P/"
}

start_dockerd(){
  if docker info >/dev/null 2>&1; then log "docker engine already up"; return; fi
  # remember what dockerd changes, to put it back in stop_dockerd
  cat /proc/sys/net/ipv4/ip_forward > $WORK/ip_forward.before
  iptables -S FORWARD | awk '/^-P/{print $3}' > $WORK/forward_policy.before
  log "starting dockerd"
  setsid dockerd --data-root /var/lib/docker >$WORK/dockerd.log 2>&1 </dev/null &
  echo $! > $WORK/dockerd.pid
  for i in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
  log "dockerd did not come up"; tail -20 $WORK/dockerd.log; exit 1
}

stop_dockerd(){
  [ -f $WORK/dockerd.pid ] || return 0
  local pid; pid=$(cat $WORK/dockerd.pid)
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping dockerd ($pid)"; kill -TERM "$pid"
    for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f $WORK/dockerd.pid
  ip link del docker0 2>/dev/null || true
  [ -f $WORK/forward_policy.before ] && iptables -P FORWARD "$(cat $WORK/forward_policy.before)"
  [ -f $WORK/ip_forward.before ] && cat $WORK/ip_forward.before > /proc/sys/net/ipv4/ip_forward
}

build_base(){
  docker image inspect "$BASE" >/dev/null 2>&1 && return
  local R=$WORK/rootfs-$SUITE M
  M=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$M" ] || M=$(grep -hE '^deb ' /etc/apt/sources.list | head -1 | awk '{print $2}')
  log "debootstrap $SUITE (minbase + python3)"
  rm -rf "$R"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
      "$SUITE" "$R" "$M" >$WORK/debootstrap.log 2>&1
  # apt sources for image builds: same mirror (deb822 like the host), incl. updates + security
  rm -f "$R/etc/apt/sources.list"
  sed "s/bookworm/$SUITE/g" /etc/apt/sources.list.d/debian.sources > "$R/etc/apt/sources.list.d/debian.sources"
  # where outbound HTTPS is re-signed by a local CA, the image needs the host's extra CAs (never commit them)
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$R" update-ca-certificates >/dev/null 2>&1
  rm -f "$R"/usr/lib/python3*/EXTERNALLY-MANAGED      # behave like python:* images (global pip install)
  chroot "$R" apt-get clean; rm -rf "$R"/var/lib/apt/lists/*
  log "docker import $BASE"
  tar -C "$R" --numeric-owner -c . | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
      --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
      --change 'CMD ["python3"]' - "$BASE" >/dev/null
}

build_standins(){
  for t in $PY_ALIASES; do docker tag "$BASE" "$t"; done
  if [ -n "$REDIS_ALIASES" ]; then
    local D=$WORK/standin-redis; mkdir -p $D
    cat > $D/entrypoint.sh <<'EOS'
#!/bin/sh
# like the official image: "redis-server ARGS" or "-flags" -> redis-server reachable from other containers
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then shift; set -- redis-server "$@" --protected-mode no; fi
exec "$@"
EOS
    printf '%s\n' "FROM $BASE" \
      'RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools && rm -rf /var/lib/apt/lists/*' \
      'COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh' 'RUN chmod +x /usr/local/bin/docker-entrypoint.sh && mkdir -p /data' \
      'WORKDIR /data' 'EXPOSE 6379' 'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]' > $D/Dockerfile
    local first; first=${REDIS_ALIASES%% *}
    docker image inspect "$first" >/dev/null 2>&1 || { log "building redis stand-in"; DOCKER_BUILDKIT=0 docker build -q -t "$first" $D >/dev/null; }
    for t in $REDIS_ALIASES; do docker tag "$first" "$t"; done
  fi
}

compose(){ if [ "$COMPOSE" = v2 ]; then DOCKER_CONFIG=$WORK/docker-config docker compose "$@"; else docker-compose "$@"; fi; }

case "${1:-test}" in
  prepare) install_pkgs; [ "$COMPOSE" = v2 ] && install_compose_v2; start_dockerd; build_base; build_standins ;;
  up)   "$0" prepare; compose -p "$PROJECT" $(cf_args) up -d --build ;;
  test) "$0" prepare
        rc=0; compose -p "$PROJECT" $(cf_args) build
        compose -p "$PROJECT" $(cf_args) up --no-color --exit-code-from "$TEST_SERVICE" "$TEST_SERVICE" || rc=$?
        compose -p "$PROJECT" $(cf_args) down -v --remove-orphans || true
        exit $rc ;;
  down) compose -p "$PROJECT" $(cf_args) down -v --remove-orphans || true; stop_dockerd ;;
  stop-daemon) stop_dockerd ;;
  *) echo "usage: $0 prepare|up|test|down|stop-daemon" >&2; exit 2 ;;
esac
