/* SPDX-License-Identifier: Apache-2.0 */
/* fw_cfg (fw_cfg.h): fixed items, files, the directory, and the port handlers. */
#include "fw_cfg.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct fw_item {
    uint8_t *data;
    uint32_t len;
};

struct fw_file_entry {
    char name[FW_CFG_NAME_MAX + 1];
    struct fw_item item;
};

struct fw_cfg {
    pthread_mutex_t lock;
    struct fw_item signature, id, ncpus, dir;
    struct fw_file_entry files[FW_CFG_MAX_FILES];
    unsigned nfiles;
    const struct fw_item *cur; /* the selected item; NULL: none */
    uint32_t pos;
    struct fw_cfg_stats stats;
};

static int item_set(struct fw_item *it, const void *data, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        return -ENOMEM;
    if (len)
        memcpy(p, data, len);
    free(it->data);
    it->data = p;
    it->len = (uint32_t)len;
    return 0;
}

int fw_cfg_new(struct fw_cfg **out, unsigned ncpus)
{
    *out = NULL;
    if (ncpus == 0 || ncpus > 255)
        return -EINVAL;
    struct fw_cfg *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    uint8_t id[4] = {0}, n[2];
    kova_le_put(n, 2, ncpus);
    uint8_t dir[4] = {0};
    int r;
    if ((r = item_set(&f->signature, "QEMU", 4)) < 0 || (r = item_set(&f->id, id, 4)) < 0 ||
        (r = item_set(&f->ncpus, n, 2)) < 0 || (r = item_set(&f->dir, dir, 4)) < 0) {
        fw_cfg_free(f);
        return r;
    }
    *out = f;
    return 0;
}

void fw_cfg_free(struct fw_cfg *f)
{
    if (!f)
        return;
    free(f->signature.data);
    free(f->id.data);
    free(f->ncpus.data);
    free(f->dir.data);
    for (unsigned i = 0; i < f->nfiles; i++)
        free(f->files[i].item.data);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void be_put(uint8_t *p, unsigned size, uint32_t v)
{
    for (unsigned i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * (size - 1 - i)));
}

/* The directory of the files, sorted by name; each file's selector is FW_CFG_FILE_FIRST plus
 * its index in that order. */
static int rebuild_dir(struct fw_cfg *f)
{
    size_t len = 4 + 64 * (size_t)f->nfiles;
    uint8_t *d = calloc(1, len);
    if (!d)
        return -ENOMEM;
    be_put(d, 4, f->nfiles);
    for (unsigned i = 0; i < f->nfiles; i++) {
        uint8_t *e = d + 4 + 64 * (size_t)i;
        be_put(e, 4, f->files[i].item.len);
        be_put(e + 4, 2, FW_CFG_FILE_FIRST + i);
        memcpy(e + 8, f->files[i].name, strlen(f->files[i].name));
    }
    free(f->dir.data);
    f->dir.data = d;
    f->dir.len = (uint32_t)len;
    return 0;
}

int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data, size_t len)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > FW_CFG_NAME_MAX || len > FW_CFG_MAX_FILE_LEN)
        return -EINVAL;
    unsigned at = 0;
    while (at < f->nfiles && strcmp(f->files[at].name, name) < 0)
        at++;
    if (at < f->nfiles && !strcmp(f->files[at].name, name))
        return -EEXIST;
    if (f->nfiles == FW_CFG_MAX_FILES)
        return -ENOSPC;
    struct fw_item it = {0};
    int r = item_set(&it, data, len);
    if (r < 0)
        return r;
    memmove(&f->files[at + 1], &f->files[at], (f->nfiles - at) * sizeof(f->files[0]));
    memset(&f->files[at], 0, sizeof(f->files[at]));
    memcpy(f->files[at].name, name, nl);
    f->files[at].item = it;
    f->nfiles++;
    r = rebuild_dir(f);
    if (r < 0) { /* take it out again: the directory must name exactly the files */
        free(f->files[at].item.data);
        memmove(&f->files[at], &f->files[at + 1], (f->nfiles - at - 1) * sizeof(f->files[0]));
        f->nfiles--;
    }
    return r;
}

