/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova network: the host side of kova's networks (nova-network's flat DHCP model, as the
 * design's §7 describes it): each network is a Linux bridge with the gateway address on it, a
 * supervised dnsmasq serving static DHCP leases on it, optionally masqueraded to an uplink; each
 * server NIC is a tap on that bridge, opened by the agent and handed to kova-vmm as an fd.
 *
 * Three parts, each usable alone:
 *  - Definitions (pure, no I/O): kova_net_def_set() parses one config key of a [network:NAME]
 *    section; kova_net_def_finish() checks the whole and fills defaults; kova_net_pick_ip()
 *    chooses a fixed IP; kova_net_port_tap()/kova_net_port_mac() name a port's tap and MAC.
 *  - Taps (kova_net_tap_open): a NON-persistent tap, so the kernel removes it when the last fd
 *    closes (the VMM's exit, a kill -9 included): no orphan tap by construction.
 *  - The host (kova_net_host_*): bridges created if missing (kept at exit, as nova-network
 *    kept its bridges), one dnsmasq per network restarted if it dies, its hosts file rewritten
 *    and dnsmasq sent SIGHUP when the leases change, strays swept at start.
 * Netlink goes through libmnl (Debian's libmnl0). Every function returns 0 or -errno and, where
 * it can fail for a reason an operator should read, writes one line to err (errlen bytes, err may
 * be NULL). Thread safety: a kova_net_host may be used from any thread (it has its own lock);
 * the pure functions keep no state.
 */
#ifndef KOVA_NETWORK_H
#define KOVA_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KOVA_NET_MAX       16 /* networks per agent */
#define KOVA_NET_NAME_MAX  64 /* a network's name: 1..63 bytes of [A-Za-z0-9._-] */
#define KOVA_NET_DNS_MAX   3
#define KOVA_NET_IFNAME    16 /* IFNAMSIZ */
#define KOVA_NET_UUID_LEN  36
#define KOVA_NET_MAC_LEN   17 /* "fa:16:3e:xx:xx:xx" */
#define KOVA_NET_IP_STRLEN 16 /* dotted quad + NUL */

/* One network, from a [network:NAME] section. Addresses are IPv4 in host byte order. */
struct kova_net_def {
    char name[KOVA_NET_NAME_MAX];
    char uuid[KOVA_NET_UUID_LEN + 1]; /* `uuid =`, else derived from the name: stable */
    uint32_t net;                     /* `cidr = A.B.C.D/P`: the network address */
    unsigned prefix;                  /* 8..30 */
    uint32_t gateway;                 /* `gateway =`, default the first host address */
    uint32_t dns[KOVA_NET_DNS_MAX];   /* `dns = A, B`: handed out by DHCP; none: no option */
    unsigned ndns;
    char bridge[KOVA_NET_IFNAME];     /* `bridge =`, default "kovabr" + the first 8 of the uuid */
    char masquerade[KOVA_NET_IFNAME]; /* `masquerade = UPLINK`: NAT out of it; "": none */
    unsigned mtu;                     /* `mtu =`, default 1500 (576..9000) */
};

/* Sets one key of a [network:NAME] section (cidr, gateway, dns, bridge, masquerade, mtu, uuid).
 * -EINVAL for a bad value or an unknown key (err says which). */
int kova_net_def_set(struct kova_net_def *d, const char *key, const char *value, char *err,
                     size_t errlen);
/* Starts a definition named name (checked: -EINVAL). */
int kova_net_def_init(struct kova_net_def *d, const char *name, char *err, size_t errlen);
/* Checks a definition after its keys (cidr is required; the gateway inside the network and not
 * its address or broadcast) and fills the defaults (uuid, gateway, bridge, mtu). -EINVAL. */
int kova_net_def_finish(struct kova_net_def *d, char *err, size_t errlen);
/* Checks a set of finished definitions together: names, uuids, bridges distinct, CIDRs not
 * overlapping. -EINVAL. */
int kova_net_defs_check(const struct kova_net_def *d, size_t n, char *err, size_t errlen);

/* The lowest host address of d that is not the network's, its broadcast, its gateway, nor one
 * of used[0..nused-1]. -ENOSPC when none is left. */
int kova_net_pick_ip(const struct kova_net_def *d, const uint32_t *used, size_t nused,
                     uint32_t *out);
/* Whether ip may be a port's fixed IP on d (a host address of the network, not the gateway). */
bool kova_net_ip_usable(const struct kova_net_def *d, uint32_t ip);
/* "A.B.C.D" <-> host-order address; parse: -EINVAL for anything else (no leading zeros). */
int kova_net_ip_parse(const char *s, uint32_t *out);
void kova_net_ip_format(uint32_t ip, char out[KOVA_NET_IP_STRLEN]);
/* A port's tap name, Nova's form: "tap" + the first 11 characters of the port id. */
void kova_net_port_tap(const char *port_id, char out[KOVA_NET_IFNAME]);
/* A MAC "fa:16:3e:xx:xx:xx" (OpenStack's prefix) from 3 random bytes (getrandom). */
int kova_net_port_mac(char out[KOVA_NET_MAC_LEN + 1]);

/* ---- taps ---- */

/* Creates the tap `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, not persistent), sets its MTU,
 * makes it a port of `bridge` and brings it up. Returns the tap's fd (O_CLOEXEC, blocking) or
 * -errno: -EBUSY when a tap of that name is open already (a VMM still holds it). On failure
 * nothing is left behind. */
int kova_net_tap_open(const char *name, const char *bridge, unsigned mtu, char *err, size_t errlen);

/* ---- the host ---- */

/* One static lease: what dnsmasq hands out. */
struct kova_net_lease {
    const char *network_uuid;
    char mac[KOVA_NET_MAC_LEN + 1];
    uint32_t ip;
    char hostname[64]; /* "" for none (then dnsmasq gives no name) */
};

struct kova_net_host;

struct kova_net_host_config {
    const struct kova_net_def *defs; /* finished and checked; copied */
    size_t ndefs;
    const char *run_dir; /* dnsmasq's hosts, pid and lease files: <run_dir>/<network uuid>.* */
    const char *dnsmasq; /* the executable; NULL: "dnsmasq" on PATH (/usr/sbin) */
    /* The metadata service's address (169.254.169.254), added as a /32 to every bridge so that
     * guests reach it through their gateway; 0: none. */
    uint32_t metadata_ip;
};

/* For each network: the bridge (created when missing, the gateway address/prefix and the
 * metadata address added, MTU set, up), masquerade when asked (net.ipv4.ip_forward=1 and one
 * iptables MASQUERADE rule, added once), dnsmasq started with an empty hosts file (a dnsmasq a
 * previous agent left, named by its pid file in run_dir, is stopped first); then a supervisor
 * thread restarts a dnsmasq that died (at most once a second). -errno when a bridge cannot be set
 * up or dnsmasq cannot be started (nothing is left running then). */
int kova_net_host_start(const struct kova_net_host_config *cfg, struct kova_net_host **out,
                        char *err, size_t errlen);
/* The definitions it runs (owned by the host; valid until kova_net_host_stop). */
const struct kova_net_def *kova_net_host_defs(const struct kova_net_host *h, size_t *n);
/* The definition with this uuid or name (NULL: none). */
const struct kova_net_def *kova_net_host_find(const struct kova_net_host *h,
                                              const char *uuid_or_name);
/* Replaces every lease (all networks') with these: each network whose set changed gets its
 * hosts file rewritten (atomically) and its dnsmasq SIGHUP. Leases of unknown networks are
 * ignored. */
int kova_net_host_set_leases(struct kova_net_host *h, const struct kova_net_lease *l, size_t n);
/* Deletes every tap on one of the host's bridges whose name starts with "tap" and is not in
 * keep[0..nkeep-1] (taps left by a crash; non-persistent ones normally vanish by themselves).
 * Returns how many were deleted, or -errno. */
int kova_net_host_sweep_taps(struct kova_net_host *h, const char *const *keep, size_t nkeep);
/* The pid of a network's dnsmasq (0: not running), for tests and logs. */
int kova_net_host_dnsmasq_pid(struct kova_net_host *h, const char *uuid);
/* Stops the supervisor and the dnsmasqs (SIGTERM, then SIGKILL after 2 s); bridges stay. */
void kova_net_host_stop(struct kova_net_host *h);

#endif
