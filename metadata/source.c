/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova metadata: a server as its guest sees it (kova/metadata.h, kova_md_source_load), read from
 * kova's database in one read: the server's row and metadata, the public key and user data of
 * its create request, its flavor's name, its ports with their networks' addresses, routes, DNS
 * and MTU.
 */
#include "kova/metadata.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kova/db.h"
#include "kova/network.h"

_Static_assert(KOVA_MD_NICS_MAX == KOVA_DB_PORTS_MAX, "a NIC per port");

void kova_md_source_free(struct kova_md_source *s)
{
    if (!s)
        return;
    if (s->view) {
        kova_db_server_view_free(s->view);
        free(s->view);
    }
    free(s->ports);
    free(s->key_data);
    free(s->user_data);
    free(s->flavor_name);
    memset(s, 0, sizeof(*s));
}

static const struct kova_net_def *net_of(const struct kova_net_def *nets, size_t n,
                                         const char *uuid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(nets[i].uuid, uuid) == 0)
            return &nets[i];
    return NULL;
}

int kova_md_source_load(sqlite3 *conn, const char *server_id, const struct kova_net_def *nets,
                        size_t nnets, const char *dhcp_domain, struct kova_md_source *out)
{
    memset(out, 0, sizeof(*out));
    struct kova_db_flavor fl;
    int r = -ENOMEM;
    if (!(out->view = calloc(1, sizeof(*out->view))))
        goto fail;
    if ((r = kova_db_server_view_get(conn, server_id, NULL, out->view)) < 0)
        goto fail;
    if ((r = kova_db_server_guest_data(conn, server_id, &out->key_data, &out->user_data)) < 0)
        goto fail;
    size_t nports = 0;
    if ((r = kova_db_port_list(conn, server_id, &out->ports, &nports)) < 0)
        goto fail;
    if (nports > KOVA_DB_PORTS_MAX) {
        r = -E2BIG;
        goto fail;
    }
    r = kova_db_flavor_get(conn, out->view->flavor_id, &fl);
    if (r == 0 && !(out->flavor_name = strdup(fl.name))) {
        r = -ENOMEM;
        goto fail;
    }
    if (r < 0 && r != -ENOENT) /* a deleted flavor: its id stands in, as a name */
        goto fail;

    const struct kova_db_server_view *v = out->view;
    for (size_t i = 0; i < nports; i++) {
        const struct kova_db_port *p = &out->ports[i];
        struct kova_md_nic *nic = &out->nics[i];
        *nic = (struct kova_md_nic){.port_id = p->id, .mac = p->mac, .network_id = p->network_id};
        const struct kova_net_def *d = net_of(nets, nnets, p->network_id);
        if (d) { /* a network gone from the config: the link only, as a port without an IP */
            nic->ip = p->ip;
            nic->prefix = d->prefix;
            nic->gateway = d->gateway;
            nic->mtu = d->mtu;
            for (unsigned k = 0; k < d->ndns && k < 3; k++)
                nic->dns[nic->ndns++] = d->dns[k];
        }
    }
    if (out->key_data) {
        out->key = (struct kova_md_key){v->key_name ? v->key_name : "", "ssh", out->key_data};
        struct kova_db_keypair kp;
        if (v->key_name && kova_db_keypair_get(conn, v->user_id, v->key_name, &kp) == 0) {
            if (strcmp(kp.type, "x509") == 0)
                out->key.type = "x509";
            kova_db_keypair_free(&kp);
        }
    }
    out->in = (struct kova_md_instance){
        .uuid = v->id,
        .name = v->name,
        .project_id = v->project_id,
        .availability_zone = v->availability_zone,
        .image_id = v->image_ref,
        .flavor_name = out->flavor_name ? out->flavor_name : v->flavor_id,
        .seq = v->seq,
        .launch_index = 0,
        .keys = out->key_data ? &out->key : NULL,
        .nkeys = out->key_data ? 1 : 0,
        .meta_json = v->metadata,
        .user_data_b64 = out->user_data && out->user_data[0] ? out->user_data : NULL,
        .nics = out->nics,
        .nnics = nports,
        .dhcp_domain = dhcp_domain,
    };
    return 0;
fail:
    kova_md_source_free(out);
    return r;
}
