#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# A real Keystone for tests: Debian's keystone under uwsgi, state in DIR (SQLite, fernet keys),
# listening on 127.0.0.1:PORT.
#   keystone-run.sh setup DIR PORT ADMIN-PASSWORD   config, db_sync, keys, bootstrap (RegionOne)
#   keystone-run.sh start DIR PORT                  runs uwsgi in the background; DIR/uwsgi.pid
#   keystone-run.sh stop DIR                        stops it
# How it is made reliable (design.md §9 lists what a first trial showed):
#   - one uwsgi worker process with one thread: SQLite takes one writer at a time;
#   - the database in WAL mode: a reader's open transaction never blocks a writer;
#   - "Connection: close" on every answer: no keep-alive connection that uwsgi may reset.
set -euo pipefail
cmd=${1:?usage: keystone-run.sh setup|start|stop DIR [PORT [PASSWORD]]}
dir=${2:?DIR}
py=/usr/bin/python3
manage() { "$py" /usr/bin/keystone-manage --config-file "$dir/keystone.conf" "$@"; }

case "$cmd" in
setup)
    port=${3:?PORT} pw=${4:?PASSWORD}
    mkdir -p "$dir/fernet-keys" "$dir/credential-keys" "$dir/log"
    cat >"$dir/keystone.conf" <<CONF
[DEFAULT]
log_file = $dir/log/keystone.log
use_stderr = false
[database]
connection = sqlite:///$dir/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-keys
[credential]
key_repository = $dir/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
CONF
    # (the cache: in this one uwsgi process's memory, as memcached serves a deployed Keystone;
    # without it a validation recomputes role assignments ~12 times: ~1 s of CPU here)
    manage db_sync
    "$py" - "$dir/keystone.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print("keystone-run: journal_mode", c.execute("PRAGMA journal_mode=WAL").fetchone()[0])
c.close()
PY
    manage fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    manage credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    manage bootstrap --bootstrap-password "$pw" --bootstrap-username admin \
        --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "http://127.0.0.1:$port/v3" \
        --bootstrap-public-url "http://127.0.0.1:$port/v3" \
        --bootstrap-internal-url "http://127.0.0.1:$port/v3"
    ;;
start)
    port=${3:?PORT}
    OS_KEYSTONE_CONFIG_FILES="$dir/keystone.conf" \
        uwsgi --plugin python3 --http-socket "127.0.0.1:$port" \
        --wsgi-file /usr/bin/keystone-wsgi-public --processes 1 --threads 1 --master \
        --lazy-apps --die-on-term --add-header "Connection: close" --buffer-size 65535 \
        --env "OS_KEYSTONE_CONFIG_FILES=$dir/keystone.conf" \
        --pidfile "$dir/uwsgi.pid" --daemonize "$dir/log/uwsgi.log"
    for _ in $(seq 1 150); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/v3" && exit 0
        sleep 0.2
    done
    echo "keystone-run: keystone did not answer on port $port (log: $dir/log)" >&2
    exit 1
    ;;
stop)
    [ -f "$dir/uwsgi.pid" ] || exit 0
    pid=$(cat "$dir/uwsgi.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/uwsgi.pid"
    ;;
*) echo "keystone-run: unknown command $cmd" >&2; exit 2 ;;
esac
