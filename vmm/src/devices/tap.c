/* SPDX-License-Identifier: Apache-2.0 */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

/* The settings every tap fd gets: header size, no offloads, non-blocking, close-on-exec. */
static int tap_setup(int fd, const char **why)
{
    int sz = TAP_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
        *why = "TUNSETVNETHDRSZ failed";
        return -errno;
    }
    if (tap_set_offload(fd, 0) < 0) {
        *why = "TUNSETOFFLOAD failed";
        return -errno;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        *why = "cannot make the tap fd non-blocking";
        return -errno;
    }
    return 0;
}

int tap_open(const char *name, const char **why)
{
    if (strlen(name) >= IFNAMSIZ) {
        *why = "interface name too long";
        return -EINVAL;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *why = "cannot open /dev/net/tun";
        return -errno;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = TAP_FLAGS;
    memcpy(ifr.ifr_name, name, strlen(name));
    int r = 0;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        r = -errno;
        *why = "TUNSETIFF failed (no such tap, a tun, busy, or not permitted)";
        goto fail;
    }
    if ((r = tap_setup(fd, why)) < 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return r;
}

int tap_adopt(int fd, char *ifname, const char **why)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
        *why = "not a tap (TUNGETIFF failed)";
        return -errno == -EBADF ? -EBADF : -EINVAL;
    }
    if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)) != TAP_FLAGS) {
        *why = "the fd is not a tap with IFF_TAP, IFF_NO_PI and IFF_VNET_HDR";
        return -EINVAL;
    }
    memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
    ifname[IFNAMSIZ - 1] = '\0';
    return tap_setup(fd, why);
}

int tap_set_offload(int fd, unsigned flags)
{
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}
