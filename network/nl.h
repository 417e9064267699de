/* SPDX-License-Identifier: Apache-2.0 */
/* kova network's rtnetlink requests through libmnl (private to network/). Each call opens its own
 * socket, sends one request with NLM_F_ACK and checks the kernel's answer: 0 or -errno. */
#ifndef KOVA_NETWORK_NL_H
#define KOVA_NETWORK_NL_H

#include <stdbool.h>
#include <stdint.h>

#include "kova/network.h"

struct nl_link {
    int index;
    int master; /* 0: none */
    char name[KOVA_NET_IFNAME];
    char kind[16]; /* IFLA_INFO_KIND: "bridge", "tun" (taps too), "veth", ""... */
};

/* Calls fn for every link (an RTM_GETLINK dump); fn returning non-zero stops the walk and is
 * returned. */
int nl_links(int (*fn)(const struct nl_link *l, void *arg), void *arg);
/* The link named name: 0, -ENODEV. */
int nl_link_get(const char *name, struct nl_link *out);
/* Creates a bridge with this MAC (NULL: the kernel's choice, which then follows its ports):
 * 0, -EEXIST when a link of that name exists. */
int nl_bridge_add(const char *name, unsigned mtu, const uint8_t mac[6]);
/* Sets a link's MTU (0: unchanged), master (0: unchanged) and brings it up. */
int nl_link_set(int index, unsigned mtu, int master, bool up);
int nl_link_del(int index);
/* Adds addr/prefix (host order) to the link; an address there already is fine. */
int nl_addr_add(int index, uint32_t addr, unsigned prefix);

#endif
