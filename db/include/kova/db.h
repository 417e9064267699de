/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova db: the agent's SQLite state (state.db).
 *
 * Contract:
 *  - kova_db_open() creates/opens the database, turns on WAL, a busy timeout and foreign keys on
 *    every connection, and applies the versioned migrations (PRAGMA user_version) each in one
 *    transaction, so a crash never leaves a half-migrated schema.
 *  - The handle is a small pool of connections, safe to share between threads: acquire one for the
 *    duration of a request, release it afterwards.
 *  - Every state change is one statement or one transaction (kova_db_txn/kova_db_txn_conn, or
 *    kova_db_begin()/kova_db_commit(): BEGIN IMMEDIATE), rolled back on any error.
 * Errors: 0 or -errno (-EIO for an SQLite error, logged to stderr).
 */
#ifndef KOVA_DB_H
#define KOVA_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kova_db;

/* Opens (creating if needed) the database at path with nconn pooled connections (1..64). */
int kova_db_open(const char *path, unsigned nconn, struct kova_db **out);
void kova_db_close(struct kova_db *db);

/* Borrows a connection (blocks while all are in use); give it back with kova_db_release. */
sqlite3 *kova_db_acquire(struct kova_db *db);
void kova_db_release(struct kova_db *db, sqlite3 *conn);

/* The schema version the database is at after open (number of applied migrations). */
int kova_db_schema_version(struct kova_db *db);
/* The newest schema version this build knows. */
int kova_db_latest_version(void);

/*
 * A counter bumped after every committed write transaction on any pooled connection (explicit
 * transactions and autocommit statements alike), once the change is visible to new readers,
 * and when conn (a borrowed connection with no transaction open) sees that another process
 * committed. Something derived from the database (a cached response) computed from reads on
 * conn started after the generation was read is current for as long as the generation (read
 * again this way) is unchanged.
 * Returns -ENOTSUP when the database is not in WAL mode (commits are then not seen), -EINVAL
 * when conn is not a pooled connection or is inside a transaction, -EIO, else 0.
 * Nothing may set PRAGMA wal_autocheckpoint or sqlite3_wal_hook on a pooled connection: that
 * would replace the hook that counts.
 */
int kova_db_generation(struct kova_db *db, sqlite3 *conn, uint64_t *out);
/* True when conn has no transaction and no statement open, so that its next read sees every
 * commit made so far (as kova_db_generation wants of a cacheable read). */
bool kova_db_idle(sqlite3 *conn);

/* Transactions on a borrowed connection. begin = BEGIN IMMEDIATE (takes the write lock). */
int kova_db_begin(sqlite3 *conn);
int kova_db_commit(sqlite3 *conn);
void kova_db_rollback(sqlite3 *conn);

/* Runs SQL without results; returns 0 or -EIO. */
int kova_db_exec(sqlite3 *conn, const char *sql);

/* Prepares sql; returns NULL on error (logged). Release with kova_db_done(). */
sqlite3_stmt *kova_db_prepare(sqlite3 *conn, const char *sql);
void kova_db_done(sqlite3_stmt *st);

/* Maps an sqlite result code to -errno: SQLITE_CONSTRAINT → -EEXIST, BUSY/LOCKED → -EBUSY,
 * anything else → -EIO. */
int kova_db_errno(int rc);

/*
 * Runs fn(conn, arg) in one write transaction on a borrowed connection: BEGIN IMMEDIATE, retried
 * on SQLITE_BUSY (another process holds the write lock past the busy timeout) up to 5 times;
 * committed when fn returns >= 0, rolled back otherwise. Returns fn's result or -errno.
 */
int kova_db_txn(struct kova_db *db, int (*fn)(sqlite3 *conn, void *arg), void *arg);
/*
 * The same on a connection the caller holds (a request's). With no transaction open on conn it
 * is kova_db_txn's BEGIN IMMEDIATE, retried on -EBUSY, commit or rollback; inside a transaction
 * the caller opened, fn runs under a savepoint (undone when fn fails), once, and the caller's
 * transaction decides. fn may be run again only after it returned -EBUSY, so it must not act
 * outside the database (reply, unlink) before returning -EBUSY. Returns fn's result or -errno.
 */
