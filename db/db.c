/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/db.h"
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Versioned migrations: entry i brings the schema from version i to i + 1. Never edit an entry
 * once released; append a new one instead.
 */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE flavors ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  ram INTEGER NOT NULL,"
    "  vcpus INTEGER NOT NULL,"
    "  disk INTEGER NOT NULL,"
    "  ephemeral INTEGER NOT NULL DEFAULT 0,"
    "  swap INTEGER NOT NULL DEFAULT 0,"
    "  rxtx_factor REAL NOT NULL DEFAULT 1.0,"
    "  is_public INTEGER NOT NULL DEFAULT 1,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  description TEXT,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE flavor_extra_specs ("
    "  flavor_id TEXT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (flavor_id, key));"
    "CREATE TABLE keypairs ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  public_key TEXT NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  UNIQUE (user_id, name));"
    "CREATE TABLE images ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT,"
    "  owner TEXT,"
    "  status TEXT NOT NULL,"
    "  visibility TEXT NOT NULL,"
    "  disk_format TEXT,"
    "  container_format TEXT,"
    "  size INTEGER,"
    "  checksum TEXT,"
    "  os_hash_algo TEXT,"
    "  os_hash_value TEXT,"
    "  min_disk INTEGER NOT NULL DEFAULT 0,"
    "  min_ram INTEGER NOT NULL DEFAULT 0,"
    "  protected INTEGER NOT NULL DEFAULT 0,"
    "  properties TEXT NOT NULL DEFAULT '{}',"
    "  tags TEXT NOT NULL DEFAULT '[]',"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE TABLE servers ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  project_id TEXT NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  image_ref TEXT NOT NULL DEFAULT '',"
    "  flavor_id TEXT NOT NULL,"
    "  vcpus INTEGER NOT NULL,"
    "  ram INTEGER NOT NULL,"
    "  disk INTEGER NOT NULL,"
    "  vm_state TEXT NOT NULL,"
    "  task_state TEXT,"
    "  power_state INTEGER NOT NULL DEFAULT 0,"
    "  key_name TEXT,"
    "  key_data TEXT,"
    "  user_data TEXT,"
    "  availability_zone TEXT,"
    "  config_drive TEXT NOT NULL DEFAULT '',"
    "  access_ipv4 TEXT NOT NULL DEFAULT '',"
    "  access_ipv6 TEXT NOT NULL DEFAULT '',"
    "  disk_config TEXT NOT NULL DEFAULT 'MANUAL',"
    "  host TEXT,"
    "  launched_at TEXT,"
    "  terminated_at TEXT,"
    "  fault_code INTEGER,"
    "  fault_message TEXT,"
    "  fault_details TEXT,"
    "  fault_created TEXT,"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE INDEX servers_project ON servers(project_id, seq);"
    "CREATE TABLE server_metadata ("
    "  server_seq INTEGER NOT NULL REFERENCES servers(seq) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (server_seq, key));"
    "CREATE TABLE instance_actions ("
    "  id INTEGER PRIMARY KEY,"
    "  server_seq INTEGER NOT NULL REFERENCES servers(seq) ON DELETE CASCADE,"
    "  action TEXT NOT NULL,"
    "  request_id TEXT NOT NULL,"
    "  user_id TEXT NOT NULL,"
    "  project_id TEXT NOT NULL,"
    "  start_time TEXT NOT NULL,"
    "  finish_time TEXT,"
    "  message TEXT);"
    "CREATE INDEX instance_actions_server ON instance_actions(server_seq, id);"
    "CREATE TABLE instance_action_events ("
    "  id INTEGER PRIMARY KEY,"
    "  action_id INTEGER NOT NULL REFERENCES instance_actions(id) ON DELETE CASCADE,"
    "  event TEXT NOT NULL,"
    "  start_time TEXT NOT NULL,"
    "  finish_time TEXT,"
    "  result TEXT,"
    "  traceback TEXT);",
    /* 2: the default flavors (Nova's classic set), seeded once on first start */
    "INSERT INTO flavors (id, name, ram, vcpus, disk, created_at) VALUES"
    " ('1', 'm1.tiny', 512, 1, 1, strftime('%Y-%m-%dT%H:%M:%SZ','now')),"
    " ('2', 'm1.small', 2048, 1, 20, strftime('%Y-%m-%dT%H:%M:%SZ','now')),"
    " ('3', 'm1.medium', 4096, 2, 40, strftime('%Y-%m-%dT%H:%M:%SZ','now')),"
    " ('4', 'm1.large', 8192, 4, 80, strftime('%Y-%m-%dT%H:%M:%SZ','now')),"
    " ('5', 'm1.xlarge', 16384, 8, 160, strftime('%Y-%m-%dT%H:%M:%SZ','now'));",
    /* 3: the instance lifecycle: the VMM running an instance (PID + its start time in clock
     * ticks since boot, /proc/<pid>/stat field 22, so a reused PID is never taken for it) and
     * what it boots (kept from the build, so start/reboot do not depend on the image store) */
    "ALTER TABLE servers ADD COLUMN vmm_pid INTEGER;"
    "ALTER TABLE servers ADD COLUMN vmm_start INTEGER;"
    "ALTER TABLE servers ADD COLUMN kernel_id TEXT;"
    "ALTER TABLE servers ADD COLUMN ramdisk_id TEXT;"
    "ALTER TABLE servers ADD COLUMN os_cmdline TEXT;",
    /* 4: networking: a port per server NIC (its order, network, MAC, fixed IPv4 in host order);
     * a MAC is never given twice, nor a fixed IP twice on one network; deleted with the server */
    "CREATE TABLE ports ("
    "  id TEXT PRIMARY KEY,"
    "  server_seq INTEGER NOT NULL REFERENCES servers(seq) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  network_id TEXT NOT NULL,"
    "  network_name TEXT NOT NULL,"
    "  mac TEXT NOT NULL UNIQUE,"
    "  ip INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  UNIQUE (network_id, ip),"
    "  UNIQUE (server_seq, idx));",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
