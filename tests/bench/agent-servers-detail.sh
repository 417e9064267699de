#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Benchmark: GET /v2.1/servers/detail with 1000 servers in kova-agent's database, measured from a
# second process (wrk) on loopback. Prints throughput and p50/p99 latency; asserts nothing.
#
# usage: tests/bench/agent-servers-detail.sh [path/to/kova-agent] [seconds] [connections]
#   default agent: build/default/agent/kova-agent (or $KOVA_AGENT)
# Measured: the full list as identity (~1.3 MB of JSON per reply) and with Accept-Encoding: gzip
# (what python-requests, hence the openstack CLI, novaclient and the SDK, send), both served from
# the agent's reply cache; the same list rendered afresh every time (a query argument that
# changes on every request defeats the cache: the cost of the first GET after a write); the list
# paged (?limit=100, ?limit=10) and one server (GET /servers/{id}, never cached).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
agent=${1:-${KOVA_AGENT:-$root/build/default/agent/kova-agent}}
secs=${2:-10}
conns=${3:-4}
py=/usr/bin/python3
command -v wrk >/dev/null || { echo "wrk is needed (deploy/install-deps.sh installs it)" >&2; exit 2; }
[ -x "$agent" ] || { echo "no agent binary at $agent" >&2; exit 2; }

tmp=$(mktemp -d /tmp/kova-bench-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iport=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/kova.conf" <<CONF
[quota]
instances = -1
cores = -1
ram = -1
[kova]
log_level = warning
CONF
"$agent" --config "$tmp/kova.conf" --state-dir "$tmp/state" --listen "127.0.0.1:$port" \
    --image-listen "127.0.0.1:$iport" 2>"$tmp/agent.log" &
pid=$!

base=http://127.0.0.1:$port
export KOVA_BENCH_BASE=$base KOVA_BENCH_IMAGE=http://127.0.0.1:$iport
$py - <<'PY'
import json, os, time, urllib.request
base, img = os.environ["KOVA_BENCH_BASE"], os.environ["KOVA_BENCH_IMAGE"]
H = {"X-Auth-Token": "bench:bench", "Content-Type": "application/json"}
def call(method, url, body=None, ctype=None):
    h = dict(H)
    if ctype: h["Content-Type"] = ctype
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=h, method=method)) as r:
        b = r.read()
        return json.loads(b) if b else None
for _ in range(200):
    try:
        call("GET", base + "/"); break
    except OSError:
        time.sleep(0.05)
i = call("POST", img + "/v2/images", {"name": "bench", "disk_format": "raw", "container_format": "bare"})
call("PUT", img + "/v2/images/%s/file" % i["id"], b"\0" * 4096, "application/octet-stream")
call("POST", base + "/v2.1/servers", {"server": {"name": "bench", "imageRef": i["id"],
     "flavorRef": "1", "min_count": 1000, "max_count": 1000, "metadata": {"role": "bench"}}})
while True:  # all 1000 have left BUILD (they end in ERROR: no lifecycle yet)
    s = call("GET", base + "/v2.1/servers/detail?status=BUILD")["servers"]
    if not s: break
    time.sleep(0.1)
d = call("GET", base + "/v2.1/servers/detail")
print("servers in DB: %d; /servers/detail body: %d bytes" % (len(d["servers"]),
      len(json.dumps(d, separators=(",", ":")))))
open(os.environ.get("TMPDIR", "/tmp") + "/kova-bench-one", "w").write(d["servers"][0]["id"])
PY
one=$(cat "${TMPDIR:-/tmp}/kova-bench-one"); rm -f "${TMPDIR:-/tmp}/kova-bench-one"

# run LABEL URL [wrk args...]
run() {
    local label=$1 url=$2
    shift 2
    echo "== $label: wrk -t2 -c$conns -d${secs}s $* $url"
    wrk -t2 -c"$conns" -d"${secs}s" --latency -H "X-Auth-Token: bench:bench" "$@" "$url" |
        awk -v label="$label" '
            /Requests\/sec/ { rps = $2 } /Transfer\/sec/ { xfer = $2 }
            /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
            /Non-2xx/ { bad = $NF }
            END { printf "%s: %s req/s, p50 %s, p99 %s, %s/s%s\n", label, rps, p50, p99, xfer,
                         bad ? ", NON-2xx: " bad : "" }'
}
size() { # size ACCEPT-ENCODING: body bytes on the wire
    curl -s -o /dev/null -w '%{size_download}' -H "X-Auth-Token: bench:bench" \
        -H "Accept-Encoding: $1" "$base/v2.1/servers/detail"
}
cat > "$tmp/miss.lua" <<'LUA'
-- every request has a query argument of its own: a cache miss, rendered from the database
local n = 0
request = function()
    n = n + 1
    return wrk.format(nil, wrk.path .. "?miss=" .. n .. "-" .. math.random(1e9))
end
LUA
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reply size: identity $(size identity) bytes, gzip $(size gzip) bytes"
run "servers/detail (1000 servers), identity" "$base/v2.1/servers/detail"
run "servers/detail (1000 servers), gzip" "$base/v2.1/servers/detail" -H "Accept-Encoding: gzip"
run "servers/detail (1000 servers), uncached, identity" "$base/v2.1/servers/detail" \
    -s "$tmp/miss.lua"
run "servers/detail (1000 servers), uncached, gzip" "$base/v2.1/servers/detail" \
    -s "$tmp/miss.lua" -H "Accept-Encoding: gzip"
run "servers/detail?limit=100" "$base/v2.1/servers/detail?limit=100"
run "servers/detail?limit=10" "$base/v2.1/servers/detail?limit=10"
run "servers/{id}" "$base/v2.1/servers/$one"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
