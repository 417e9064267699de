#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's quick start: installs the Debian packages kova needs, builds it, and runs
# kova-agent in the foreground with the embedded defaults: state (SQLite, images, instances)
# under ./state, listening on 127.0.0.1:8774, no auth (Nova's noauth2). Ctrl-C stops it.
# Arguments are passed to kova-agent (e.g. --listen 127.0.0.1:9774).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
deploy/install-deps.sh
cmake -S . -B build/default -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/default -j"$(nproc)" >/dev/null
exec build/default/agent/kova-agent --state-dir "$top/state" "$@"