#define MAX_CONN    64

struct kova_db {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned nconn;
    sqlite3 *conn[MAX_CONN];
    unsigned char busy[MAX_CONN];
    int version;
    /* Bumped after every committed write transaction on any of the connections (wal_hook). */
    _Atomic uint64_t generation;
    bool all_wal; /* every connection is in WAL mode, so wal_hook sees every commit */
    /* per connection (used only by its borrower): PRAGMA data_version, which changes when
     * another connection, of this process or another one, committed */
    sqlite3_stmt *dv[MAX_CONN];
    sqlite3_int64 dv_seen[MAX_CONN];
};

/* SQLite's default automatic checkpoint threshold (pages in the WAL), kept by wal_hook. */
#define WAL_AUTOCHECKPOINT 1000

/*
 * Called by SQLite after every commit of a write transaction on a connection in WAL mode, once
 * the new data is visible and the write lock is released, in the committing thread: explicit
 * transactions and autocommit statements alike. A reader that reads the generation before it
 * starts its read transaction therefore sees at least every commit counted in that generation.
 * Registering it replaces SQLite's own auto-checkpoint hook, so it does the checkpoint too.
 */
static int wal_hook(void *arg, sqlite3 *conn, const char *name, int pages)
{
    struct kova_db *db = arg;
    atomic_fetch_add(&db->generation, 1);
    if (pages >= WAL_AUTOCHECKPOINT)
        sqlite3_wal_checkpoint_v2(conn, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

static bool is_wal(sqlite3 *c)
{
    sqlite3_stmt *st = kova_db_prepare(c, "PRAGMA journal_mode");
    bool wal = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
               !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    kova_db_done(st);
    return wal;
}

int kova_db_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    default:
        return -EIO;
    }
}

int kova_db_exec(sqlite3 *conn, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(conn, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "kova-db: %s\n", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return kova_db_errno(rc);
    }
    return 0;
}

sqlite3_stmt *kova_db_prepare(sqlite3 *conn, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "kova-db: prepare failed: %s: %s\n", sqlite3_errmsg(conn), sql);
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

void kova_db_done(sqlite3_stmt *st)
{
    sqlite3_finalize(st);
}

int kova_db_begin(sqlite3 *conn)
{
    return kova_db_exec(conn, "BEGIN IMMEDIATE");
}

int kova_db_commit(sqlite3 *conn)
{
    int r = kova_db_exec(conn, "COMMIT");
    if (r < 0)
        kova_db_rollback(conn);
    return r;
}

void kova_db_rollback(sqlite3 *conn)
{
    if (!sqlite3_get_autocommit(conn))
        sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
}

