/* SPDX-License-Identifier: Apache-2.0 */
#include "net.h"
#include "kova/common.h"
#include "kova/metadata.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int agent_net_start(struct agent_net *an, const struct kova_agent_config *cfg, struct kova_db *db)
{
    memset(an, 0, sizeof(*an));
    an->db = db;
    pthread_mutex_init(&an->lock, NULL);
    if (cfg->nnetworks == 0)
        return 0;
    char run_dir[4200], err[512] = "";
    snprintf(run_dir, sizeof(run_dir), "%s/networks", cfg->state_dir);
    if (mkdir(run_dir, 0755) < 0 && errno != EEXIST) {
        int r = -errno;
        fprintf(stderr, "kova-agent: cannot create %s: %s\n", run_dir, strerror(-r));
        return r;
    }
    const struct kova_net_host_config nc = {
        .defs = cfg->networks,
        .ndefs = cfg->nnetworks,
        .run_dir = run_dir,
        .dnsmasq = cfg->dnsmasq_path[0] ? cfg->dnsmasq_path : NULL,
        /* the metadata service's listeners bind 169.254.169.254 on each bridge */
        .metadata_ip = cfg->metadata_off || cfg->metadata_host[0] ? 0 : KOVA_MD_SERVICE_IP,
    };
    int r = kova_net_host_start(&nc, &an->host, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "kova-agent: cannot set up the networks: %s\n",
                err[0] ? err : strerror(-r));
        return r;
    }
    for (size_t i = 0; i < cfg->nnetworks; i++)
        kova_log(1, "network %s (%s): bridge %s", cfg->networks[i].name, cfg->networks[i].uuid,
                 cfg->networks[i].bridge);
    return 0;
}

const struct kova_net_def *agent_net_defs(struct agent_net *an, size_t *n)
{
    *n = 0;
    return an->host ? kova_net_host_defs(an->host, n) : NULL;
}

/* A DHCP host name from a server name, as Nova sanitises it: lower case, spaces and
 * underscores to '-', other characters outside [a-z0-9.-] dropped, no leading or trailing '-'
 * or '.', at most 63 bytes ("" when nothing is left). */
static void hostname_of(const char *name, char out[64])
{
    size_t n = 0;
    for (const char *p = name; *p && n < 63; p++) {
        unsigned char c = (unsigned char)tolower((unsigned char)*p);
        if (c == ' ' || c == '_')
            c = '-';
        if (isalnum(c) || c == '-' || (c == '.' && n > 0))
            out[n++] = (char)c;
    }
    while (n > 0 && (out[n - 1] == '-' || out[n - 1] == '.'))
        n--;
    size_t lead = 0;
    while (lead < n && out[lead] == '-')
        lead++;
    memmove(out, out + lead, n - lead);
    out[n - lead] = '\0';
}

/* Every port in the db, read under an->lock. */
static int load_ports(struct agent_net *an, struct kova_db_port **p, size_t *n)
{
    sqlite3 *conn = kova_db_acquire(an->db);
    int r = kova_db_port_list(conn, NULL, p, n);
    kova_db_release(an->db, conn);
    return r;
}

static int set_leases(struct agent_net *an, const struct kova_db_port *p, size_t n)
{
    struct kova_net_lease *l = calloc(n ? n : 1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        l[i].network_uuid = p[i].network_id;
        snprintf(l[i].mac, sizeof(l[i].mac), "%s", p[i].mac);
        l[i].ip = p[i].ip;
        hostname_of(p[i].server_name, l[i].hostname);
    }
    int r = kova_net_host_set_leases(an->host, l, n);
    free(l);
    return r;
}

int agent_net_reconcile(struct agent_net *an)
{
    if (!an->host)
        return 0;
    pthread_mutex_lock(&an->lock);
    struct kova_db_port *p = NULL;
    size_t n = 0;
    char(*taps)[KOVA_NET_IFNAME] = NULL;
    const char **keep = NULL;
    int r = load_ports(an, &p, &n);
    if (r < 0)
        goto out;
    taps = calloc(n ? n : 1, sizeof(*taps));
    keep = calloc(n ? n : 1, sizeof(*keep));
    if (!taps || !keep) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        kova_net_port_tap(p[i].id, taps[i]);
        keep[i] = taps[i];
    }
    /* a live VMM holds its server's tap; any other tap on kova's bridges is a leftover */
    r = kova_net_host_sweep_taps(an->host, keep, n);
    if (r > 0)
        kova_log(0, "networks: deleted %d tap(s) no port names", r);
    if (r >= 0)
        r = set_leases(an, p, n);
out:
    pthread_mutex_unlock(&an->lock);
    if (r < 0)
        kova_log(0, "networks: reconciliation failed: %s", strerror(-r));
    free(keep);
    free(taps);
    free(p);
    return r < 0 ? r : 0;
}

void agent_net_ports_changed(void *opaque)
{
    struct agent_net *an = opaque;
    if (!an->host)
        return;
    pthread_mutex_lock(&an->lock);
    struct kova_db_port *p = NULL;
    size_t n = 0;
    int r = load_ports(an, &p, &n);
    if (r == 0)
        r = set_leases(an, p, n);
    pthread_mutex_unlock(&an->lock);
    free(p);
    if (r < 0)
        kova_log(0, "networks: cannot update the DHCP leases: %s", strerror(-r));
}

void agent_net_stop(struct agent_net *an)
{
    if (an->host)
        kova_net_host_stop(an->host);
    an->host = NULL;
    pthread_mutex_destroy(&an->lock);
}
