/* SPDX-License-Identifier: Apache-2.0 */
/* A sample server's metadata for peers that are not C (test_cloudinit.py, cloud-init's own
 * readers):
 *   md-helper drive IMAGE   writes its config drive at IMAGE
 *   md-helper get PATH      writes the document at PATH to stdout, its content type to stderr;
 *                           exit 0, 4 for -ENOENT, 1 otherwise
 * The sample: "Web Server_1", key "k", user data "#cloud-config\nhostname: ignored\n" (base64),
 * metadata {"role": "web"}, two ports (10.0.0.5/24 gw 10.0.0.1 dns 10.0.0.1, 8.8.8.8;
 * 192.168.10.11/20 no gateway, dns 8.8.8.8). */
#include "kova/metadata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKovaTestKeyOnlyNotARealKeyAtAll0123456 k@host"

int main(int argc, char **argv)
{
    static const struct kova_md_key key = {"k", "ssh", KEY};
    static const struct kova_md_nic nics[2] = {
        {.port_id = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
         .mac = "fa:16:3e:12:34:56",
         .network_id = "11111111-2222-4333-8444-555555555555",
         .ip = 0x0a000005,
         .gateway = 0x0a000001,
         .prefix = 24,
         .dns = {0x0a000001, 0x08080808},
         .ndns = 2,
         .mtu = 1500},
        {.port_id = "aaaabbbb-cccc-4ddd-8eee-ffff00001111",
         .mac = "fa:16:3e:ab:cd:ef",
         .network_id = "99999999-8888-4777-8666-555555555555",
         .ip = 0xc0a80a0b,
         .prefix = 20,
         .dns = {0x08080808},
         .ndns = 1,
         .mtu = 1450},
    };
    const struct kova_md_instance in = {
        .uuid = "6f1c3b2a-9d4e-4f7a-8b1c-2d3e4f5a6b7c",
        .name = "Web Server_1",
        .project_id = "0123456789abcdef0123456789abcdef",
        .availability_zone = "nova",
        .image_id = "a1b2c3d4-0000-4000-8000-000000000001",
        .flavor_name = "m1.small",
        .seq = 42,
        .reservation_id = "r-abcd1234",
        .keys = &key,
        .nkeys = 1,
        .meta_json = "{\"role\": \"web\"}",
        .user_data_b64 = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogaWdub3JlZAo=",
        .nics = nics,
        .nnics = 2,
    };
    if (argc == 3 && !strcmp(argv[1], "drive")) {
        struct kova_md_file *f;
        size_t n;
        char err[256];
        int rc = kova_md_config_drive_files(&in, &f, &n);
        if (!rc)
            rc = kova_md_write_config_drive(argv[2], f, n, err, sizeof(err));
        if (rc)
            fprintf(stderr, "md-helper: %d %s\n", rc, err);
        kova_md_files_free(f, n);
        return rc ? 1 : 0;
    }
    if (argc == 3 && !strcmp(argv[1], "get")) {
        char *out;
        size_t len;
        const char *ct;
        int rc = kova_md_get(&in, argv[2], &out, &len, &ct);
        if (rc)
            return rc == -ENOENT ? 4 : 1;
        fputs(ct, stderr);
        size_t w = fwrite(out, 1, len, stdout);
        free(out);
        return w == len ? 0 : 1;
    }
    fprintf(stderr, "usage: md-helper drive IMAGE | get PATH\n");
    return 2;
}