static int open_conn(struct kova_db *db, const char *path, sqlite3 **out)
{
    sqlite3 *c = NULL;
    int rc = sqlite3_open_v2(
        path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "kova-db: cannot open %s: %s\n", path,
                c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return rc == SQLITE_CANTOPEN ? -EACCES : kova_db_errno(rc);
    }
    sqlite3_busy_timeout(c, 5000);
    int r = kova_db_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                            "PRAGMA foreign_keys=ON;");
    if (r < 0) {
        sqlite3_close(c);
        return r;
    }
    if (!is_wal(c)) {
        fprintf(stderr, "kova-db: %s is not in WAL mode: response caching is off\n", path);
        db->all_wal = false;
    }
    sqlite3_wal_hook(c, wal_hook, db);
    *out = c;
    return 0;
}

static int user_version(sqlite3 *c, int *v)
{
    sqlite3_stmt *st = kova_db_prepare(c, "PRAGMA user_version");
    if (!st)
        return -EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    kova_db_done(st);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

static int migrate(sqlite3 *c, int *version)
{
    int v, r;
    for (;;) {
        /* Read the version inside the write transaction: a second agent on the same file cannot
         * apply the same migration twice. */
        if ((r = kova_db_begin(c)) < 0)
            return r;
        if ((r = user_version(c, &v)) < 0)
            goto fail;
        if (v > NMIGRATIONS) {
            fprintf(stderr, "kova-db: database schema %d is newer than this build (%d)\n", v,
                    NMIGRATIONS);
            r = -EPROTO;
            goto fail;
        }
        if (v == NMIGRATIONS) {
            kova_db_rollback(c);
            *version = v;
            return 0;
        }
        if ((r = kova_db_exec(c, migrations[v])) < 0)
            goto fail;
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
        if ((r = kova_db_exec(c, sql)) < 0)
            goto fail;
        if ((r = kova_db_commit(c)) < 0)
            return r;
    }
fail:
    kova_db_rollback(c);
    return r;
}

int kova_db_open(const char *path, unsigned nconn, struct kova_db **out)
{
    if (!path || !out || nconn == 0 || nconn > MAX_CONN)
        return -EINVAL;
    struct kova_db *db = calloc(1, sizeof(*db));
    if (!db)
        return -ENOMEM;
    int r;
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->cond, NULL);
    db->all_wal = true;
    for (unsigned i = 0; i < nconn; i++) {
        if ((r = open_conn(db, path, &db->conn[i])) < 0)
            goto fail;
        db->nconn = i + 1;
        db->dv_seen[i] = -1;
        if (i == 0 && (r = migrate(db->conn[0], &db->version)) < 0)
            goto fail;
    }
    *out = db;
    return 0;
fail:
    kova_db_close(db);
    return r;
}