int kova_db_txn_conn(sqlite3 *conn, int (*fn)(sqlite3 *conn, void *arg), void *arg);

/*
 * The typed access below: each table has one file in db/ with its SQL (the one list of its
 * columns, the statements), a struct of its row, and these functions. Unless said otherwise:
 * conn is a borrowed connection, inside a transaction or not; a write is one statement or one
 * transaction (kova_db_txn_conn), never half done; text that does not fit a fixed-size member is
 * cut (the API never stores such text); errors are -ENOENT (no such row), -EEXIST (a unique key
 * is taken), -ENOMEM, -EBUSY, -EIO (an SQLite error, logged).
 */

/* ---- typed access: servers.c (servers and their metadata) ---- */

#define KOVA_DB_ID_MAX      64
#define KOVA_DB_NAME_MAX    256 /* names, owners, user ids: up to 255 bytes */
#define KOVA_DB_CMDLINE_MAX 2048

/* The columns the compute manager reads and writes. */
struct kova_db_server {
    char id[KOVA_DB_ID_MAX];
    char vm_state[32];
    char task_state[40]; /* "" when has_task is false */
    bool has_task;
    char image_ref[KOVA_DB_ID_MAX];
    long long vcpus, ram, disk; /* MiB, GiB */
    pid_t vmm_pid;              /* 0: none recorded */
    unsigned long long vmm_start;
    char kernel_id[KOVA_DB_ID_MAX], ramdisk_id[KOVA_DB_ID_MAX]; /* what it boots ("": none) */
    char cmdline[KOVA_DB_CMDLINE_MAX];
    bool config_drive; /* the server has a config drive (its config_drive column is not "") */
};

/* How a task ends (kova_db_server_finish). */
struct kova_db_task_end {
    const char *id;
    const char *task; /* the task_state it ran under: only then is the row changed */
    const char *vm_state;
    int power_state;
    bool vmm_gone;     /* clear the VMM columns */
    bool launched;     /* set launched_at */
    int fault_code;    /* with fault */
    const char *fault; /* NULL: none; else recorded as the server's fault and the event's */
};

/* -ENOENT when there is no such server. */
int kova_db_server_get(sqlite3 *conn, const char *id, struct kova_db_server *out);
/* Every server (malloc'd array in *out, free() it). */
int kova_db_server_list(sqlite3 *conn, struct kova_db_server **out, size_t *n);
/* Sets task_state (NULL clears it) and updated_at. Returns the number of rows changed (0/1). */
int kova_db_server_set_task(sqlite3 *conn, const char *id, const char *task);
/* A build takes its server over: scheduling -> spawning, only while vm_state is building and no
 * delete took it. 1 when it did. */
int kova_db_server_claim_build(sqlite3 *conn, const char *id);
/* Servers a previous agent left with a build or a delete to do (ids in a malloc'd array, del[k]
 * true for a delete); the builds among them are put back to task_state scheduling. */
int kova_db_server_unfinished(sqlite3 *conn, char (**ids)[KOVA_DB_ID_MAX], bool **del, size_t *n);
/* Records (pid > 0) or clears the VMM that runs the server. */
int kova_db_server_set_vmm(sqlite3 *conn, const char *id, pid_t pid, unsigned long long start);
/* Records what the server boots. */
int kova_db_server_set_boot(sqlite3 *conn, const char *id, const char *kernel_id,
                            const char *ramdisk_id, const char *cmdline);
/* In one transaction: the task's end state, the server's fault, and the open instance action
 * (and its events) closed with Success or Error. 1 when the row was the task's, 0 when another
 * task (delete) had taken it over (then only the VMM columns are cleared when vmm_gone). */
