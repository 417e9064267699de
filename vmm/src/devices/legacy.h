/* SPDX-License-Identifier: Apache-2.0 */
/* Small legacy devices: a minimal i8042 (enough for probing and reset via 0xfe), the CMOS RTC
 * (host time, UTC, BCD, 24 h), the ACPI sleep/reset registers and the boot timer port. */
#ifndef KOVA_VMM_LEGACY_H
#define KOVA_VMM_LEGACY_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "bus.h"
#include "device.h"

struct i8042 {
    pthread_mutex_t lock;
    uint8_t ctr;    /* controller command byte */
    uint8_t out[4]; /* output buffer queue */
    unsigned out_n;
    uint8_t pending; /* command waiting for its data byte, 0 if none */
    const struct power_sink *power;
};

struct cmos {
    pthread_mutex_t lock;
    uint8_t index;
    uint8_t ram[128];
};

struct acpi_pm {
    const struct power_sink *power;
};

extern const struct bus_ops i8042_ops;   /* ports 0x60..0x64 (5 bytes) */
extern const struct bus_ops cmos_ops;    /* ports 0x70..0x71 */
extern const struct bus_ops acpi_pm_ops; /* PIO_ACPI_SLEEP_CTL..PIO_ACPI_RESET (3 bytes) */
extern const struct bus_ops boot_timer_ops;

void i8042_init(struct i8042 *k, const struct power_sink *power);
void cmos_init(struct cmos *c);
/* The CMOS time fields for a given time (for tests). */
void cmos_fill_time(struct cmos *c, time_t t);

/* Their rows of the device table (device.h): one of each per VM, on the port-I/O bus. */
extern const struct device_kind i8042_kind;      /* PIO_I8042_DATA..PIO_I8042_CMD */
extern const struct device_kind cmos_kind;       /* PIO_RTC, 2 ports */
extern const struct device_kind acpi_pm_kind;    /* PIO_ACPI_SLEEP_CTL, 3 ports */
extern const struct device_kind boot_timer_kind; /* PIO_BOOT_TIMER */

#endif