void kova_db_close(struct kova_db *db)
{
    if (!db)
        return;
    for (unsigned i = 0; i < db->nconn; i++) {
        sqlite3_finalize(db->dv[i]);
        sqlite3_close(db->conn[i]);
    }
    pthread_cond_destroy(&db->cond);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

sqlite3 *kova_db_acquire(struct kova_db *db)
{
    pthread_mutex_lock(&db->lock);
    for (;;) {
        for (unsigned i = 0; i < db->nconn; i++) {
            if (!db->busy[i]) {
                db->busy[i] = 1;
                pthread_mutex_unlock(&db->lock);
                return db->conn[i];
            }
        }
        pthread_cond_wait(&db->cond, &db->lock);
    }
}

void kova_db_release(struct kova_db *db, sqlite3 *conn)
{
    if (!conn)
        return;
    /* A handler that forgot to finish its transaction must not leak it to the next user. */
    kova_db_rollback(conn);
    pthread_mutex_lock(&db->lock);
    for (unsigned i = 0; i < db->nconn; i++) {
        if (db->conn[i] == conn) {
            db->busy[i] = 0;
            break;
        }
    }
    pthread_cond_signal(&db->cond);
    pthread_mutex_unlock(&db->lock);
}

int kova_db_schema_version(struct kova_db *db)
{
    return db->version;
}

int kova_db_latest_version(void)
{
    return NMIGRATIONS;
}

int kova_db_generation(struct kova_db *db, sqlite3 *conn, uint64_t *out)
{
    if (!db->all_wal)
        return -ENOTSUP;
    unsigned i = 0;
    while (i < db->nconn && db->conn[i] != conn)
        i++;
    if (i == db->nconn || !sqlite3_get_autocommit(conn))
        return -EINVAL;
    /* A commit by another process (sqlite3 by hand) is not seen by wal_hook: the first
     * data_version after it, on each connection, bumps the generation. */
    if (!db->dv[i] && !(db->dv[i] = kova_db_prepare(conn, "PRAGMA data_version")))
        return -EIO;
    int rc = sqlite3_step(db->dv[i]);
    sqlite3_int64 v = sqlite3_column_int64(db->dv[i], 0);
    sqlite3_reset(db->dv[i]);
    if (rc != SQLITE_ROW)
        return kova_db_errno(rc) ? kova_db_errno(rc) : -EIO;
    if (v != db->dv_seen[i]) {
        db->dv_seen[i] = v;
        atomic_fetch_add(&db->generation, 1);
    }
    *out = atomic_load(&db->generation);
    return 0;
}

bool kova_db_idle(sqlite3 *conn)
{
    if (!sqlite3_get_autocommit(conn))
        return false;
    for (sqlite3_stmt *st = sqlite3_next_stmt(conn, NULL); st; st = sqlite3_next_stmt(conn, st))
        if (sqlite3_stmt_busy(st))
            return false;
    return true;
}

/* ---- transactions ---- */

/* One try of fn in a transaction on conn: a savepoint inside a transaction the caller holds, else
 * BEGIN IMMEDIATE ... COMMIT. */
static int txn_once(sqlite3 *conn, int (*fn)(sqlite3 *conn, void *arg), void *arg, bool nested)
{
    int r = kova_db_errno(
        sqlite3_exec(conn, nested ? "SAVEPOINT kova_txn" : "BEGIN IMMEDIATE", NULL, NULL, NULL));
    if (r < 0)
        return r;
    r = fn(conn, arg);
    if (nested) {
        if (r < 0)
            sqlite3_exec(conn, "ROLLBACK TO kova_txn", NULL, NULL, NULL);
        int c = kova_db_exec(conn, "RELEASE kova_txn");
        return r < 0 ? r : c < 0 ? c : r;
    }
    if (r >= 0) {
        int c = kova_db_commit(conn);
        if (c < 0)
            return c;
    }
    if (r < 0)
        kova_db_rollback(conn);
    return r;
}

int kova_db_txn_conn(sqlite3 *conn, int (*fn)(sqlite3 *conn, void *arg), void *arg)
{
    if (!sqlite3_get_autocommit(conn))
        return txn_once(conn, fn, arg, true);
    int r = -EBUSY;
    for (int attempt = 0; attempt < 5 && r == -EBUSY; attempt++) {
        if (attempt)
            nanosleep(&(struct timespec){.tv_nsec = 50000000L * attempt}, NULL);
        r = txn_once(conn, fn, arg, false);
    }
    return r;
}

int kova_db_txn(struct kova_db *db, int (*fn)(sqlite3 *conn, void *arg), void *arg)
{
    sqlite3 *conn = kova_db_acquire(db);
    int r = kova_db_txn_conn(conn, fn, arg);
    kova_db_release(db, conn);
    return r;
}

/* ---- helpers of the typed-access files (internal.h) ---- */

bool db_put(char *b, size_t n, size_t *len, const char *s)
{
    size_t l = strlen(s);
    if (*len + l >= n)
        return false;
    memcpy(b + *len, s, l + 1);
    *len += l;
    return true;
}

int db_sql_order(char *b, size_t n, size_t *len, const char *table, const char *marker_where,
                 const char *const *expr, const bool *desc, int k)
{
    bool ok = true;
    if (marker_where) {
        /* (e1 > m1) OR (e1 = m1 AND e2 > m2) OR ... with < for the descending ones */
        ok = db_put(b, n, len, " AND (");
        for (int i = 0; i < k; i++) {
            ok = ok && db_put(b, n, len, i ? " OR (" : "(");
            for (int j = 0; j <= i; j++)
                ok = ok && db_put(b, n, len, j ? " AND " : "") && db_put(b, n, len, expr[j]) &&
                     db_put(b, n, len,
                            j < i     ? " = "
                            : desc[j] ? " < "
                                      : " > ") &&
                     db_put(b, n, len, "(SELECT ") && db_put(b, n, len, expr[j]) &&
                     db_put(b, n, len, " FROM ") && db_put(b, n, len, table) &&
                     db_put(b, n, len, " WHERE ") && db_put(b, n, len, marker_where) &&
                     db_put(b, n, len, ")");
            ok = ok && db_put(b, n, len, ")");
        }
        ok = ok && db_put(b, n, len, ")");
    }
    ok = ok && db_put(b, n, len, " ORDER BY ");
    for (int i = 0; i < k; i++)
        ok = ok && db_put(b, n, len, i ? ", " : "") && db_put(b, n, len, expr[i]) &&
             db_put(b, n, len, desc[i] ? " DESC" : " ASC");
    return ok ? 0 : -E2BIG;
}

void db_now_iso(char out[32], bool z)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (z)
        snprintf(out, 32, "%.19sZ", base);
    else
        snprintf(out, 32, "%.19s.%06d", base, (int)(ts.tv_nsec / 1000 % 1000000));
}

