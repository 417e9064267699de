/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova's networks in the compute API: the `networks` member of a server create (checked here,
 * its ports made in the create's transaction), /os-networks (Nova's proxy to the networks, as
 * nova-network showed them) and /servers/{id}/os-interface (a server's ports).
 */
#include "internal.h"
#include "kova/network.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The network a request names by uuid (NULL: none of kova's). */
static const struct kova_net_def *net_by_uuid(struct kova_api *api, const char *uuid)
{
    for (size_t i = 0; i < api->cfg.nnetworks; i++)
        if (strcmp(api->cfg.networks[i].uuid, uuid) == 0)
            return &api->cfg.networks[i];
    return NULL;
}

/* The one network a server gets when the request names none (Nova's "auto" with a single
 * network available); none configured: no NIC. */
static bool net_auto(struct kova_req *r, struct net_request *out)
{
    size_t n = r->api->cfg.nnetworks;
    if (n > 1) {
        reply_fault(r, 409,
                    "Multiple possible networks found, use a Network ID to be more specific.");
        return false;
    }
    if (n == 1)
        out->nic[out->n++] = (struct net_nic_request){&r->api->cfg.networks[0], 0, false};
    return true;
}

bool net_request_parse(struct kova_req *r, json_t *v, long long max_count, struct net_request *out)
{
    memset(out, 0, sizeof(*out));
    if (!v)
        return net_auto(r, out);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "none") == 0)
            return true;
        if (strcmp(s, "auto") == 0)
            return net_auto(r, out);
        reply_fault(r, 400, "Invalid input for field/attribute networks.");
        return false;
    }
    if (!json_is_array(v)) {
        reply_fault(r, 400, "Invalid input for field/attribute networks.");
        return false;
    }
    if (json_array_size(v) > KOVA_DB_PORTS_MAX) {
        reply_fault(r, 400, "A server has at most %d networks (NICs) on kova.", KOVA_DB_PORTS_MAX);
        return false;
    }
    static const char *const allowed[] = {"uuid", "fixed_ip", "port", NULL};
    size_t i;
    json_t *n;
    json_array_foreach(v, i, n)
    {
        if (!json_is_object(n)) {
            reply_fault(r, 400, "Invalid input for field/attribute networks.");
            return false;
        }
        if (!check_keys(r, n, allowed, "networks"))
            return false;
        json_t *port = json_object_get(n, "port");
        if (port && !json_is_null(port)) {
            reply_fault(r, 400,
                        "kova has no networking service ports: give a network's uuid (and "
                        "a fixed_ip) instead.");
            return false;
        }
        json_t *u = json_object_get(n, "uuid");
        if (!json_is_string(u)) {
            reply_fault(r, 400, "Bad networks format: a network uuid is required.");
            return false;
        }
        const char *uuid = json_string_value(u);
        if (!kova_is_uuid(uuid)) {
            reply_fault(r, 400,
                        "Bad networks format: network uuid is not in proper format (%.100s)", uuid);
            return false;
        }
        const struct kova_net_def *def = net_by_uuid(r->api, uuid);
        if (!def) {
            reply_fault(r, 400, "Network %.100s could not be found.", uuid);
            return false;
        }
        struct net_nic_request *nic = &out->nic[out->n++];
        nic->net = def;
        json_t *ip = json_object_get(n, "fixed_ip");
        if (ip && !json_is_null(ip)) {
            if (!json_is_string(ip) || kova_net_ip_parse(json_string_value(ip), &nic->ip) < 0) {
                reply_fault(r, 400, "Invalid fixed IP address (%.100s)",
                            json_is_string(ip) ? json_string_value(ip) : "not a string");
                return false;
            }
            if (!kova_net_ip_usable(def, nic->ip)) {
                reply_fault(r, 400, "Fixed IP %.100s is not a valid ip address for network %s.",
                            json_string_value(ip), def->uuid);
                return false;
            }
            if (max_count > 1) {
                reply_fault(r, 400,
                            "Unable to launch multiple instances with the same fixed IP "
                            "address; launch them one by one.");
                return false;
            }
            nic->has_ip = true;
        }
    }
    return true;
}

/* One port of server_id on nic's network: its fixed IP (checked free) or the lowest free one, a
 * fresh MAC (another try when it was taken). Replies a fault itself (then -ECANCELED). */
