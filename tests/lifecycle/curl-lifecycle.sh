#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A server's whole lifecycle with curl alone (the README quotes it):
#   KOVA_URL=http://127.0.0.1:8774/v2.1 KOVA_IMAGE=<image id> [KOVA_FLAVOR=1] curl-lifecycle.sh
# The image is a disk image whose properties name its kernel (kernel_id), initramfs
# (ramdisk_id) and command line (os_command_line). noauth2: any token, "user:project".
# Exit 0 when every step reached the state Nova documents; prints each step.
set -eu
URL=${KOVA_URL:-http://127.0.0.1:8774/v2.1}
IMAGE=${KOVA_IMAGE:?set KOVA_IMAGE to a bootable image id}
FLAVOR=${KOVA_FLAVOR:-1}
H='X-Auth-Token: admin:admin'

api() { # METHOD PATH [JSON]
    if [ $# -ge 3 ]; then
        curl -sS -X "$1" -H "$H" -H 'Content-Type: application/json' -d "$3" "$URL$2"
    else
        curl -sS -X "$1" -H "$H" "$URL$2"
    fi
}
field() { # KEY (from a server body on stdin)
    /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)["server"]; print(s.get(sys.argv[1]))' "$1"
}
wait_for() { # ID STATUS: until status is STATUS with no task
    i=0
    while [ $i -lt 1500 ]; do
        body=$(api GET "/servers/$1")
        st=$(echo "$body" | field status)
        task=$(echo "$body" | field OS-EXT-STS:task_state)
        if [ "$st" = "$2" ] && [ "$task" = None ]; then
            echo "  $1: $st"
            return 0
        fi
        if [ "$st" = ERROR ] && [ "$2" != ERROR ]; then
            echo "  $1: ERROR: $body" >&2
            return 1
        fi
        sleep 0.2
        i=$((i + 1))
    done
    echo "  $1: never $2 (last $st/$task)" >&2
    return 1
}
action() { # ID JSON
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "$H" \
        -H 'Content-Type: application/json' -d "$2" "$URL/servers/$1/action")
    [ "$code" = 202 ] || { echo "action $2: HTTP $code" >&2; return 1; }
}
console_has() { # ID TEXT [N]: wait until TEXT is on the whole console at least N times (1)
    # (the console log keeps every boot's lines: the n-th boot's marker is the n-th one)
    i=0
    while [ $i -lt 600 ]; do
        n=$(api POST "/servers/$1/action" '{"os-getConsoleOutput": {}}' |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["output"].count(sys.argv[1]))' "$2") || n=0
        [ "${n:-0}" -ge "${3:-1}" ] && return 0
        sleep 0.5
        i=$((i + 1))
    done
    echo "console of $1 never showed $2 (${3:-1} times)" >&2
    return 1
}

echo "create"
ID=$(api POST /servers "{\"server\": {\"name\": \"curl1\", \"imageRef\": \"$IMAGE\",
      \"flavorRef\": \"$FLAVOR\"}}" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["server"]["id"])')
wait_for "$ID" ACTIVE
# A clean stop needs a guest that is up (it handles the power button once its marker is out).
console_has "$ID" KOVA-GUEST-READY 1
echo "console: $(api POST "/servers/$ID/action" '{"os-getConsoleOutput": {"length": 3}}')"
echo "stop";           action "$ID" '{"os-stop": null}';              wait_for "$ID" SHUTOFF
echo "start";          action "$ID" '{"os-start": null}';             wait_for "$ID" ACTIVE
console_has "$ID" KOVA-GUEST-READY 2
echo "reboot SOFT";    action "$ID" '{"reboot": {"type": "SOFT"}}';   wait_for "$ID" ACTIVE
console_has "$ID" KOVA-GUEST-READY 3
echo "reboot HARD";    action "$ID" '{"reboot": {"type": "HARD"}}';   wait_for "$ID" ACTIVE
echo "pause";          action "$ID" '{"pause": null}';                wait_for "$ID" PAUSED
echo "unpause";        action "$ID" '{"unpause": null}';              wait_for "$ID" ACTIVE
console_has "$ID" KOVA-GUEST-READY 4
echo "rebuild"
action "$ID" "{\"rebuild\": {\"imageRef\": \"$IMAGE\"}}"
wait_for "$ID" ACTIVE
echo "delete"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H "$H" "$URL/servers/$ID")
[ "$code" = 204 ] || { echo "delete: HTTP $code" >&2; exit 1; }
i=0
while [ "$(curl -sS -o /dev/null -w '%{http_code}' -H "$H" "$URL/servers/$ID")" != 404 ]; do
    i=$((i + 1))
    [ $i -lt 600 ] || { echo "never deleted" >&2; exit 1; }
    sleep 0.2
done
echo "  $ID: 404"
echo "curl lifecycle: ok"