void db_copy_col(char *dst, size_t len, sqlite3_stmt *st, int c)
{
    const unsigned char *v = sqlite3_column_text(st, c);
    snprintf(dst, len, "%s", v ? (const char *)v : "");
}

/* An error code of sqlite3_step as -errno (-EIO for one kova_db_errno does not map). */
static int step_error(int rc)
{
    int r = kova_db_errno(rc);
    return r ? r : -EIO;
}

/* Binds v[0..n-1] to ?1..?n: 0 or -errno (logged). */
static int bind_vals(sqlite3_stmt *st, const struct db_val *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int k = (int)i + 1, rc = SQLITE_OK;
        switch (v[i].type) {
        case DB_V_TEXT:
            if (v[i].s)
                rc = sqlite3_bind_text(st, k, v[i].s, -1, SQLITE_TRANSIENT);
            break;
        case DB_V_INT:
            rc = sqlite3_bind_int64(st, k, v[i].i);
            break;
        case DB_V_REAL:
            rc = sqlite3_bind_double(st, k, v[i].d);
            break;
        case DB_V_NULL:
            break;
        }
        if (rc != SQLITE_OK) {
            fprintf(stderr, "kova-db: cannot bind ?%d: %s: %s\n", k, sqlite3_errstr(rc),
                    sqlite3_sql(st));
            return step_error(rc);
        }
    }
    return 0;
}

int db_run(sqlite3 *conn, sqlite3_stmt *st, const struct db_val *v, size_t n)
{
    if (!st)
        return -EIO;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int r = bind_vals(st, v, n);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    r = rc == SQLITE_DONE ? sqlite3_changes(conn) : step_error(rc);
    sqlite3_reset(st);
    return r;
}

int db_exec_bound(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n)
{
    sqlite3_stmt *st = kova_db_prepare(conn, sql);
    int r = db_run(conn, st, v, n);
    kova_db_done(st);
    return r;
}

int db_exec_found(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n)
{
    int r = db_exec_bound(conn, sql, v, n);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int db_each(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n, db_row_fn fn,
            void *arg)
{
    sqlite3_stmt *st = kova_db_prepare(conn, sql);
    if (!st)
        return -EIO;
    int rc, r = bind_vals(st, v, n);
    if (r < 0)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((r = fn(st, arg)) != 0)
            goto out;
    if (rc != SQLITE_DONE)
        r = step_error(rc);
out:
    kova_db_done(st);
    return r;
}

/* db_get's reader, run by db_each on the first row only. */
struct get_one {
    db_row_fn read;
    void *dst;
};

static int get_first(sqlite3_stmt *st, void *arg)
{
    const struct get_one *g = arg;
    int r = g->read(st, g->dst);
    return r < 0 ? r : 1;
}

int db_get(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n, db_row_fn read,
           void *dst)
{
    struct get_one g = {read, dst};
    int r = db_each(conn, sql, v, n, get_first, &g);
    return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int db_read_int64(sqlite3_stmt *st, void *dst)
{
    long long *v = dst;
    for (int c = 0; c < sqlite3_column_count(st); c++)
        v[c] = sqlite3_column_int64(st, c);
    return 0;
}

/* What db_collect has gathered so far. */
struct collect {
    const struct db_rows *rows;
    unsigned char *v;
    size_t len, cap;
};

static int collect_row(sqlite3_stmt *st, void *arg)
{
    struct collect *c = arg;
    if (c->len == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        void *nv = realloc(c->v, nc * c->rows->size);
        if (!nv)
            return -ENOMEM;
        c->v = nv;
        c->cap = nc;
    }
    int r = c->rows->read(st, c->v + c->len * c->rows->size);
    if (r < 0)
        return r;
    c->len++;
    return 0;
}

int db_collect(sqlite3 *conn, const char *sql, const struct db_val *v, size_t n,
               const struct db_rows *rows, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct collect c = {rows, NULL, 0, 0};
    int r = db_each(conn, sql, v, n, collect_row, &c);
    if (r < 0)
        goto fail;
    *out = c.v;
    *len = c.len;
    return 0;
fail:
    for (size_t i = 0; rows->drop && i < c.len; i++)
        rows->drop(c.v + i * rows->size);
    free(c.v);
    return r;
}
