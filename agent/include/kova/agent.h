/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova agent: configuration (nova.conf-style INI + command-line overrides), the worker threads
 * that run slow tasks, and the process's main loop (serve until SIGTERM/SIGINT).
 * Errors: 0 or -errno.
 */
#ifndef KOVA_AGENT_H
#define KOVA_AGENT_H

#include "kova/api.h"
#include "kova/network.h"

struct kova_agent_config {
    char listen_host[64];
    unsigned listen_port;
    char image_host[64];
    unsigned image_port;
    char state_dir[4096];
    char auth_strategy[32];
    char host_name[256];
    char availability_zone[256];
    unsigned api_threads;
    unsigned workers;
    unsigned long long max_body;
    unsigned max_connections;    /* [kova] max_connections / [wsgi] default_pool_size */
    unsigned connection_timeout; /* [kova] connection_timeout / [wsgi] client_socket_timeout */
    unsigned max_header_size;    /* [kova] max_header_size: request line + headers, bytes */
    unsigned long long max_image_size;
    char import_allowed_networks[1024]; /* [import_filtering_opts] allowed_networks */
    char import_allowed_ports[256];     /* [import_filtering_opts] allowed_ports */
    int max_limit;
    int quota_instances, quota_cores, quota_ram, quota_key_pairs, quota_metadata_items;
    int log_level;             /* 0 warning, 1 info, 2 debug */
    char vmm_user[64];         /* [kova] vmm_user: who kova-vmm runs guests as; "": nobody (root) */
    char vmm_uid_range[64];    /* [kova] vmm_uid_range FIRST-LAST: a uid per instance; "": off */
    char vmm_path[4096];       /* kova-vmm; "" = next to kova-agent (or ../vmm/ in a build tree) */
    unsigned shutdown_timeout; /* [DEFAULT] shutdown_timeout, Nova's name: clean stop, seconds */
    unsigned boot_timeout;     /* [kova] vmm_start_timeout: control socket answers, seconds */
    /* [network:NAME] sections (kova/network.h: cidr, gateway, dns, bridge, masquerade, mtu,
     * uuid), finished and checked by kova_agent_config_load */
    struct kova_net_def networks[KOVA_NET_MAX];
    size_t nnetworks;
    char dnsmasq_path[4096]; /* [kova] dnsmasq: the DHCP server's executable; "": dnsmasq */
    /* [kova] metadata_listen: "" (default): 169.254.169.254:80 on each network's bridge;
     * "HOST:PORT": one listener there (IPv4); "off": no metadata service */
    char metadata_host[64];
    unsigned metadata_port;
    int metadata_off;
    int force_config_drive; /* [DEFAULT] force_config_drive: every server gets a config drive */
    char dhcp_domain[256];  /* [api] dhcp_domain (Nova's, default "novalocal"); "": none */
    /* [keystone_authtoken], nova.conf's names; used with auth_strategy = keystone */
    struct {
        char www_authenticate_uri[512]; /* named in 401 answers; default auth_url */
        char auth_url[512];             /* where tokens are validated */
        char auth_type[32];             /* "password", the only one */
        char username[256], password[256], project_name[256];
        char user_domain_name[256], project_domain_name[256];
        unsigned token_cache_time;     /* seconds (default 300, keystonemiddleware's) */
        unsigned cache_size;           /* [kova] entries (default 1024) */
        unsigned http_request_timeout; /* seconds one validation may take in all (default 5) */
    } ks;
};

/* Fills cfg with the defaults (listen 127.0.0.1:8774, images on :9292, /var/lib/kova, noauth2). */
void kova_agent_config_defaults(struct kova_agent_config *cfg);
/* Reads a nova.conf-style INI file into cfg. Returns 0, -ENOENT, or -EINVAL (bad line/value:
 * the message names the line). */
int kova_agent_config_load(struct kova_agent_config *cfg, const char *path);
/* Parses "HOST:PORT", "[V6]:PORT" or "PORT". */
int kova_agent_parse_listen(const char *s, char *host, unsigned hostlen, unsigned *port);

/* Runs the agent until SIGTERM/SIGINT (which must be blocked by the caller in every thread).
 * Returns 0 on a clean stop. */
int kova_agent_run(const struct kova_agent_config *cfg);

#endif
