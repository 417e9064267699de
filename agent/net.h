/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's side of kova's networks (private to agent/): starts the host side (bridges,
 * dnsmasq: kova/network.h) for the configured networks and keeps dnsmasq's static leases equal to
 * the ports in the database. Errors: 0 or -errno.
 */
#ifndef KOVA_AGENT_NET_H
#define KOVA_AGENT_NET_H

#include "kova/agent.h"
#include "kova/db.h"
#include "kova/network.h"

#include <pthread.h>

struct agent_net {
    struct kova_db *db;
    struct kova_net_host *host; /* NULL: no networks configured */
    pthread_mutex_t lock;       /* one lease update at a time: each reads the db afresh */
};

/* The bridges and dnsmasqs of cfg's networks (none configured: nothing runs). On failure a
 * message is printed and nothing runs. */
int agent_net_start(struct agent_net *an, const struct kova_agent_config *cfg, struct kova_db *db);
/* The networks that run (NULL, 0: none). */
const struct kova_net_def *agent_net_defs(struct agent_net *an, size_t *n);
/* After an agent start's reconciliation: taps on kova's bridges that no port names are deleted,
 * and dnsmasq gets every port's lease. */
int agent_net_reconcile(struct agent_net *an);
/* The ports changed (a create, a delete): dnsmasq's leases are made equal to the db's ports.
 * opaque: the struct agent_net. */
void agent_net_ports_changed(void *opaque);
/* Stops dnsmasq (bridges stay). */
void agent_net_stop(struct agent_net *an);

#endif