static int port_create(struct kova_req *r, sqlite3 *conn, const char *server_id, int idx,
                       const struct net_nic_request *nic)
{
    const struct kova_net_def *d = nic->net;
    struct kova_db_port p = {.idx = idx};
    snprintf(p.server_id, sizeof(p.server_id), "%s", server_id);
    snprintf(p.network_id, sizeof(p.network_id), "%s", d->uuid);
    snprintf(p.network_name, sizeof(p.network_name), "%s", d->name);
    int e;
    if (nic->has_ip) {
        char owner[KOVA_DB_ID_MAX], ip[KOVA_NET_IP_STRLEN];
        if ((e = kova_db_port_ip_owner(conn, d->uuid, nic->ip, owner)) < 0)
            return e;
        if (e == 1) {
            kova_net_ip_format(nic->ip, ip);
            reply_fault(r, 409, "Fixed IP address %s is already in use on instance %s.", ip, owner);
            return -ECANCELED;
        }
        p.ip = nic->ip;
    } else {
        uint32_t *used = NULL;
        size_t nused = 0;
        if ((e = kova_db_port_ips(conn, d->uuid, &used, &nused)) < 0)
            return e;
        e = kova_net_pick_ip(d, used, nused, &p.ip);
        free(used);
        if (e == -ENOSPC) {
            reply_fault(r, 409, "No fixed IP addresses available for network: %s", d->uuid);
            return -ECANCELED;
        }
        if (e < 0)
            return e;
    }
    /* The (network, ip) pair was checked in this transaction: a constraint now is the MAC (or,
     * with odds of 2^-122, the port id); 16 tries out of 2^24 MACs. */
    for (int tries = 0; tries < 16; tries++) {
        kova_uuid(p.id);
        if ((e = kova_net_port_mac(p.mac)) < 0)
            return e;
        e = kova_db_port_add(conn, &p);
        if (e != -EEXIST)
            return e;
    }
    reply_fault(r, 409, "No free MAC address was found for the server's port; try again.");
    return -ECANCELED;
}

int net_ports_create(struct kova_req *r, sqlite3 *conn, const struct net_request *nr,
                     const char *server_id)
{
    for (unsigned i = 0; i < nr->n; i++) {
        int e = port_create(r, conn, server_id, (int)i, &nr->nic[i]);
        if (e < 0)
            return e;
    }
    return 0;
}

void net_ports_changed(struct kova_api *api)
{
    if (api->cfg.ports_changed)
        api->cfg.ports_changed(api->cfg.ports_opaque);
}

/* ------------------------------------------------------------------ /os-networks */

static json_t *network_json(struct kova_req *r, const struct kova_net_def *d)
{
    char cidr[32], gw[KOVA_NET_IP_STRLEN], mask[KOVA_NET_IP_STRLEN], bcast[KOVA_NET_IP_STRLEN];
    char ip[KOVA_NET_IP_STRLEN];
    uint32_t m = d->prefix ? ~0u << (32 - d->prefix) : 0;
    kova_net_ip_format(d->net, ip);
    snprintf(cidr, sizeof(cidr), "%s/%u", ip, d->prefix);
    kova_net_ip_format(d->gateway, gw);
    kova_net_ip_format(m, mask);
    kova_net_ip_format(d->net | ~m, bcast);
    json_t *dns[2] = {json_null(), json_null()};
    for (unsigned i = 0; i < 2 && i < d->ndns; i++) {
        kova_net_ip_format(d->dns[i], ip);
        dns[i] = json_string(ip);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:n, s:n, s:n}", "id", d->uuid,
                          "label", d->name, "cidr", cidr, "netmask", mask, "gateway", gw, "dns1",
                          dns[0], "dns2", dns[1], "cidr_v6", "gateway_v6", "netmask_v6");
    if (o && r->auth.is_admin) {
        kova_net_ip_format(d->gateway, ip);
        json_object_set_new(o, "broadcast", json_string(bcast));
        json_object_set_new(o, "bridge", json_string(d->bridge));
        json_object_set_new(o, "bridge_interface",
                            d->masquerade[0] ? json_string(d->masquerade) : json_null());
        json_object_set_new(o, "dhcp_server", json_string(ip));
        json_object_set_new(o, "enable_dhcp", json_true());
        json_object_set_new(o, "mtu", json_integer(d->mtu));
        json_object_set_new(o, "host", json_string(r->api->host_name));
        json_object_set_new(o, "multi_host", json_false());
        json_object_set_new(o, "share_address", json_false());
        json_object_set_new(o, "injected", json_false());
        json_object_set_new(o, "project_id", json_null());
        json_object_set_new(o, "vlan", json_null());
    }
    return o;
}