int kova_db_server_finish(struct kova_db *db, const struct kova_db_task_end *e);
/* The VMM pid exited by itself: SHUTOFF (vm_state active/paused/suspended become stopped,
 * power_state 4, VMM columns cleared), only while the row still names that pid. 1 when it
 * did. */
int kova_db_server_record_exit(sqlite3 *conn, const char *id, pid_t pid);
/* After an agent restart: the state found, task_state cleared, the VMM columns kept only when
 * alive, a fault (code 500) when fault is not NULL. */
int kova_db_server_reconcile(sqlite3 *conn, const char *id, const char *vm_state, int power_state,
                             bool alive, const char *fault);
/* What the guest gets through its metadata: the create request's key_data (the public key of
 * key_name) and user_data (base64), each malloc'd (free() them) or NULL when none. -ENOENT when
 * there is no such server. */
int kova_db_server_guest_data(sqlite3 *conn, const char *id, char **key_data, char **user_data);
/* Removes the server's row (its metadata and actions go with it). */
int kova_db_server_delete(sqlite3 *conn, const char *id);
/* 1 when a server with this id exists, 0 when not. */
int kova_db_server_exists(sqlite3 *conn, const char *id);

/*
 * The API's view of a server: every column of the row (the same one column list as struct
 * kova_db_server) and its metadata. Text members point at the row's text: NULL when the column
 * is NULL (task_state: no task; key_name, availability_zone, host, launched_at, terminated_at,
 * fault_*: none).
 */
struct kova_db_server_view {
    long long seq; /* creation order: unique, never reused (the instance name's number) */
    const char *id, *name, *project_id, *user_id, *image_ref, *flavor_id;
    const char *vm_state, *task_state;
    int power_state;
    const char *key_name, *availability_zone, *config_drive, *access_ipv4, *access_ipv6,
        *disk_config, *host, *launched_at, *terminated_at;
    bool has_fault; /* fault_code is not NULL */
    int fault_code;
    const char *fault_message, *fault_details, *fault_created;
    const char *created_at, *updated_at;
    long long vcpus, ram, disk;
    const char *metadata;  /* the metadata as a JSON object text ("{}": none), keys in order */
    const char *addresses; /* Nova's addresses object as JSON text ("{}": no ports) */
    char *mem;             /* kova_db_server_view_get: the block the text is in; else NULL */
};

/* The server with this id, when project_id is NULL (an administrator) or it is the server's
 * project. The text is in one malloc'd block: release it with kova_db_server_view_free().
 * -ENOENT when there is no such server (or it is another project's). */
int kova_db_server_view_get(sqlite3 *conn, const char *id, const char *project_id,
                            struct kova_db_server_view *out);
/* Frees what kova_db_server_view_get filled in (not v itself); a zeroed struct is fine. */
void kova_db_server_view_free(struct kova_db_server_view *v);

/* The orders a server list can be sorted in: Nova's sort keys (its server list's sort_key
 * values) that name something kova keeps. kova_db_server_sort_key() maps a name to one. */
#define KOVA_DB_SORT_MAX 8 /* sort keys in one list */
struct kova_db_sort {
    int key;   /* from kova_db_server_sort_key() */
    bool desc; /* descending */
};
/* The sort key Nova calls name (e.g. "created_at", "display_name", "vm_state"), or -EINVAL when
 * name is none of Nova's sort keys. Keys whose value is the same for every server kova keeps
 * (e.g. "launch_index", "locked_by", "progress") are valid and order nothing. */
int kova_db_server_sort_key(const char *name);

