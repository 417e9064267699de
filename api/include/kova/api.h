/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova api: the Nova compute API v2.1 (and a Glance v2 subset) over HTTP, backed by kova db.
 *
 * Contract:
 *  - kova_api_start() listens on cfg->listen (compute) and, when image_port != 0, on
 *    cfg->image_listen (Glance v2 image service); each listener runs its own libmicrohttpd
 *    thread pool. Every route is one row of a table {service, method, pattern, handler}.
 *  - Errors reach clients as Nova fault bodies ({"itemNotFound": {"code": 404, "message": ...}});
 *    hostile input yields 4xx, never a crash.
 *  - The API validates, authorises and records a request; a server action is accepted through
 *    kova/compute.h (the one state table) and its task handed to the compute manager. The API
 *    never forks, signals or touches instance dirs. Slow image work (web-download import) is
 *    handed to cfg->submit, which runs it on the agent's worker threads.
 * Errors: 0 or -errno.
 */
#ifndef KOVA_API_H
#define KOVA_API_H

#include <stddef.h>
#include <stdint.h>

struct kova_db;
struct kova_api;
struct kova_compute;
struct kova_keystone;
struct kova_net_def;

/* A unit of slow work; runs on a worker thread. The api owns arg and frees it in fn. */
typedef void (*kova_task_fn)(void *arg);

struct kova_api_config {
    const char *listen_host;        /* "127.0.0.1" */
    unsigned listen_port;           /* 8774 */
    const char *image_host;         /* Glance listener, "127.0.0.1" */
    unsigned image_port;            /* 9292; 0 disables the image service listener */
    const char *state_dir;          /* images live in <state_dir>/images, consoles in instances/ */
    const char *auth_strategy;      /* "noauth2" (default) or "keystone" (then keystone is set) */
    struct kova_keystone *keystone; /* validates callers' tokens (kova/keystone.h); not owned */
    const char *www_authenticate_uri; /* keystone: named in 401 answers' WWW-Authenticate */
    const char *host_name;            /* this compute host's name (hypervisor_hostname) */
    const char *availability_zone;
    unsigned threads; /* HTTP worker threads per listener */
    size_t max_body;  /* JSON request body cap (bytes); larger gives 413 */
    /* HTTP limits per listener (0: the default): open connections (1000; more wait unaccepted
     * in the listen queue until one closes), seconds a connection may stay idle or stall
     * mid-request (120), bytes of request line + headers (16384; more gives 431, and about twice
     * that is answered 431 by libmicrohttpd before kova sees it). */
    unsigned max_connections, connection_timeout;
    size_t max_header_size;
    uint64_t max_image_size; /* image upload/import cap (bytes) */
    /* web-download may reach only public addresses and ports 80/443, unless widened here
     * (Glance's [import_filtering_opts]): CIDRs allowed though not public (NULL: none), and the
     * allowed ports (NULL: "80,443"; "": every port). Comma-separated; read at start only. */
    const char *import_allowed_networks, *import_allowed_ports;
    int max_limit; /* page size cap for list calls (Nova's max_limit) */
    /* quotas (per project; -1 = unlimited) */
    int quota_instances, quota_cores, quota_ram, quota_key_pairs, quota_metadata_items;
    int force_config_drive; /* every new server gets a config drive ("config_drive": "True") */
    struct kova_compute *compute; /* runs the server tasks (kova/compute.h); not owned */
    /* kova's networks (kova/network.h), for servers' NICs and /os-networks; not owned, valid
     * while the api runs. None: servers get no NICs. */
    const struct kova_net_def *networks;
    size_t nnetworks;
    /* Called after a commit that added ports (a create), so that DHCP learns them; NULL: none. */
    void (*ports_changed)(void *opaque);
    void *ports_opaque;
    int verbose; /* 0 warnings, 1 info, 2 debug (one line per request) */
    /* Queue slow work; returns 0 or -errno (then the api runs nothing and frees arg itself). */
    int (*submit)(void *opaque, kova_task_fn fn, void *arg);
    void *submit_opaque;
};

int kova_api_start(const struct kova_api_config *cfg, struct kova_db *db, struct kova_api **out);
/* Stops the listeners (in-flight requests finish first); no new tasks are submitted after it.
 * Call it, then drain the tasks (they use the api), then kova_api_stop(). */
void kova_api_quiesce(struct kova_api *api);
/* Quiesces (if not yet done) and frees the api. */
void kova_api_stop(struct kova_api *api);

/* ---- the metadata service (metadata.c): Nova's metadata API for the guests ----
 * GET/HEAD of kova/metadata.h's trees, to the server whose fixed IP the request comes from
 * (by the connection's source address alone: no header is trusted). host NULL or "": one
 * listener per network on 169.254.169.254:port bound to the network's bridge (SO_BINDTODEVICE:
 * agents with other bridges may do the same), serving that network's servers; else one
 * listener on host:port serving every network's. A source that is no server's, or any path
 * not in the trees: 404; other methods: 405. */
struct kova_mdsvc;
struct kova_mdsvc_config {
    struct kova_db *db;
    const struct kova_net_def *networks; /* not owned; valid while the service runs */
    size_t nnetworks;
    const char *dhcp_domain; /* the hostname's domain ("novalocal"); NULL: none */
    const char *host;        /* an IPv4 address; NULL or "": per network on 169.254.169.254 */
    unsigned port;           /* 0: 80 */
};
/* -errno (err says why: the address is not on the host, the port is taken ...). */
int kova_mdsvc_start(const struct kova_mdsvc_config *cfg, struct kova_mdsvc **out, char *err,
                     size_t errlen);
/* Stops the listeners (in-flight requests finish) and frees s (NULL: nothing). */
void kova_mdsvc_stop(struct kova_mdsvc *s);

/* The microversion range served, as "2.N" strings. */
const char *kova_api_min_version(void);
const char *kova_api_max_version(void);

#endif
