/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linux taps as virtio-net backends. A tap is opened (or an inherited fd checked) once, by the
 * main thread before the sandbox closes (sandbox.h: step 1 comes after every file is open); it is
 * then only read, written and re-offloaded (TUNSETOFFLOAD) by the device's worker thread.
 *
 * Invariant of every tap fd these functions hand out: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a
 * vnet header of TAP_VNET_HDR_LEN bytes (struct virtio_net_hdr_v1) in front of every frame in
 * both directions, non-blocking, close-on-exec, offloads off until tap_set_offload.
 * Errors: 0 or -errno, with a static reason in *why.
 */
#ifndef KOVA_VMM_TAP_H
#define KOVA_VMM_TAP_H

#include <stdbool.h>

#define TAP_VNET_HDR_LEN 12

/* Offload flags for tap_set_offload (the kernel's TUN_F_*). */
#define TAP_F_CSUM 0x01
#define TAP_F_TSO4 0x02
#define TAP_F_TSO6 0x04

/* Opens /dev/net/tun and attaches to (or creates, as root) the tap called name. Its fd or -errno.
 */
int tap_open(const char *name, const char **why);
/* Checks that an inherited fd is a tap with the flags above (TUNGETIFF), makes it non-blocking and
 * close-on-exec, sets the header size and clears the offloads. The interface's name goes into
 * ifname (16 bytes). 0 or -errno; the fd is the caller's either way. */
int tap_adopt(int fd, char *ifname, const char **why);
/* TUNSETOFFLOAD with TAP_F_* flags. 0 or -errno. */
int tap_set_offload(int fd, unsigned flags);

#endif