struct kova_db_server_filter {
    const char *project_id;            /* NULL: every project's servers */
    const char *image_ref, *flavor_id; /* NULL: any; else only equal ones */
    const char *marker;        /* NULL, or the id of a server of project_id: only those after it */
    const char *changes_since; /* NULL, or "YYYY-MM-DDTHH:MM:SSZ": only servers updated then or
                                  later */
    const struct kova_db_sort *sort; /* nsort keys, most significant first; none: newest first */
    int nsort;                       /* 0..KOVA_DB_SORT_MAX */
};
/*
 * Calls fn for each server that matches f, in f's order (ties, and no order: by creation, in
 * the first key's direction; descending when there is none). A marker continues that order after
 * the marker's server. The view (and its text) is valid during the call only. fn returns 0 to go
 * on, > 0 to stop (then 0 is returned) or -errno to stop with that error. -ENOENT (before any
 * call) when f->marker names no server of f->project_id; -EINVAL for a bad sort key or count.
 */
int kova_db_server_view_each(sqlite3 *conn, const struct kova_db_server_filter *f,
                             int (*fn)(const struct kova_db_server_view *v, void *arg), void *arg);

#define KOVA_DB_META_MAX 256 /* metadata keys and values: up to 255 bytes */

struct kova_db_meta {
    char key[KOVA_DB_META_MAX];
    char value[KOVA_DB_META_MAX];
};

/* What a new server starts with (kova_db_server_create). */
struct kova_db_server_new {
    const char *name; /* count > 1: server k (from 1) is named "<name>-<k>", as Nova does */
    const char *project_id, *user_id, *image_ref, *flavor_id;
    long long vcpus, ram, disk;                  /* the flavor's, copied */
    const char *key_name, *key_data, *user_data; /* NULL: none */
    const char *availability_zone, *config_drive, *access_ipv4, *access_ipv6, *disk_config, *host;
    const struct kova_db_meta *metadata; /* nmeta of them, every server gets them all */
    size_t nmeta;
    /* the request, recorded as the servers' create instance action */
    const char *request_id;
};
/*
 * Adds count servers with the ids ids[0..count-1], in vm_state building, task_state
 * scheduling, power_state 0, created_at = updated_at = now, each with the metadata and a
 * create instance action (start time now, by s->user_id/project_id/request_id) with its event
 * compute__do_build_and_run_instance started; all in one transaction. -EEXIST when an id is
 * taken.
 */
int kova_db_server_create(sqlite3 *conn, const struct kova_db_server_new *s, const char *const *ids,
                          size_t count);

/* What a client may change of a server (kova_db_server_update); NULL: kept as it is. */
struct kova_db_server_edit {
    const char *name, *access_ipv4, *access_ipv6, *disk_config;
};
/* Sets the members of e that are not NULL and updated_at, when project_id is NULL or it is the
 * server's project (one statement). -ENOENT when there is no such server (or another
 * project's). */
int kova_db_server_update(sqlite3 *conn, const char *id, const char *project_id,
                          const struct kova_db_server_edit *e);
/* A rebuild's new image (and name, when not NULL); updated_at is left as it is. -ENOENT when
 * there is no such server. */
int kova_db_server_set_image(sqlite3 *conn, const char *id, const char *image_ref,
                             const char *name);

/* The server's metadata, by key (malloc'd array in *out, free() it; none for a server that does
 * not exist). */
int kova_db_server_meta_list(sqlite3 *conn, const char *id, struct kova_db_meta **out, size_t *n);
/*
 * Sets the n items (added or replaced), after removing every other one first when replace, in
 * one transaction. -ENOENT when there is no such server; -EDQUOT (and nothing changed) when
 * quota >= 0 and the server would then have more than quota items.
 */
int kova_db_server_meta_set(sqlite3 *conn, const char *id, const struct kova_db_meta *v, size_t n,
                            bool replace, long long quota);
/* -ENOENT when the server has no item with this key (or there is no such server). */
int kova_db_server_meta_delete(sqlite3 *conn, const char *id, const char *key);

/* Sums over a set of servers. */
struct kova_db_server_usage {
    long long count, vcpus, ram;
    long long tasks; /* how many of them have a task_state */
};
/* Every server of the project (as the quotas count them). */
int kova_db_server_usage_project(sqlite3 *conn, const char *project_id,
                                 struct kova_db_server_usage *out);
