#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Registers one kova agent in Keystone's service catalog, under a region of its own, so that one
# openstack CLI reaches every host with --os-region-name. Idempotent: run it again after a URL
# changes and it updates the endpoint in place.
#
# Usage (with an admin's credentials in the environment: OS_AUTH_URL, OS_USERNAME, ...):
#   deploy/keystone-register.sh --region REGION --compute-url URL [--image-url URL]
#       [--interfaces "public internal admin"]
#       [--service-user NAME --service-password PW [--service-project service]]
# What it does, each step only when needed:
#   - the region REGION;
#   - the services "nova" (type compute) and "glance" (type image), shared by all regions;
#   - in REGION, one endpoint per interface: compute at URL (e.g. http://host:8774/v2.1), image
#     at the image URL (e.g. http://host:9292);
#   - the agent's own service user (the [keystone_authtoken] username/password it validates
#     tokens with), in the service project, with the admin role there, as Nova's nova user.
set -euo pipefail

region= compute_url= image_url= interfaces="public internal admin"
svc_user= svc_pw= svc_project=service
while [ $# -gt 0 ]; do
    case "$1" in
    --region) region=$2; shift 2 ;;
    --compute-url) compute_url=$2; shift 2 ;;
    --image-url) image_url=$2; shift 2 ;;
    --interfaces) interfaces=$2; shift 2 ;;
    --service-user) svc_user=$2; shift 2 ;;
    --service-password) svc_pw=$2; shift 2 ;;
    --service-project) svc_project=$2; shift 2 ;;
    *) sed -n '/^# Usage/,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[ -n "$region" ] && [ -n "$compute_url" ] || { echo "keystone-register: --region and --compute-url are needed" >&2; exit 2; }
[ -z "$svc_user" ] || [ -n "$svc_pw" ] || { echo "keystone-register: --service-user needs --service-password" >&2; exit 2; }
os() { openstack "$@"; }

# service_id TYPE NAME DESCRIPTION: the id of the service of that type, created when missing
service_id() {
    local id
    id=$(os service list -f value -c ID -c Type | awk -v t="$1" '$2 == t { print $1; exit }')
    [ -n "$id" ] || id=$(os service create --name "$2" --description "$3" -f value -c id "$1")
    echo "$id"
}

# endpoints SERVICE-ID URL: one endpoint per interface in the region, at URL
endpoints() {
    local sid=$1 url=$2 existing iface line
    existing=$(os endpoint list --service "$sid" --region "$region" -f value -c ID -c Interface -c URL)
    for iface in $interfaces; do
        line=$(awk -v i="$iface" '$2 == i' <<<"$existing" | head -n 1)
        if [ -z "$line" ]; then
            os endpoint create --region "$region" "$sid" "$iface" "$url" -f value -c id >/dev/null
            echo "keystone-register: $region $iface $url (new)"
        elif [ "$(awk '{ print $3 }' <<<"$line")" != "$url" ]; then
            os endpoint set --url "$url" "$(awk '{ print $1 }' <<<"$line")"
            echo "keystone-register: $region $iface $url (updated)"
        fi
    done
}

os region show "$region" -f value -c region >/dev/null 2>&1 ||
    os region create "$region" -f value -c region >/dev/null
endpoints "$(service_id compute nova 'OpenStack Compute (kova)')" "$compute_url"
[ -z "$image_url" ] || endpoints "$(service_id image glance 'OpenStack Image (kova)')" "$image_url"

if [ -n "$svc_user" ]; then
    pid=$(os project show "$svc_project" -f value -c id 2>/dev/null) ||
        pid=$(os project create --domain default "$svc_project" -f value -c id)
    uid=$(os user show "$svc_user" -f value -c id 2>/dev/null) ||
        uid=$(os user create --domain default --password "$svc_pw" "$svc_user" -f value -c id)
    rid=$(os role show admin -f value -c id)
    os role add --project "$pid" --user "$uid" "$rid"
    echo "keystone-register: service user $svc_user (admin in $svc_project)"
fi
echo "keystone-register: $region registered"
