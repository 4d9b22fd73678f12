#!/usr/bin/env bash
# System packages Squall needs, installed with apt when run as root.
# Idempotent: returns at once when everything is already installed.
set -u
PKGS=(libmkl-rt libopenblas0-pthread libopenblas-dev dataset-fashion-mnist python3-torch python3-protobuf)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "squall setup: not root, skipped apt packages: ${missing[*]} (the engine uses what is installed; MKL/OpenBLAS missing means the built-in GEMM)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "squall setup: no apt-get, skipped system packages: ${missing[*]}"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# MKL lives in Debian's non-free component. Derive its stanza from the existing Debian
# source (same mirror, suites and key) rather than naming a host here.
nonfree=/etc/apt/sources.list.d/squall-non-free.sources
if [ ! -f "$nonfree" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  awk 'BEGIN{RS=""; ORS="\n\n"} /URIs:[^\n]*\/debian\/?(\n|$)/ && !/security/ {
         sub(/Components:[^\n]*/, "Components: non-free"); print; exit }' \
      /etc/apt/sources.list.d/debian.sources > "$nonfree.tmp"
  if [ -s "$nonfree.tmp" ]; then mv "$nonfree.tmp" "$nonfree"; else rm -f "$nonfree.tmp"; fi
elif [ ! -f "$nonfree" ] && [ -f /etc/apt/sources.list ] && ! grep -q non-free /etc/apt/sources.list; then
  grep -E '^deb .*/debian/? [a-z]+ ' /etc/apt/sources.list | grep -v security | head -n1 \
    | sed -E 's/ main.*$/ non-free/' > /etc/apt/sources.list.d/squall-non-free.list
fi
# MKL's postinst asks whether to become the system's default BLAS/LAPACK: answer no, so
# numpy/torch keep OpenBLAS and Squall chooses its provider itself.
echo "libmkl-rt libmkl-rt/use-as-default-blas-lapack boolean false" | debconf-set-selections
echo "squall setup: installing ${missing[*]}"
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/squall-apt.log 2>&1; then
  # Install one by one so one unavailable package does not block the rest.
  for p in "${missing[@]}"; do
    apt-get install -y -qq --no-install-recommends "$p" >>/tmp/squall-apt.log 2>&1 \
      || echo "squall setup: could not install $p (see /tmp/squall-apt.log)"
  done
fi
exit 0