/* The servers of this host that run (power_state 1): the hypervisor's figures. */
int kova_db_server_usage_running(sqlite3 *conn, const char *host, struct kova_db_server_usage *out);

/* ---- typed access: actions.c (instance actions and their events: os-instance-actions) ---- */

/* An instance action: one request that changed a server; newest id = latest. */
struct kova_db_action {
    long long id;
    char action[64];                                              /* "create", "reboot", ... */
    char request_id[KOVA_DB_ID_MAX];                              /* "req-<uuid>" */
    char user_id[KOVA_DB_NAME_MAX], project_id[KOVA_DB_NAME_MAX]; /* who asked */
    char start_time[32], finish_time[32]; /* "2026-11-26T07:11:32.123456"; finish "" while open */
    bool has_finish, has_message;
    char message[KOVA_DB_NAME_MAX]; /* "Error" when it failed; has_message false: none */
};

/* One step of an action (the compute manager's part of it). */
struct kova_db_action_event {
    char event[64];                                   /* "compute_stop_instance", ... */
    char start_time[32], finish_time[32], result[16]; /* result: "Success" or "Error" */
    bool has_finish, has_result;
    char *traceback; /* the error when it failed (malloc'd), else NULL */
};

/* Who starts an action: the request's id and its caller. */
struct kova_db_requester {
    const char *request_id, *user_id, *project_id;
};
/* Records that the request q started action on the server (start time now), with its event
 * started when event is not NULL; in one transaction. -ENOENT when there is no such server. The
 * compute manager closes both when the task ends (kova_db_server_finish). */
int kova_db_action_start(sqlite3 *conn, const char *server_id, const char *action,
                         const char *event, const struct kova_db_requester *q);
/* The server's actions, newest first (malloc'd array, free() it; none for a server that does
 * not exist). */
int kova_db_action_list(sqlite3 *conn, const char *server_id, struct kova_db_action **out,
                        size_t *n);
/* The server's latest action of this request. -ENOENT when there is none. */
int kova_db_action_get(sqlite3 *conn, const char *server_id, const char *request_id,
                       struct kova_db_action *out);
/* The events of an action (by its id), in the order they started (malloc'd array;
 * kova_db_action_events_free). */
int kova_db_action_events(sqlite3 *conn, long long action_id, struct kova_db_action_event **out,
                          size_t *n);
void kova_db_action_events_free(struct kova_db_action_event *v, size_t n);

/* ---- typed access: images.c (the image catalogue: Glance's rows, what compute boots) ---- */

struct kova_db_image {
    char id[KOVA_DB_ID_MAX];
    char name[KOVA_DB_NAME_MAX];
    char owner[KOVA_DB_NAME_MAX]; /* the project that created it */
    char status[32];              /* queued, saving, importing, active, ... */
    char visibility[16];          /* public, private, shared, community */
    char disk_format[32];
    char container_format[32];
    long long size; /* bytes */
    char checksum[40];
    char os_hash_algo[16];
    char os_hash_value[136];
    long long min_disk, min_ram; /* GiB, MiB */
    bool is_protected;
    /* false: the column is NULL (JSON null), the member "" or 0 */
    bool has_name, has_owner, has_disk_format, has_container_format, has_size, has_checksum,
        has_os_hash_algo, has_os_hash_value;
    char created_at[32], updated_at[32]; /* "2026-11-26T07:11:32Z" */
    /* JSON text: the extra properties (an object: kernel_id, ramdisk_id, os_command_line, ...)
     * and the tags (an array). In a struct the db filled they are one malloc'd block that
     * starts at properties: kova_db_image_free() (or free(properties)) releases both. As input
     * they are the caller's (NULL: {} and []). */
    char *properties;
    char *tags;
};

/* Frees what kova_db_image_get* filled in (not im itself); a zeroed struct is fine. */
void kova_db_image_free(struct kova_db_image *im);
/* Frees an array from kova_db_image_list. */
void kova_db_image_list_free(struct kova_db_image *v, size_t n);

