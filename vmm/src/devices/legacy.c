/* SPDX-License-Identifier: Apache-2.0 */
#include "legacy.h"
#include "platform.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- i8042 ---- */

#define I8042_STATUS_OBF 0x01
#define I8042_STATUS_SYS 0x04
#define I8042_STATUS_CMD 0x08
#define I8042_STATUS_AUX 0x20

static void kbd_push(struct i8042 *k, uint8_t v)
{
    if (k->out_n < sizeof(k->out))
        k->out[k->out_n++] = v;
}

static void i8042_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    struct i8042 *k = opaque;
    memset(data, 0, size);
    pthread_mutex_lock(&k->lock);
    if (off == 0) {
        if (k->out_n) {
            data[0] = k->out[0];
            memmove(k->out, k->out + 1, --k->out_n);
        }
    } else if (off == 4) {
        data[0] = I8042_STATUS_SYS | (k->out_n ? I8042_STATUS_OBF : 0);
    } else {
        data[0] = 0xff;
    }
    pthread_mutex_unlock(&k->lock);
}

static void i8042_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct i8042 *k = opaque;
    uint8_t v = data[0];
    int reset = 0;
    pthread_mutex_lock(&k->lock);
    if (off == 0) {
        switch (k->pending) {
        case 0x60:
            k->ctr = v;
            break;
        case 0xd1: /* output port: bit 0 low holds the CPU in reset */
            reset = !(v & 1);
            break;
        case 0xd2: /* write keyboard output buffer */
            kbd_push(k, v);
            break;
        case 0xd3: /* write aux output buffer */
        case 0xd4: /* to the mouse: there is none */
            break;
        default:
            /* A byte for the keyboard: acknowledge it; reset answers "passed". */
            kbd_push(k, 0xfa);
            if (v == 0xff)
                kbd_push(k, 0xaa);
            break;
        }
        k->pending = 0;
    } else if (off == 4) {
        k->pending = 0;
        switch (v) {
        case 0x20:
            kbd_push(k, k->ctr);
            break;
        case 0x60:
        case 0xd1:
        case 0xd2:
        case 0xd3:
        case 0xd4:
            k->pending = v;
            break;
        case 0xa7: /* disable aux */
            k->ctr |= 0x20;
            break;
        case 0xa8:
            k->ctr &= (uint8_t)~0x20;
            break;
        case 0xa9: /* aux interface test */
        case 0xab: /* keyboard interface test */
            kbd_push(k, 0x00);
            break;
        case 0xaa: /* controller self test */
            kbd_push(k, 0x55);
            break;
        case 0xad:
            k->ctr |= 0x10;
            break;
        case 0xae:
            k->ctr &= (uint8_t)~0x10;
            break;
        case 0xd0:
            kbd_push(k, 0x01);
            break;
        default:
            if ((v & 0xf0) == 0xf0 && !(v & 1)) /* pulse output line 0: CPU reset */
                reset = 1;
            break;
        }
    }
    pthread_mutex_unlock(&k->lock);
    if (reset && k->power)
        k->power->event(k->power->opaque, POWER_RESET);
}

const struct bus_ops i8042_ops = {i8042_read, i8042_write};

void i8042_init(struct i8042 *k, const struct power_sink *power)
{
    memset(k, 0, sizeof(*k));
    pthread_mutex_init(&k->lock, NULL);
    k->ctr = 0x61; /* keyboard interrupt on, translation on, system flag */
    k->power = power;
}

/* ---- CMOS RTC ---- */

static uint8_t bcd(int v)
{
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

void cmos_fill_time(struct cmos *c, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    c->ram[0x00] = bcd(tm.tm_sec);
    c->ram[0x02] = bcd(tm.tm_min);
    c->ram[0x04] = bcd(tm.tm_hour);
    c->ram[0x06] = bcd(tm.tm_wday + 1);
    c->ram[0x07] = bcd(tm.tm_mday);
    c->ram[0x08] = bcd(tm.tm_mon + 1);
    c->ram[0x09] = bcd(tm.tm_year % 100);
    c->ram[0x32] = bcd((tm.tm_year + 1900) / 100);
}

static void cmos_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    struct cmos *c = opaque;
    memset(data, 0, size);
    pthread_mutex_lock(&c->lock);
    if (off == 0) {
        data[0] = 0xff;
    } else {
        uint8_t i = c->index & 0x7f;
        if (i <= 0x09 || i == 0x32)
            cmos_fill_time(c, time(NULL));
        data[0] = c->ram[i];
        if (i == 0x0c)
            c->ram[0x0c] = 0; /* interrupt flags clear on read */
    }
    pthread_mutex_unlock(&c->lock);
}

static void cmos_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct cmos *c = opaque;
    pthread_mutex_lock(&c->lock);
    if (off == 0) {
        c->index = data[0];
    } else {
        uint8_t i = c->index & 0x7f;
        /* The clock follows the host: time fields, status C/D stay as they are. */
        if (i == 0x0a)
            c->ram[i] = data[0] & 0x7f; /* UIP is read-only */
        else if (i == 0x0b)
            c->ram[i] = (uint8_t)((data[0] & ~0x06) | 0x02); /* stays BCD, 24 h */
        else if (i > 0x0d && i != 0x32)
            c->ram[i] = data[0];
    }
    pthread_mutex_unlock(&c->lock);
}

