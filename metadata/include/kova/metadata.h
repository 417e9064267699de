/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova metadata: what cloud-init in the guest reads about its server, in Nova's layout
 * (nova/api/metadata/base.py), for the two paths that share it (design §8):
 *  - the metadata service on 169.254.169.254:80: kova_md_get() renders the document at a request
 *    path (the HTTP side only maps the guest to its instance and serves the bytes);
 *  - the config drive: kova_md_config_drive_files() lists Nova's config drive files and
 *    kova_md_write_config_drive() writes them into a 64 MiB vfat image labelled "config-2".
 *
 * The trees (versions as Nova's; "latest" is the newest of each):
 *   /openstack                         the versions 2012-08-10 .. 2020-10-14, latest (one a line)
 *   /openstack/V                       the file names V has (one a line)
 *   /openstack/V/meta_data.json        uuid, meta (when not empty), public_keys, keys (with a
 *                                      key), hostname, name, launch_index, availability_zone,
 *                                      random_seed (>= 2013-04-04: 512 fresh random bytes,
 *                                      base64), project_id (>= 2015-10-15), devices [] (>=
 *                                      2016-06-30), dedicated_cpus [] (>= 2020-10-14)
 *   /openstack/V/user_data             the decoded user data (none: not found)
 *   /openstack/V/password              "" (>= 2013-04-04; a POST to it is the HTTP side's)
 *   /openstack/V/vendor_data.json      {} (>= 2013-10-17)
 *   /openstack/V/network_data.json     links/networks/services, static "ipv4" (>= 2015-10-15)
 *   /openstack/V/vendor_data2.json     {"static": {}} (>= 2016-10-06; Nova's default providers)
 *   / and /ec2                         the EC2 versions 1.0 .. 2009-04-04, latest
 *   /V and /ec2/V                      "meta-data/" and "user-data" (when there is some)
 *   /V/meta-data/...                   Nova's EC2 tree: ami-id, ami-launch-index,
 *                                      ami-manifest-path, block-device-mapping/, hostname,
 *                                      instance-action, instance-id, instance-type,
 *                                      local-hostname, local-ipv4, placement/availability-zone,
 *                                      public-hostname, public-ipv4, public-keys/ ("0=NAME"),
 *                                      public-keys/0/ ("openssh-key"), public-keys/0/openssh-key,
 *                                      reservation-id, security-groups (as each version has them)
 *   /V/user-data                       the decoded user data
 * A listing (a "directory") is served with or without its trailing slash, as Nova's; a document
 * also takes one trailing slash (Nova normalises it away).
 *
 * Hostile paths: the path comes from the network and is checked in one place: at most
 * KOVA_MD_PATH_MAX bytes, starting with '/', only [A-Za-z0-9._-] and '/', no empty component but
 * one trailing slash, no component starting with '.' (so no "." or ".."), no '%' (the HTTP side
 * decodes nothing more), no NUL before pathlen (kova_md_getn). Anything else, and every name
 * that is not in the trees, is -ENOENT (the HTTP side answers 404).
 *
 * Errors: 0 or -errno (-ENOENT: no such document; -EINVAL: the instance's own data is bad,
 * e.g. meta_json not a JSON object or user_data_b64 not base64; -ENOMEM). The functions keep no
 * state and may be called from any thread (random_seed: getrandom(2)).
 */
#ifndef KOVA_METADATA_H
#define KOVA_METADATA_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define KOVA_MD_PATH_MAX     256    /* longest request path kova_md_get() looks at */
#define KOVA_MD_HOSTNAME_MAX 64     /* a sanitised hostname (63) + NUL */
#define KOVA_MD_FILE_PATH    128    /* struct kova_md_file's path buffer */
#define KOVA_MD_DRIVE_KIB    65536u /* the vfat config drive: 64 MiB, as Nova's */
#define KOVA_MD_LABEL        "config-2"
#define KOVA_MD_SERVICE_IP   0xa9fea9feu /* 169.254.169.254: where guests ask (host order) */
#define KOVA_MD_NICS_MAX     8           /* kova_md_source's NICs: KOVA_DB_PORTS_MAX */

/* A keypair: type "ssh" (or "x509"), data the OpenSSH public key line. */
struct kova_md_key {
    const char *name, *type, *data;
};

/* One port. Addresses IPv4 in host byte order; ip 0: the port has no address (its link is
 * listed, no network); gateway 0: no default route. mtu 0: null. */
struct kova_md_nic {
    const char *port_id, *mac, *network_id; /* mac "fa:16:3e:..", ids uuids */
    uint32_t ip, gateway;
    unsigned prefix; /* 0..32 */
    uint32_t dns[3];
    unsigned ndns;
    unsigned mtu;
};

/* One server. NULL strings read as "" (availability_zone NULL: null, as Nova's). */
struct kova_md_instance {
    const char *uuid, *name, *project_id, *availability_zone, *image_id, *flavor_name;
    long long seq; /* EC2 instance-id "i-%08llx"; ami-id "ami-" + 8 hex of image_id */
    long long launch_index;
    const char *reservation_id; /* "r-xxxxxxxx"; NULL: "r-" + the first 8 of uuid */
    const struct kova_md_key *keys;
    size_t nkeys;              /* 0 or 1 (key_name); only keys[0] is shown, as Nova's */
    const char *meta_json;     /* the server's metadata: a JSON object text; NULL: "{}" */
    const char *user_data_b64; /* base64 as the API stored it; NULL: none */
    const struct kova_md_nic *nics;
    size_t nnics;
    const char *dhcp_domain; /* Nova's [api]dhcp_domain appended to the hostname ("vm1" +
                                "novalocal" -> "vm1.novalocal"); NULL or "": none */
};

/* Nova's hostname for a server name (nova/utils.py sanitize_hostname): cut to 63, ' ', '_' and
 * '.' to '-', only [a-z0-9-] kept (upper case lowered; bytes past ASCII dropped), '-' stripped
 * at both ends; "" -> "Server-" + uuid, as Nova's API does. out: KOVA_MD_HOSTNAME_MAX bytes
 * (cut there: "Server-<uuid>" is 43). */
void kova_md_hostname(const char *name, const char *uuid, char out[KOVA_MD_HOSTNAME_MAX]);

/* The document at `path` as the metadata service serves it: *out malloc'd (NUL-terminated past
 * *len, for convenience; user data may hold NULs), *ctype "application/json" or "text/plain"
 * (static). -ENOENT for anything not in the trees (nothing allocated). */
int kova_md_get(const struct kova_md_instance *in, const char *path, char **out, size_t *len,
                const char **ctype);
/* The same for a path of pathlen bytes (a NUL among them: -ENOENT). */
int kova_md_getn(const struct kova_md_instance *in, const char *path, size_t pathlen, char **out,
                 size_t *len, const char **ctype);

/* One file of a config drive: path relative ("openstack/latest/meta_data.json"). */
struct kova_md_file {
    char path[KOVA_MD_FILE_PATH];
    char *data; /* malloc'd */
    size_t len;
};

/* Nova's config drive files (InstanceMetadata.metadata_for_config_drive with the default
 * config_drive_skip_versions): ec2/{2009-04-04,latest}/meta-data.json (+ user-data), then for
 * each OpenStack version and latest: meta_data.json, user_data (when there is some),
 * vendor_data.json, network_data.json, vendor_data2.json (each where the version has it).
 * *files: a malloc'd array of *n; free with kova_md_files_free(). */
int kova_md_config_drive_files(const struct kova_md_instance *in, struct kova_md_file **files,
                               size_t *n);
void kova_md_files_free(struct kova_md_file *files, size_t n);

/* Writes files into a new vfat image of KOVA_MD_DRIVE_KIB labelled "config-2" at image_path,
 * without a mount: /sbin/mkfs.vfat -n config-2 -C IMAGE.tmp 65536, then /usr/bin/mcopy -s from a
 * temporary dir beside the image (forked and exec'd with an explicit argv, a clean environment
 * with MTOOLS_SKIP_CHECK=1, stdin /dev/null), fsync, rename to image_path (an old one is
 * replaced only on success; a crash never leaves a half drive at image_path). The .tmp image and
 * the temporary dir (".NAME.files.XXXXXX" beside it) are removed on success and on failure.
 * File paths: relative, components of [A-Za-z0-9_.-] not starting with '.', each path once
 * (else -EINVAL). The image's mode is 0644 (its owner the caller's: chown it for the VMM).
 * Errors: -EINVAL; -ENOSPC when the files' bytes alone pass 64 MiB; -EIO when a tool fails (err
 * has the last line it wrote, e.g. "mcopy exited 1: Disk full"); or the -errno of a system call
 * (err says which). Waits for its two children by pid (SIGCHLD must not be ignored). */
int kova_md_write_config_drive(const char *image_path, const struct kova_md_file *files, size_t n,
                               char *err, size_t errlen);

/* ---- a server from kova's state (source.c) ---- */
struct kova_db_server_view;
struct kova_db_port;
struct kova_net_def;

/* kova_md_source_load's result: in points into the rest (free with kova_md_source_free). */
struct kova_md_source {
    struct kova_md_instance in;
    struct kova_md_nic nics[KOVA_MD_NICS_MAX];
    struct kova_md_key key;
    struct kova_db_server_view *view;
    struct kova_db_port *ports;
    char *key_data, *user_data, *flavor_name;
};

/* The server server_id as its metadata shows it (any project's: the caller decides who may see
 * it): name, project, zone, image, flavor name (its id when the flavor is gone), metadata, the
 * key_name's public key as the create request recorded it (type from the keypair when it is
 * still there, else "ssh"), user data, and a NIC per port in NIC order with its network's
 * prefix, gateway, DNS and MTU (a port whose network is no longer in nets: the link without an
 * address). dhcp_domain: kova_md_instance's (not copied). In one read of conn; -ENOENT when
 * there is no such server, -E2BIG for more ports than KOVA_DB_PORTS_MAX, -ENOMEM, -EIO. */
int kova_md_source_load(sqlite3 *conn, const char *server_id, const struct kova_net_def *nets,
                        size_t nnets, const char *dhcp_domain, struct kova_md_source *out);
/* Frees what kova_md_source_load filled in (not s); a zeroed struct is fine. */
void kova_md_source_free(struct kova_md_source *s);

#endif