/* Any image, visible or not (the compute manager's view). -ENOENT when there is none. */
int kova_db_image_get(sqlite3 *conn, const char *id, struct kova_db_image *out);
/* An image the caller may see: public or community, owned by project_id, or any when is_admin.
 * -ENOENT when there is none or it is not visible. */
int kova_db_image_get_visible(sqlite3 *conn, const char *id, const char *project_id, bool is_admin,
                              struct kova_db_image *out);

/* A comparison of a time column with a time ("YYYY-MM-DDTHH:MM:SSZ"), as Glance's
 * created_at / updated_at filters ("gte:2026-12-03T00:00:00Z"). */
enum kova_db_cmp {
    KOVA_DB_ANY,
    KOVA_DB_EQ,
    KOVA_DB_NEQ,
    KOVA_DB_GT,
    KOVA_DB_GTE,
    KOVA_DB_LT,
    KOVA_DB_LTE
};
struct kova_db_time_cmp {
    enum kova_db_cmp op; /* KOVA_DB_ANY: no filter */
    char at[32];
};
/* The image sort key Glance calls name ("name", "status", "container_format", "disk_format",
 * "size", "id", "created_at", "updated_at"), or -EINVAL. */
int kova_db_image_sort_key(const char *name);

struct kova_db_image_filter {
    const char *project_id; /* what the caller sees, as kova_db_image_get_visible */
    bool is_admin;
    const char *name, *status, *visibility, *owner; /* NULL: any; else only equal ones */
    const char *disk_format, *container_format;     /* NULL: any; else only equal ones */
    bool has_size_min, has_size_max; /* only images with a size in [size_min, size_max] */
    long long size_min, size_max;
    enum { KOVA_DB_PROTECTED_ANY, KOVA_DB_PROTECTED_NO, KOVA_DB_PROTECTED_YES } protected_is;
    struct kova_db_time_cmp created, updated;
    const char *marker; /* NULL, or an image's id (visible or not): only those after it */
    long long limit;    /* at most that many (0: none); < 0: every one */
    const struct kova_db_sort *sort; /* keys from kova_db_image_sort_key; none: newest first */
    int nsort;                       /* 0..KOVA_DB_SORT_MAX */
};
/* The visible images that match f, in f's order (ties by creation in the first key's
 * direction; newest first when there is no key), after the marker's in that order (malloc'd
 * array in *out, n of them; free with kova_db_image_list_free). -ENOENT when f->marker names no
 * image; -EINVAL for a bad sort key, count or comparison. A zeroed filter matches every
 * visible image. */
int kova_db_image_list(sqlite3 *conn, const struct kova_db_image_filter *f,
                       struct kova_db_image **out, size_t *n);

/* Adds an image in status queued: id, name, owner, visibility, disk_format, container_format
 * (with their has_*), min_disk, min_ram, is_protected, properties, tags; created_at and
 * updated_at are set (and filled in *im). -EEXIST when the id is taken. */
int kova_db_image_create(sqlite3 *conn, struct kova_db_image *im);
/* Writes what a client may change: name, visibility, disk_format, container_format (with their
 * has_*), min_disk, min_ram, is_protected, properties, tags; updated_at is set (and filled in).
 * -ENOENT when there is no such image. */
int kova_db_image_update(sqlite3 *conn, struct kova_db_image *im);
/* status from -> to (and updated_at), only while the image is in from: 1 when it was, 0 when
 * not (or there is no such image). */
int kova_db_image_set_status(sqlite3 *conn, const char *id, const char *from, const char *to);
/* Its data is in place: status from -> active with size, checksum (MD5 hex) and os_hash
 * (sha512, hex). -ENOENT when there is no image in status from (deleted meanwhile). */
int kova_db_image_activate(sqlite3 *conn, const char *id, const char *from, long long size,
                           const char *md5, const char *sha512);
