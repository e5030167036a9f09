#!/usr/bin/env bash
# Installs every Debian 12 package pobj needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt-get runs only when something is missing.
#   scripts/install-deps.sh [etcd]   etcd: also etcd 3.4 (the replication benchmark's peer)
set -euo pipefail

packages=(
  meson ninja-build pkg-config g++ clang-14 cmake make
  libpmem2-dev libpmemobj-dev libpmem-dev
  libboost1.81-dev libfmt-dev catch2 libbenchmark-dev
  libclang-14-dev llvm-14-dev libclang-rt-14-dev libfabric-dev
  redis-server redis-tools python3-redis libhiredis-dev
  # tests/replication/netns.py: the Jepsen test's members in network namespaces, faults by nftables
  iproute2 nftables
  # replication/: Debian's Go and etcd's raft library (Go source), built offline by meson
  golang-go golang-etcd-server-dev golang-github-gogo-protobuf-dev golang-github-golang-protobuf-1-3-dev
)
for group in "$@"; do
  case $group in
    etcd) packages+=(etcd-server etcd-client) ;;  # bench/replication/run.sh
    *) echo "install-deps: unknown group $group (etcd)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: missing ${missing[*]}; run this script as root (or install sudo)" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
