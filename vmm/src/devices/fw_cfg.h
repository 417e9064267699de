/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fw_cfg: the firmware configuration interface QEMU gives its firmware (QEMU's
 * docs/specs/fw_cfg.rst), as much of it as SeaBIOS reads: the selector register at port 0x510
 * (a 16-bit write picks an item and rewinds it), the data register at 0x511 (each byte read
 * returns the item's next byte). No DMA interface: the id item says so, and SeaBIOS then reads
 * byte by byte.
 *
 * Items: 0x0000 signature "QEMU", 0x0001 id (0: traditional interface only), 0x0005 the CPU count
 * and 0x000f the maximum CPU count (16-bit little-endian), 0x0019 the file directory (a
 * big-endian 32-bit count, then per file {be32 size, be16 select, be16 reserved, name[56]},
 * sorted by name as QEMU does), and the files themselves from 0x0020 on.
 *
 * Invariant: the guest reaches the items only through fw_cfg_select() and fw_cfg_read_byte(),
 * the one checking place: a selector naming no item selects nothing, and then, like a read past
 * the end of an item, reads give 0; writes to the data register, accesses of other sizes or
 * offsets are ignored. Each of these is counted (struct fw_cfg_stats), never fatal. Items are
 * fixed once the vCPUs run (files are added before); the selection is guarded by a lock, since
 * any vCPU may use the ports.
 * Errors: 0 or -errno as each function says.
 */
#ifndef KOVA_VMM_FW_CFG_H
#define KOVA_VMM_FW_CFG_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "device.h"

#define FW_CFG_PORT_SEL  0x510
#define FW_CFG_PORT_DATA 0x511

#define FW_CFG_SIGNATURE  0x0000
#define FW_CFG_ID         0x0001
#define FW_CFG_NB_CPUS    0x0005
#define FW_CFG_MAX_CPUS   0x000f
#define FW_CFG_FILE_DIR   0x0019
#define FW_CFG_FILE_FIRST 0x0020

#define FW_CFG_MAX_FILES    32
#define FW_CFG_NAME_MAX     55 /* bytes of a file name; the directory has 56 with the NUL */
#define FW_CFG_MAX_FILE_LEN (16u << 20)

struct fw_cfg;

struct fw_cfg_stats {
    unsigned long bad_selects; /* a selector naming no item */
    unsigned long past_end;    /* reads past the end of the selected item (or with none) */
    unsigned long bad_access;  /* data-register writes, other sizes or offsets */
};

/* A new interface with the fixed items for ncpus vCPUs (1..255). 0, -EINVAL or -ENOMEM. */
int fw_cfg_new(struct fw_cfg **out, unsigned ncpus);
void fw_cfg_free(struct fw_cfg *f);
/* Adds a file (its bytes copied) and rebuilds the directory. 0; -EINVAL for an empty name or
 * one longer than FW_CFG_NAME_MAX, or len above FW_CFG_MAX_FILE_LEN; -EEXIST for a name already
 * there; -ENOSPC past FW_CFG_MAX_FILES; -ENOMEM. */
int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data, size_t len);
/* The guest's two operations (the port handlers use them; tests call them directly). */
void fw_cfg_select(struct fw_cfg *f, uint16_t key);
uint8_t fw_cfg_read_byte(struct fw_cfg *f);
struct fw_cfg_stats fw_cfg_get_stats(struct fw_cfg *f);

/* Ports 0x510 (2 bytes, selector) and 0x511 (1 byte, data), for a bus. */
extern const struct bus_ops fw_cfg_ops;

/* The device table's row: one interface when the VM boots through firmware
 * (dev_config.fw_files), holding those files; none otherwise. */
extern const struct device_kind fw_cfg_kind;

#endif