/* Removes the row. -ENOENT when there is none. */
int kova_db_image_delete(sqlite3 *conn, const char *id);
/* 1 when an image with this id exists, 0 when not. */
int kova_db_image_exists(sqlite3 *conn, const char *id);
/* After a restart: the images an upload or import left in saving or importing (ids in a
 * malloc'd array, free() it), put back to queued, in one transaction. */
int kova_db_image_reset_unfinished(sqlite3 *conn, char (**ids)[KOVA_DB_ID_MAX], size_t *n);

/* ---- typed access: flavors.c (flavors and their extra specs) ---- */

struct kova_db_flavor {
    char id[KOVA_DB_NAME_MAX];
    char name[KOVA_DB_NAME_MAX];
    long long ram, vcpus, disk, ephemeral, swap; /* MiB, -, GiB, GiB, MiB */
    double rxtx_factor;
    bool is_public, disabled;
};

/* -ENOENT when there is no such flavor. */
int kova_db_flavor_get(sqlite3 *conn, const char *id, struct kova_db_flavor *out);

enum kova_db_flavor_sort {
    KOVA_DB_FLAVOR_BY_ID,
    KOVA_DB_FLAVOR_BY_NAME,
    KOVA_DB_FLAVOR_BY_RAM,
    KOVA_DB_FLAVOR_BY_VCPUS,
    KOVA_DB_FLAVOR_BY_DISK,
    KOVA_DB_FLAVOR_BY_EPHEMERAL,
    KOVA_DB_FLAVOR_BY_SWAP,
    KOVA_DB_FLAVOR_BY_RXTX_FACTOR,
};
struct kova_db_flavor_filter {
    int is_public;                 /* 1 or 0: only public or only private ones; -1: both */
    long long min_ram, min_disk;   /* ram >= min_ram, disk >= min_disk */
    enum kova_db_flavor_sort sort; /* then by id, both in the same direction */
    bool desc;
    const char *marker; /* NULL, or the id of a matching flavor: the page starts after it */
    long long limit;    /* at most that many (0: none); < 0: every one */
};
/* The flavors that match f, in f's order (malloc'd array in *out, free() it). -ENOENT when
 * f->marker is not among the matching flavors. */
int kova_db_flavor_list(sqlite3 *conn, const struct kova_db_flavor_filter *f,
                        struct kova_db_flavor **out, size_t *n);
/* Adds the flavor (every member but disabled, which starts false), in one transaction:
 * -EEXIST when its id is taken, else -ENOTUNIQ when its name is. */
int kova_db_flavor_create(sqlite3 *conn, const struct kova_db_flavor *f);
/* Removes the flavor and its extra specs. -ENOENT when there is no such flavor. */
int kova_db_flavor_delete(sqlite3 *conn, const char *id);

#define KOVA_DB_SPEC_MAX 256 /* extra spec keys and values: up to 255 bytes */

struct kova_db_spec {
    char key[KOVA_DB_SPEC_MAX];
    char value[KOVA_DB_SPEC_MAX];
};
/* A flavor's extra specs, by key (malloc'd array in *out, free() it; none for a flavor that
 * does not exist). */
int kova_db_flavor_specs(sqlite3 *conn, const char *flavor_id, struct kova_db_spec **out,
                         size_t *n);
/* One extra spec (out->key and out->value). -ENOENT when the flavor has no such key. */
int kova_db_flavor_spec_get(sqlite3 *conn, const char *flavor_id, const char *key,
                            struct kova_db_spec *out);
/* Sets the n specs (added or replaced), in one transaction. -ENOENT when there is no such
 * flavor. */
int kova_db_flavor_specs_set(sqlite3 *conn, const char *flavor_id, const struct kova_db_spec *v,
                             size_t n);
/* -ENOENT when the flavor has no such key. */
int kova_db_flavor_spec_delete(sqlite3 *conn, const char *flavor_id, const char *key);

/* ---- typed access: keypairs.c (ssh keys; a keypair belongs to a user) ---- */

