/* SPDX-License-Identifier: Apache-2.0 */
/* Typed access to the ports table (kova/db.h): a server's NICs, their MACs and fixed IPs. */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The one list of the columns struct kova_db_port holds, and its reader. */
#define PORT_COLS                                                                                  \
    "p.id, s.id, s.name, p.idx, p.network_id, p.network_name, p.mac, p.ip, p.created_at "          \
    "FROM ports p JOIN servers s ON s.seq = p.server_seq"

static int read_port(sqlite3_stmt *st, void *dst)
{
    struct kova_db_port *p = dst;
    memset(p, 0, sizeof(*p));
    db_copy_col(p->id, sizeof(p->id), st, 0);
    db_copy_col(p->server_id, sizeof(p->server_id), st, 1);
    db_copy_col(p->server_name, sizeof(p->server_name), st, 2);
    p->idx = sqlite3_column_int(st, 3);
    db_copy_col(p->network_id, sizeof(p->network_id), st, 4);
    db_copy_col(p->network_name, sizeof(p->network_name), st, 5);
    db_copy_col(p->mac, sizeof(p->mac), st, 6);
    p->ip = (uint32_t)sqlite3_column_int64(st, 7);
    db_copy_col(p->created_at, sizeof(p->created_at), st, 8);
    return 0;
}

static const struct db_rows port_rows = {sizeof(struct kova_db_port), read_port, NULL};

int kova_db_port_add(sqlite3 *conn, const struct kova_db_port *p)
{
    char now[32];
    db_now_iso(now, true);
    int r = db_exec_bound(conn,
                          "INSERT INTO ports (id, server_seq, idx, network_id, network_name, mac, "
                          "ip, created_at) SELECT ?1, seq, ?2, ?3, ?4, ?5, ?6, ?7 FROM servers "
                          "WHERE id = ?8",
                          DB_ARGS(DB_TEXT(p->id), DB_INT(p->idx), DB_TEXT(p->network_id),
                                  DB_TEXT(p->network_name), DB_TEXT(p->mac), DB_INT(p->ip),
                                  DB_TEXT(now), DB_TEXT(p->server_id)));
    if (r == 0)
        return -ENOENT;
    return r < 0 ? r : 0;
}

static int read_owner(sqlite3_stmt *st, void *dst)
{
    db_copy_col(dst, KOVA_DB_ID_MAX, st, 0);
    return 0;
}

int kova_db_port_ip_owner(sqlite3 *conn, const char *network_id, uint32_t ip, char *owner)
{
    int r = db_get(conn,
                   "SELECT s.id FROM ports p JOIN servers s ON s.seq = p.server_seq WHERE "
                   "p.network_id = ? AND p.ip = ?",
                   DB_ARGS(DB_TEXT(network_id), DB_INT(ip)), read_owner, owner);
    return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

static int read_ip(sqlite3_stmt *st, void *dst)
{
    *(uint32_t *)dst = (uint32_t)sqlite3_column_int64(st, 0);
    return 0;
}

static const struct db_rows ip_rows = {sizeof(uint32_t), read_ip, NULL};

int kova_db_port_ips(sqlite3 *conn, const char *network_id, uint32_t **out, size_t *n)
{
    return db_collect(conn, "SELECT ip FROM ports WHERE network_id = ? ORDER BY ip",
                      DB_ARGS(DB_TEXT(network_id)), &ip_rows, (void **)out, n);
}

int kova_db_port_list(sqlite3 *conn, const char *server_id, struct kova_db_port **out, size_t *n)
{
    return db_collect(conn,
                      "SELECT " PORT_COLS " WHERE ?1 IS NULL OR s.id = ?1 ORDER BY s.seq, p.idx",
                      DB_ARGS(DB_TEXT(server_id)), &port_rows, (void **)out, n);
}

int kova_db_port_get(sqlite3 *conn, const char *server_id, const char *port_id,
                     struct kova_db_port *out)
{
    return db_get(conn, "SELECT " PORT_COLS " WHERE s.id = ? AND p.id = ?",
                  DB_ARGS(DB_TEXT(server_id), DB_TEXT(port_id)), read_port, out);
}

static const struct db_rows owner_rows = {KOVA_DB_ID_MAX, read_owner, NULL};

int kova_db_port_by_ip(sqlite3 *conn, uint32_t ip, char *server_id)
{
    char(*ids)[KOVA_DB_ID_MAX] = NULL;
    size_t n = 0;
    int r = db_collect(conn,
                       "SELECT s.id FROM ports p JOIN servers s ON s.seq = p.server_seq WHERE "
                       "p.ip = ? LIMIT 2",
                       DB_ARGS(DB_INT(ip)), &owner_rows, (void **)&ids, &n);
    if (r < 0)
        return r;
    if (n == 1)
        memcpy(server_id, ids[0], KOVA_DB_ID_MAX);
    free(ids);
    return n == 1 ? 1 : 0;
}