static void networks_list(struct kova_req *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->api->cfg.nnetworks; i++)
        json_array_append_new(a, network_json(r, &r->api->cfg.networks[i]));
    reply_json(r, 200, json_pack("{s:o}", "networks", a));
}

static void network_show(struct kova_req *r)
{
    const char *id = r->arg[0];
    for (size_t i = 0; i < r->api->cfg.nnetworks; i++) {
        const struct kova_net_def *d = &r->api->cfg.networks[i];
        if (strcmp(d->uuid, id) == 0 || strcmp(d->name, id) == 0) {
            reply_json(r, 200, json_pack("{s:o}", "network", network_json(r, d)));
            return;
        }
    }
    reply_fault(r, 404, "Network %.100s could not be found.", id);
}

/* ------------------------------------------------------------------ os-interface */

static json_t *interface_json(const struct kova_db_port *p, bool active)
{
    char ip[KOVA_NET_IP_STRLEN];
    kova_net_ip_format(p->ip, ip);
    /* kova's networks have one subnet each: the network is named as the subnet */
    return json_pack("{s:s, s:[{s:s, s:s}], s:s, s:s, s:s}", "port_state",
                     active ? "ACTIVE" : "DOWN", "fixed_ips", "subnet_id", p->network_id,
                     "ip_address", ip, "port_id", p->id, "net_id", p->network_id, "mac_addr",
                     p->mac);
}

static void interfaces_list(struct kova_req *r)
{
    struct kova_db_server_view v;
    if (!server_visible(r, r->db, r->arg[0], &v))
        return;
    bool active = v.power_state == 1;
    kova_db_server_view_free(&v);
    struct kova_db_port *p = NULL;
    size_t n = 0;
    int e = kova_db_port_list(r->db, r->arg[0], &p, &n);
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, interface_json(&p[i], active));
    free(p);
    reply_json(r, 200, json_pack("{s:o}", "interfaceAttachments", a));
}

static void interface_show(struct kova_req *r)
{
    struct kova_db_server_view v;
    if (!server_visible(r, r->db, r->arg[0], &v))
        return;
    bool active = v.power_state == 1;
    kova_db_server_view_free(&v);
    struct kova_db_port p;
    int e = kova_is_uuid(r->arg[1]) ? kova_db_port_get(r->db, r->arg[0], r->arg[1], &p) : -ENOENT;
    if (e == -ENOENT) {
        reply_fault(r, 404, "Port %.100s is not attached", r->arg[1]);
        return;
    }
    if (e < 0) {
        reply_db_error(r, e);
        return;
    }
    reply_json(r, 200, json_pack("{s:o}", "interfaceAttachment", interface_json(&p, active)));
}

/* Attaching and detaching need PCI hot-plug, which kova-vmm does not have: the NICs a server has
 * are the ones it was created with. */
static void interface_change(struct kova_req *r)
{
    if (strcmp(r->method, "POST") == 0) {
        json_t *body = req_json(r);
        if (!body)
            return;
        json_t *att = req_json_root(r, body, "interfaceAttachment");
        json_decref(body);
        if (!att)
            return;
    }
    struct kova_db_server_view v;
    if (!server_visible(r, r->db, r->arg[0], &v))
        return;
    kova_db_server_view_free(&v);
    if (r->nargs > 1) { /* a detach: of a port the server has */
        struct kova_db_port p;
        int e =
            kova_is_uuid(r->arg[1]) ? kova_db_port_get(r->db, r->arg[0], r->arg[1], &p) : -ENOENT;
        if (e == -ENOENT) {
            reply_fault(r, 404, "Port %.100s is not attached", r->arg[1]);
            return;
        }
        if (e < 0) {
            reply_db_error(r, e);
            return;
        }
    }
    reply_fault(r, 409,
                "kova cannot attach or detach interfaces: a server has the networks it was "
                "created with.");
}

const struct kova_route kova_network_routes[] = {
    {SVC_COMPUTE, "GET", "/os-networks", networks_list, 0, RULE_READER},
    {SVC_COMPUTE, "GET", "/os-networks/*", network_show, 0, RULE_READER},
    {SVC_COMPUTE, "GET", "/servers/*/os-interface", interfaces_list, 0, RULE_READER},
    {SVC_COMPUTE, "POST", "/servers/*/os-interface", interface_change, 0, RULE_MEMBER},
    {SVC_COMPUTE, "GET", "/servers/*/os-interface/*", interface_show, 0, RULE_READER},
    {SVC_COMPUTE, "DELETE", "/servers/*/os-interface/*", interface_change, 0, RULE_MEMBER},
    {0, NULL, NULL, NULL, 0, RULE_UNSET},
};