struct kova_db_keypair {
    long long id;
    char user_id[KOVA_DB_NAME_MAX];
    char name[KOVA_DB_NAME_MAX];
    char type[16];        /* "ssh" */
    char fingerprint[48]; /* MD5, colon-separated hex */
    char created_at[32];  /* "2026-11-26T07:11:32.123456" */
    char *public_key;     /* an OpenSSH line; malloc'd when the db filled it in */
};

/* Frees what kova_db_keypair_get/list filled in (not k itself). */
void kova_db_keypair_free(struct kova_db_keypair *k);
/* Frees an array from kova_db_keypair_list. */
void kova_db_keypair_list_free(struct kova_db_keypair *v, size_t n);

/* The user's keypair of that name. -ENOENT when there is none. */
int kova_db_keypair_get(sqlite3 *conn, const char *user_id, const char *name,
                        struct kova_db_keypair *out);
/* The user's keypairs, by name (malloc'd array; kova_db_keypair_list_free). */
int kova_db_keypair_list(sqlite3 *conn, const char *user_id, struct kova_db_keypair **out,
                         size_t *n);
/* Adds k (user_id, name, type, public_key, fingerprint) in one transaction; id and created_at
 * are set and filled in. -EEXIST when the user has a keypair of that name, else -EDQUOT when
 * quota >= 0 and the user has quota keypairs already. */
int kova_db_keypair_create(sqlite3 *conn, struct kova_db_keypair *k, long long quota);
/* -ENOENT when the user has no keypair of that name. */
int kova_db_keypair_delete(sqlite3 *conn, const char *user_id, const char *name);

/* ---- typed access: ports.c (a server's NICs on kova's networks) ---- */

#define KOVA_DB_PORTS_MAX 8 /* NICs per server (kova-vmm's --net limit) */

struct kova_db_port {
    char id[KOVA_DB_ID_MAX];
    char server_id[KOVA_DB_ID_MAX];
    char server_name[KOVA_DB_NAME_MAX]; /* read only: the server's name */
    int idx;                            /* the NIC's order: eth0, eth1 ... */
    char network_id[KOVA_DB_ID_MAX];
    char network_name[KOVA_DB_NAME_MAX]; /* the network's name when the port was made */
    char mac[18];
    uint32_t ip; /* IPv4, host byte order */
    char created_at[32];
};

/* Adds p (every member but server_name and created_at, which is set) to server p->server_id.
 * -ENOENT when there is no such server, -EEXIST when its id, its MAC, the server's NIC index or
 * (network, ip) is taken. Run it in the transaction that checked the IP (kova_db_port_ip_owner). */
int kova_db_port_add(sqlite3 *conn, const struct kova_db_port *p);
/* The server that holds ip on the network, into owner (KOVA_DB_ID_MAX bytes): 1 when one does, 0
 * when the address is free. */
int kova_db_port_ip_owner(sqlite3 *conn, const char *network_id, uint32_t ip, char *owner);
/* The one server that holds ip on any network, into server_id (KOVA_DB_ID_MAX bytes): 1 when
 * exactly one does; 0 when none does or when two networks' servers share it (overlapping CIDRs:
 * the metadata service then answers nobody rather than the wrong one). */
int kova_db_port_by_ip(sqlite3 *conn, uint32_t ip, char *server_id);
/* Every fixed IP taken on the network (malloc'd array, free() it; NULL and 0 when none). */
int kova_db_port_ips(sqlite3 *conn, const char *network_id, uint32_t **out, size_t *n);
/* The server's ports in NIC order (server_id NULL: every server's, by server then NIC; malloc'd
 * array, free() it). */
int kova_db_port_list(sqlite3 *conn, const char *server_id, struct kova_db_port **out, size_t *n);
/* The port with this id of server_id. -ENOENT when it has none. */
int kova_db_port_get(sqlite3 *conn, const char *server_id, const char *port_id,
                     struct kova_db_port *out);

#endif
