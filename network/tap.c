/* SPDX-License-Identifier: Apache-2.0 */
/* Non-persistent taps on a bridge (kova/network.h kova_net_tap_open). */
#include "kova/network.h"
#include "kova/common.h"
#include "nl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kova_net_tap_open(const char *name, const char *bridge, unsigned mtu, char *err, size_t errlen)
{
    size_t n = strlen(name);
    if (n < 1 || n >= IFNAMSIZ)
        return kova_err(err, errlen, -EINVAL, "tap name \"%s\": 1..15 characters expected", name);
    struct nl_link br;
    int r = nl_link_get(bridge, &br);
    if (r < 0)
        return kova_err(err, errlen, r, "tap %s: bridge %s: %s", name, bridge, strerror(-r));
    if (strcmp(br.kind, "bridge"))
        return kova_err(err, errlen, -EINVAL, "tap %s: %s is not a bridge", name, bridge);

    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        return kova_err(err, errlen, r, "tap %s: cannot open /dev/net/tun: %s", name, strerror(-r));
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, n);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        r = -errno;
        kova_err(err, errlen, r, "tap %s: TUNSETIFF: %s%s", name, strerror(-r),
                 r == -EBUSY    ? " (a VMM still holds it)"
                 : r == -EINVAL ? " (a link of that name that is not a tap exists)"
                                : "");
        goto fail;
    }
    /* A persistent tap of this name (made by hand, or by another tool) would outlive the fd:
     * clear that, so that the VMM's exit always removes it. */
    if (ioctl(fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_PERSIST) &&
        ioctl(fd, TUNSETPERSIST, 0UL) < 0) {
        r = -errno;
        kova_err(err, errlen, r, "tap %s: cannot make it non-persistent: %s", name, strerror(-r));
        goto fail;
    }
    struct nl_link tap;
    if ((r = nl_link_get(name, &tap)) < 0) {
        kova_err(err, errlen, r, "tap %s: cannot find its link: %s", name, strerror(-r));
        goto fail;
    }
    if ((r = nl_link_set(tap.index, mtu, br.index, true)) < 0) {
        kova_err(err, errlen, r, "tap %s: cannot set mtu %u, make it a port of %s and up: %s", name,
                 mtu, bridge, strerror(-r));
        goto fail;
    }
    return fd;
fail:
    close(fd); /* the tap goes with its only fd */
    return r;
}
