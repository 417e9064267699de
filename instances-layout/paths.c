/* SPDX-License-Identifier: Apache-2.0 */
/* kova_layout: instance ids, the state dir and every path built from them. */
#include "kova/layout.h"
#include "layout_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/un.h>

#include <openssl/evp.h>

/* The socket path must fit sun_path with its NUL; checked here rather than assumed. */
_Static_assert(KOVA_LAYOUT_STATE_MAX + sizeof("/instances/") - 1 + KOVA_UUID_STRLEN +
                       sizeof("/vmm.sock") - 1 <
                   sizeof(((struct sockaddr_un *)0)->sun_path),
               "KOVA_LAYOUT_STATE_MAX leaves no room for the control socket");
_Static_assert(KOVA_LAYOUT_STATE_MAX + 64 + 41 < KOVA_LAYOUT_PATH_MAX,
               "KOVA_LAYOUT_PATH_MAX too small");

int kova_layout_init(struct kova_layout *l, const char *state_dir, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    if (!state_dir || state_dir[0] != '/')
        return kova_err(err, errlen, -EINVAL, "state dir must be an absolute path");
    size_t n = strlen(state_dir);
    while (n > 0 && state_dir[n - 1] == '/')
        n--;
    if (n > KOVA_LAYOUT_STATE_MAX)
        return kova_err(err, errlen, -ENAMETOOLONG,
                        "state dir is %zu bytes long, at most %d fit: its instances' control "
                        "sockets (STATE/instances/<uuid>/vmm.sock) must fit sun_path (108 bytes)",
                        n, KOVA_LAYOUT_STATE_MAX);
    memcpy(l->state_dir, state_dir, n);
    l->state_dir[n] = '\0';
    l->state_len = n;
    return 0;
}

int kova_layout_instances_dir(const struct kova_layout *l, char *out, size_t outlen)
{
    return lpath(out, outlen, "%s/instances", l->state_dir);
}

int kova_layout_base_dir(const struct kova_layout *l, char *out, size_t outlen)
{
    return lpath(out, outlen, "%s/instances/_base", l->state_dir);
}

int kova_layout_locks_dir(const struct kova_layout *l, char *out, size_t outlen)
{
    return lpath(out, outlen, "%s/instances/locks", l->state_dir);
}

int kova_layout_instance_path(const struct kova_layout *l, const char *uuid,
                              enum kova_instance_file which, char *out, size_t outlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (!kova_is_uuid_lower(uuid))
        return -EINVAL;
    const char *leaf;
    switch (which) {
    case KOVA_INSTANCE_DIR:
        return lpath(out, outlen, "%s/instances/%s", l->state_dir, uuid);
    case KOVA_INSTANCE_DISK:
        leaf = "disk";
        break;
    case KOVA_INSTANCE_DISK_INFO:
        leaf = "disk.info";
        break;
    case KOVA_INSTANCE_CONSOLE_LOG:
        leaf = "console.log";
        break;
    case KOVA_INSTANCE_VMM_SOCK:
        leaf = "vmm.sock";
        if (outlen > sizeof(((struct sockaddr_un *)0)->sun_path))
            outlen = sizeof(((struct sockaddr_un *)0)->sun_path);
        break;
    case KOVA_INSTANCE_VMM_PID:
        leaf = "vmm.pid";
        break;
    case KOVA_INSTANCE_CONFIG_DRIVE:
        leaf = "disk.config";
        break;
    default:
        return -EINVAL;
    }
    return lpath(out, outlen, "%s/instances/%s/%s", l->state_dir, uuid, leaf);
}

int kova_layout_image_key(const char *image_id, char hex[41])
{
    hex[0] = '\0';
    if (!image_id || !image_id[0])
        return -EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(image_id, strlen(image_id), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -EIO;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[40] = '\0';
    return 0;
}

int kova_layout_base_path(const struct kova_layout *l, const char *image_id, char *out,
                          size_t outlen)
{
    char hex[41];
    if (out && outlen)
        out[0] = '\0';
    int rc = kova_layout_image_key(image_id, hex);
    if (rc < 0)
        return rc;
    return lpath(out, outlen, "%s/instances/_base/%s", l->state_dir, hex);
}