const struct bus_ops cmos_ops = {cmos_read, cmos_write};

void cmos_init(struct cmos *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->ram[0x0a] = 0x26; /* 32.768 kHz base, 1024 Hz rate */
    c->ram[0x0b] = 0x02; /* 24 hour, BCD */
    c->ram[0x0d] = 0x80; /* RAM and time valid */
}

/* ---- ACPI sleep control / status and reset registers ---- */

static void acpi_pm_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    memset(data, 0, size);
}

static void acpi_pm_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct acpi_pm *pm = opaque;
    uint8_t v = data[0];
    if (off == PIO_ACPI_SLEEP_CTL - PIO_ACPI_SLEEP_CTL) {
        /* SLP_EN (bit 5) with SLP_TYP (bits 4:2) == S5 */
        if ((v & 0x20) && ((v >> 2) & 7) == ACPI_S5_TYP)
            pm->power->event(pm->power->opaque, POWER_OFF);
    } else if (off == PIO_ACPI_RESET - PIO_ACPI_SLEEP_CTL) {
        if (v == ACPI_RESET_VALUE)
            pm->power->event(pm->power->opaque, POWER_RESET);
    }
}

const struct bus_ops acpi_pm_ops = {acpi_pm_read, acpi_pm_write};

/* ---- boot timer ---- */

static void boot_timer_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    const struct power_sink *p = opaque;
    if (data[0] == BOOT_TIMER_MAGIC)
        p->boot_timer(p->opaque);
}

const struct bus_ops boot_timer_ops = {NULL, boot_timer_write};

/* ---- the device table's rows ---- */

static int i8042_create(const struct device_kind *kind, const struct dev_env *env,
                        const struct dev_config *cfg, unsigned index, void **dev, const char **why)
{
    struct i8042 *k = malloc(sizeof(*k));
    if (!k)
        return -ENOMEM;
    i8042_init(k, env->power);
    int r = bus_register(env->pio, PIO_I8042_DATA, 5, &i8042_ops, k, "i8042");
    if (r < 0) {
        pthread_mutex_destroy(&k->lock);
        free(k);
        return r;
    }
    *dev = k;
    return 0;
}

static void i8042_destroy(const struct device_kind *kind, void *dev)
{
    struct i8042 *k = dev;
    pthread_mutex_destroy(&k->lock);
    free(k);
}

const struct device_kind i8042_kind = {
    .name = "i8042",
    .why = "cannot register the devices",
    .create = i8042_create,
    .destroy = i8042_destroy,
};

static int cmos_create(const struct device_kind *kind, const struct dev_env *env,
                       const struct dev_config *cfg, unsigned index, void **dev, const char **why)
{
    struct cmos *c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    cmos_init(c);
    int r = bus_register(env->pio, PIO_RTC, 2, &cmos_ops, c, "cmos");
    if (r < 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return r;
    }
    *dev = c;
    return 0;
}

static void cmos_destroy(const struct device_kind *kind, void *dev)
{
    struct cmos *c = dev;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const struct device_kind cmos_kind = {
    .name = "cmos",
    .why = "cannot register the devices",
    .create = cmos_create,
    .destroy = cmos_destroy,
};

static int acpi_pm_create(const struct device_kind *kind, const struct dev_env *env,
                          const struct dev_config *cfg, unsigned index, void **dev,
                          const char **why)
{
    struct acpi_pm *pm = malloc(sizeof(*pm));
    if (!pm)
        return -ENOMEM;
    pm->power = env->power;
    int r = bus_register(env->pio, PIO_ACPI_SLEEP_CTL, 3, &acpi_pm_ops, pm, "acpi");
    if (r < 0) {
        free(pm);
        return r;
    }
    *dev = pm;
    return 0;
}

static void acpi_pm_destroy(const struct device_kind *kind, void *dev)
{
    free(dev);
}

const struct device_kind acpi_pm_kind = {
    .name = "acpi-pm",
    .why = "cannot register the devices",
    .create = acpi_pm_create,
    .destroy = acpi_pm_destroy,
};

/* The boot timer has no state: the port goes straight to the power sink. */
static int boot_timer_create(const struct device_kind *kind, const struct dev_env *env,
                             const struct dev_config *cfg, unsigned index, void **dev,
                             const char **why)
{
    *dev = NULL;
    return bus_register(env->pio, PIO_BOOT_TIMER, 1, &boot_timer_ops, env->power, "boot-timer");
}

static void boot_timer_destroy(const struct device_kind *kind, void *dev)
{
}

const struct device_kind boot_timer_kind = {
    .name = "boot-timer",
    .why = "cannot register the devices",
    .create = boot_timer_create,
    .destroy = boot_timer_destroy,
};
