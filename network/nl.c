/* SPDX-License-Identifier: Apache-2.0 */
/* rtnetlink through libmnl (nl.h). */
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NL_BUF 32768 /* a dump's datagrams may be larger than MNL_SOCKET_BUFFER_SIZE */

struct nl {
    struct mnl_socket *s;
    unsigned portid;
    unsigned seq;
    char buf[NL_BUF];
};

static int nl_open(struct nl **out)
{
    struct nl *nl = calloc(1, sizeof(*nl));
    if (!nl)
        return -ENOMEM;
    int r;
    nl->s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl->s) {
        r = -errno;
        goto fail;
    }
    if (mnl_socket_bind(nl->s, 0, MNL_SOCKET_AUTOPID) < 0) {
        r = -errno;
        goto fail_sock;
    }
    nl->portid = mnl_socket_get_portid(nl->s);
    nl->seq = (unsigned)time(NULL);
    *out = nl;
    return 0;
fail_sock:
    mnl_socket_close(nl->s);
fail:
    free(nl);
    return r;
}

static void nl_close(struct nl *nl)
{
    mnl_socket_close(nl->s);
    free(nl);
}

static struct nlmsghdr *nl_msg(struct nl *nl, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = ++nl->seq;
    return nlh;
}

/* Sends nlh and runs cb over the answers until the ack (or the dump's end): 0 or -errno (the
 * kernel's error from its nlmsgerr included). */
static int nl_run(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *arg)
{
    unsigned seq = nlh->nlmsg_seq;
    if (mnl_socket_sendto(nl->s, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl->s, nl->buf, sizeof(nl->buf));
        if (n < 0)
            return errno == EINTR ? -EINTR : -errno;
        int r = mnl_cb_run(nl->buf, (size_t)n, seq, nl->portid, cb, arg);
        if (r < 0)
            return errno ? -errno : -EIO;
        if (r == MNL_CB_STOP)
            return 0;
    }
}

/* One request acked by the kernel. */
static int nl_request(struct nlmsghdr *nlh, struct nl *nl)
{
    nlh->nlmsg_flags |= NLM_F_ACK;
    return nl_run(nl, nlh, NULL, NULL);
}

static int attr_cb(const struct nlattr *a, void *data)
{
    const struct nlattr **tb = data;
    int type = mnl_attr_get_type(a);
    if (type <= IFLA_MAX) /* IFLA_MAX > IFLA_INFO_MAX: one table size for both levels */
        tb[type] = a;
    return MNL_CB_OK;
}

struct links_walk {
    int (*fn)(const struct nl_link *l, void *arg);
    void *arg;
    int ret;
};

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct links_walk *w = data;
    if (nlh->nlmsg_type != RTM_NEWLINK || w->ret)
        return MNL_CB_OK;
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    const struct nlattr *tb[IFLA_MAX + 1] = {0};
    if (mnl_attr_parse(nlh, sizeof(*ifm), attr_cb, tb) < 0)
        return MNL_CB_ERROR;
    struct nl_link l = {.index = ifm->ifi_index};
    if (tb[IFLA_IFNAME]) {
        const char *name = mnl_attr_get_str(tb[IFLA_IFNAME]);
        strncpy(l.name, name, sizeof(l.name) - 1);
    }
    if (tb[IFLA_MASTER])
        l.master = (int)mnl_attr_get_u32(tb[IFLA_MASTER]);
    if (tb[IFLA_LINKINFO]) {
        const struct nlattr *li[IFLA_MAX + 1] = {0};
        if (mnl_attr_parse_nested(tb[IFLA_LINKINFO], attr_cb, li) >= 0 && li[IFLA_INFO_KIND])
            strncpy(l.kind, mnl_attr_get_str(li[IFLA_INFO_KIND]), sizeof(l.kind) - 1);
    }
    w->ret = w->fn(&l, w->arg);
    return MNL_CB_OK; /* the dump is read to its end either way */
}

int nl_links(int (*fn)(const struct nl_link *l, void *arg), void *arg)
{
    struct nl *nl;
    int r = nl_open(&nl);
    if (r < 0)
        return r;
    struct nlmsghdr *nlh = nl_msg(nl, RTM_GETLINK, NLM_F_DUMP);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    struct links_walk w = {fn, arg, 0};
    r = nl_run(nl, nlh, link_cb, &w);
    nl_close(nl);
    return r < 0 ? r : w.ret;
}

struct link_find {
    const char *name;
    struct nl_link *out;
};

static int find_fn(const struct nl_link *l, void *arg)
{
    struct link_find *f = arg;
    if (strcmp(l->name, f->name))
        return 0;
    *f->out = *l;
    return 1;
}

int nl_link_get(const char *name, struct nl_link *out)
{
    struct link_find f = {name, out};
    int r = nl_links(find_fn, &f);
    return r < 0 ? r : r ? 0 : -ENODEV;
}

int nl_bridge_add(const char *name, unsigned mtu, const uint8_t mac[6])
{
    struct nl *nl;
    int r = nl_open(&nl);
    if (r < 0)
        return r;
    struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (mtu)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    if (mac)
        mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, info);
    r = nl_request(nlh, nl);
    nl_close(nl);
    return r;
}

int nl_link_set(int index, unsigned mtu, int master, bool up)
{
    struct nl *nl;
    int r = nl_open(&nl);
    if (r < 0)
        return r;
    struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWLINK, 0);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = index;
    if (up) {
        ifm->ifi_flags = IFF_UP;
        ifm->ifi_change = IFF_UP;
    }
    if (mtu)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    if (master)
        mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
    r = nl_request(nlh, nl);
    nl_close(nl);
    return r;
}

int nl_link_del(int index)
{
    struct nl *nl;
    int r = nl_open(&nl);
    if (r < 0)
        return r;
    struct nlmsghdr *nlh = nl_msg(nl, RTM_DELLINK, 0);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = index;
    r = nl_request(nlh, nl);
    nl_close(nl);
    return r;
}

int nl_addr_add(int index, uint32_t addr, unsigned prefix)
{
    struct nl *nl;
    int r = nl_open(&nl);
    if (r < 0)
        return r;
    struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)index;
    uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
    mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(addr));
    mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(addr));
    if (prefix < 31)
        mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(addr | ~mask));
    r = nl_request(nlh, nl);
    nl_close(nl);
    return r == -EEXIST ? 0 : r;
}
