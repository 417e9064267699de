#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# metadata.cloudinit: runs test_cloudinit.py with Debian's system python3 and cloud-init's own
# Python package. Where cloud-init is not installed, its .deb is fetched once with
# `apt-get download` into CACHE and unpacked there (dpkg -x): never installed on the host, whose
# boot it would change. Exit 77 (skip) only when neither is possible (no apt source).
# Usage: run-cloudinit.sh CACHE_DIR MD_HELPER
set -eu
cache=$1 helper=$2
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || { echo "metadata.cloudinit: no /usr/bin/python3: skipped"; exit 77; }
pkgdir=
if "$py" -c 'import cloudinit' 2>/dev/null; then
    pkgdir=
elif [ -d "$cache/x/usr/lib/python3/dist-packages/cloudinit" ]; then
    pkgdir=$cache/x/usr/lib/python3/dist-packages
else
    mkdir -p "$cache"
    rm -rf "$cache/x" "$cache"/cloud-init_*.deb
    (cd "$cache" && apt-get download -q cloud-init 2>&1 |
         grep -v '^W: Download is performed unsandboxed' >&2) || true
    deb=$(ls "$cache"/cloud-init_*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || { echo "metadata.cloudinit: apt-get download cloud-init failed: skipped"; exit 77; }
    dpkg -x "$deb" "$cache/x.tmp" && mv "$cache/x.tmp" "$cache/x"
    pkgdir=$cache/x/usr/lib/python3/dist-packages
fi
export PYTHONPATH=${pkgdir}${PYTHONPATH:+:$PYTHONPATH}
exec "$py" "$here/test_cloudinit.py" "$helper"