/* The item a selector names, or NULL. The only place a guest selector is interpreted. */
static const struct fw_item *lookup(const struct fw_cfg *f, uint16_t key)
{
    switch (key) {
    case FW_CFG_SIGNATURE:
        return &f->signature;
    case FW_CFG_ID:
        return &f->id;
    case FW_CFG_NB_CPUS:
    case FW_CFG_MAX_CPUS:
        return &f->ncpus;
    case FW_CFG_FILE_DIR:
        return &f->dir;
    default:
        if (key >= FW_CFG_FILE_FIRST && key - FW_CFG_FILE_FIRST < (int)f->nfiles)
            return &f->files[key - FW_CFG_FILE_FIRST].item;
        return NULL;
    }
}

void fw_cfg_select(struct fw_cfg *f, uint16_t key)
{
    pthread_mutex_lock(&f->lock);
    f->cur = lookup(f, key);
    f->pos = 0;
    if (!f->cur)
        f->stats.bad_selects++;
    pthread_mutex_unlock(&f->lock);
}

uint8_t fw_cfg_read_byte(struct fw_cfg *f)
{
    uint8_t v = 0;
    pthread_mutex_lock(&f->lock);
    if (f->cur && f->pos < f->cur->len)
        v = f->cur->data[f->pos++];
    else
        f->stats.past_end++;
    pthread_mutex_unlock(&f->lock);
    return v;
}

struct fw_cfg_stats fw_cfg_get_stats(struct fw_cfg *f)
{
    pthread_mutex_lock(&f->lock);
    struct fw_cfg_stats s = f->stats;
    pthread_mutex_unlock(&f->lock);
    return s;
}

static void bad_access(struct fw_cfg *f)
{
    pthread_mutex_lock(&f->lock);
    f->stats.bad_access++;
    pthread_mutex_unlock(&f->lock);
}

/* off 0..1: the selector; off 1 is also the data register. */
static void port_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    struct fw_cfg *f = opaque;
    if (off == 1 && size == 1) {
        data[0] = fw_cfg_read_byte(f);
        return;
    }
    memset(data, 0, size);
    bad_access(f);
}

static void port_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct fw_cfg *f = opaque;
    if (off == 0 && size == 2)
        fw_cfg_select(f, (uint16_t)kova_le_get(data, 2));
    else
        bad_access(f);
}

const struct bus_ops fw_cfg_ops = {.read = port_read, .write = port_write};

/* ---- the device table's row ---- */

static unsigned fw_cfg_count(const struct device_kind *k, const struct dev_config *cfg)
{
    (void)k;
    return cfg->firmware ? 1 : 0;
}

static int fw_cfg_create(const struct device_kind *k, const struct dev_env *env,
                         const struct dev_config *cfg, unsigned index, void **dev, const char **why)
{
    (void)k;
    (void)index;
    struct fw_cfg *f = NULL;
    int r = fw_cfg_new(&f, cfg->ncpus);
    for (unsigned i = 0; r == 0 && i < cfg->nfw_files; i++) {
        r = fw_cfg_add_file(f, cfg->fw_files[i].name, cfg->fw_files[i].data, cfg->fw_files[i].len);
        if (r < 0)
            *why = "cannot add a firmware configuration file";
    }
    if (r == 0)
        r = bus_register(env->pio, FW_CFG_PORT_SEL, 2, &fw_cfg_ops, f, "fw_cfg");
    if (r < 0) {
        fw_cfg_free(f);
        return r;
    }
    *dev = f;
    return 0;
}

static void fw_cfg_destroy(const struct device_kind *k, void *dev)
{
    (void)k;
    fw_cfg_free(dev);
}

const struct device_kind fw_cfg_kind = {
    .name = "fw_cfg",
    .why = "cannot create the firmware configuration interface",
    .count = fw_cfg_count,
    .create = fw_cfg_create,
    .destroy = fw_cfg_destroy,
};
