/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the api/ files: request context, route table, reply helpers. */
#ifndef KOVA_API_INTERNAL_H
#define KOVA_API_INTERNAL_H

#include "kova/api.h"
#include "kova/common.h"
#include "kova/compute.h"
#include "kova/db.h"
#include "kova/keystone.h"
#include "fetch_filter.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define KOVA_MV_MIN 1 /* 2.1 */
#define KOVA_MV_MAX 1 /* 2.1: nothing newer is claimed until its changes are true */

enum kova_service { SVC_COMPUTE = 1, SVC_IMAGE = 2 };

struct kova_cache;

struct kova_api {
    struct kova_api_config cfg;
    char *listen_host, *image_host, *state_dir, *auth_strategy, *host_name, *az, *www_auth_uri;
    char images_dir[4096];
    struct kova_db *db;
    struct kova_compute *manager; /* the compute manager: server tasks (not owned) */
    struct MHD_Daemon *compute, *image;
    time_t started;
    struct kova_cache *list_cache; /* rendered server lists (util.c); NULL: caching is off */
    struct fetch_filter fetch;     /* where web-download may connect (fetch_filter.h) */
    _Atomic bool stopping;         /* set by kova_api_quiesce: long tasks give up */
};

struct kova_auth {
    char user_id[256];
    char project_id[256];
    unsigned roles; /* KOVA_ROLE_* (kova/keystone.h), inheritance applied */
    bool is_admin;  /* roles & KOVA_ROLE_ADMIN */
};

struct kova_req;
struct sbuf;
typedef void (*kova_handler)(struct kova_req *r);

enum route_flags {
    ROUTE_UPLOAD = 2, /* body is streamed to upload_* callbacks instead of buffered */
};

/*
 * ---- policy.c: Nova's default policy (2023.1 and later), as one table of rules ----
 * Every route names one rule; kova_api_start() refuses a route table row without one. The roles
 * come from the token (Keystone) or from noauth2 (the user "admin" is admin, anyone else a
 * member), with Keystone's bootstrap inheritance: admin implies member implies reader. Project
 * scope is the handlers' part: a server of another project is not found (404), as in Nova.
 */
enum kova_rule {
    RULE_UNSET = 0, /* not a rule: a route without one is a bug */
    RULE_PUBLIC,    /* no token: version discovery, the noauth2 identity endpoint */
    RULE_ANY,       /* any authenticated caller ("@"): flavors, limits, one's own keypairs */
    RULE_READER,    /* project_reader_or_admin: list and show */
    RULE_MEMBER,    /* project_member_or_admin: create, change, delete, actions */
    RULE_ADMIN,     /* admin_api: flavor management, hypervisors, aggregates, services */
};
struct kova_auth;
/* Whether a caller with these credentials passes rule (RULE_PUBLIC: always). */
bool kova_policy_allows(enum kova_rule rule, const struct kova_auth *a);
/* The rule's name as Nova's policy file writes it ("project_member_or_admin"). */
const char *kova_policy_name(enum kova_rule rule);

struct kova_route {
    int service;
    const char *method;
    const char *pattern; /* "/servers/ * /action" with '*' segments captured into r->arg[] */
    kova_handler handler;
    int flags;           /* route_flags, plus ROUTE_VARIANT(n) */
    enum kova_rule rule; /* who may call it (policy.c) */
};

/* For a handler serving several routes: which one this is (values the handler defines, < 256). */
#define ROUTE_VARIANT(n) ((n) << 8)
#define route_variant(r) ((r)->route->flags >> 8)

#define KOVA_MAX_ARGS 4

struct kova_req {
    struct kova_api *api;
    struct MHD_Connection *conn;
    int service;
    const char *method;
    const char *url;
    char *path;         /* normalised: version prefix removed (compute), no trailing '/' */
    int version_prefix; /* compute: 0 none, 20 "/v2", 21 "/v2.1" */
    const struct kova_route *route;
    char *arg[KOVA_MAX_ARGS];
    int nargs;
    int mv; /* microversion minor: 2.mv */
    struct kova_auth auth;
    char request_id[48];
    char base_url[300]; /* "http://host:port" from the Host header */
    sqlite3 *db;

    /* request body (buffered routes) */
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;

    /* streamed upload state (ROUTE_UPLOAD) */
    void *upload; /* cleared by the handler that completes it */

    /* response */
    bool replied;
    struct kova_centry *centry; /* a shared cached body to send instead of resp (a reference) */
    int status;
    char *resp;
    size_t resp_len;
    int resp_fd; /* a file to send instead of resp (-1: none); closed by the reply */
    const char *ctype;
    char location[512];
    char *subject_token;   /* identity: X-Subject-Token of an issued token */
    bool www_authenticate; /* a 401 that names Keystone (WWW-Authenticate) */
    bool close;            /* answer before the body and close the connection */
};

/* ---- reply helpers (http.c) ---- */
/* Replies with obj serialised (steals the reference). */
void reply_json(struct kova_req *r, int status, json_t *obj);
void reply_empty(struct kova_req *r, int status);
/* Nova fault body {"<name>": {"code": status, "message": msg}}. */
void reply_fault(struct kova_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void set_location(struct kova_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *req_header(struct kova_req *r, const char *name);
const char *req_query(struct kova_req *r, const char *name);
/* Every value of the query argument name (a repeated one, e.g. sort_key=a&sort_key=b), in order,
 * into out[0..max-1]; returns how many there are (more than max: only max are stored). A name
 * given without a value ("?sort_key") counts as "". */
int req_query_all(struct kova_req *r, const char *name, const char **out, int max);
/* Appends the request's query arguments, percent-encoded, each followed by '&', except those
 * named in skip (NULL-terminated): for "next" links that keep the caller's filters. */
void req_query_copy(struct kova_req *r, const char *const *skip, struct sbuf *out);
/* Appends to key a byte string naming everything a GET's reply can depend on besides the
 * database: what (the handler's name), the caller's project and admin flag, the microversion,
 * the base URL (links), and every query argument in order. false when it would be unusually
 * long (then do not cache). */
bool req_cache_key(struct kova_req *r, const char *what, struct sbuf *key);
/* Parses the body as a JSON object; replies 400 and returns NULL when it is not one. */
json_t *req_json(struct kova_req *r);
/* Returns body[key] if it is an object; replies 400 (and returns NULL) otherwise. */
json_t *req_json_root(struct kova_req *r, json_t *body, const char *key);
/* Replies 400 and returns false when obj holds a key not in allowed (NULL-terminated). */
bool check_keys(struct kova_req *r, json_t *obj, const char *const *allowed, const char *what);
/* limit/marker query parsing: returns false (after replying 400) on bad input. */
bool req_limit(struct kova_req *r, int *limit);
/* "http://<host the client used>:<image port>" */
void image_base_url(struct kova_req *r, char *out, size_t n);
/* A DB failure: logs it and replies 500 computeFault. */
void reply_db_error(struct kova_req *r, int err);
/* After a list query that returned e: false when e >= 0; otherwise replies (400 with the fault
 * text marker_fmt, formatted with the marker, for -ENOENT, an unknown marker; 500 for the rest)
 * and returns true. */
bool reply_list_failed(struct kova_req *r, int e, const char *marker_fmt, const char *marker)
    __attribute__((format(printf, 3, 0)));
/* The variant of the list routes that share a handler: GET /x and GET /x/detail. */
enum { LIST_BRIEF, LIST_DETAIL };
struct kova_centry;
/* Replies with a cached entry's body as JSON (takes the reference); sent gzip-encoded when the
 * client accepts it, with Vary: Accept-Encoding either way. */
void reply_centry(struct kova_req *r, int status, struct kova_centry *e);
/* Whether an Accept-Encoding value (NULL: none) accepts gzip (RFC 9110 §12.5.3). */
bool accepts_gzip(const char *accept_encoding);

/* ---- util.c: a growing string buffer for JSON rendered without building a tree ---- */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};
/* Makes room for more bytes and a NUL; false (and b->oom) when out of memory. */
bool sb_grow(struct sbuf *b, size_t more);
/* Inline: appending a literal costs a memcpy of a constant size (list replies append ~80
 * pieces per server). */
static inline void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap && !sb_grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static inline void sb_put(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}
/* Appends s as a JSON string literal (quoted, escaped); NULL gives null. */
void sb_str(struct sbuf *b, const char *s);
/* The same for the n bytes at s. */
void sb_strn(struct sbuf *b, const char *s, size_t n);
/* Appends s escaped for the inside of a JSON string literal. */
void sb_esc(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replies with the buffer's JSON text (takes it over; 500 if it ran out of memory). */
void reply_sbuf(struct kova_req *r, int status, struct sbuf *b);

/*
 * ---- util.c: a cache of rendered response bodies ----
 * Entries are keyed by an opaque byte string that must hold everything the body depends on
 * besides the database, and tagged with the database generation (kova_db_generation) read
 * before the body's first read: an entry is only found while the generation is unchanged.
 * Bounded in entries and bytes (least recently used first out). Entries are reference counted:
 * a reply keeps its body alive after it left the cache. Thread-safe.
 */
int kova_cache_new(size_t max_bytes, unsigned max_entries, struct kova_cache **out);
void kova_cache_free(struct kova_cache *c);
/* Returns a reference to the entry for key at generation gen, or NULL. */
struct kova_centry *kova_cache_get(struct kova_cache *c, const void *key, size_t klen,
                                   uint64_t gen);
/* Makes an entry of body (taken over: freed on failure too) and adds it to the cache unless key
 * is NULL, the database moved past gen meanwhile (cur) or it is over the bounds. Returns a
 * reference to the entry (which need not be in the cache), or NULL when out of memory. */
struct kova_centry *kova_cache_put(struct kova_cache *c, const void *key, size_t klen, uint64_t gen,
                                   uint64_t cur, char *body, size_t len);
/* The identity body, or its gzip encoding (made on first use; -ENOMEM, -EIO on failure). */
void kova_centry_body(struct kova_centry *e, const char **data, size_t *len);
int kova_centry_gzip(struct kova_cache *c, struct kova_centry *e, const char **data, size_t *len);
void kova_centry_ref(struct kova_centry *e);
void kova_centry_unref(struct kova_centry *e);

/* ---- util.c ---- */
/* Strict integer parsing of a decimal string (optional sign); false when not an integer. */
bool kova_parse_int(const char *s, long long *out);
/* Accepts a JSON integer or a string of decimal digits (a leading '-' only when min < 0; no
 * '+', no spaces, as Nova's schemas) in [min, max]. */
bool json_as_int(json_t *v, long long min, long long max, long long *out);
/* String of 1..maxlen bytes without control characters, leading or trailing spaces. */
bool valid_name(const char *s, size_t maxlen);
json_t *json_str_or_null(const char *s);
json_t *link_list(struct kova_req *r, const char *path_fmt, const char *id);

/* ---- auth.c: one small interface over the strategies (noauth2, keystone) ---- */
/* Fills r->auth from the request's X-Auth-Token; returns 0, -EACCES (no valid token: 401) or
 * -EHOSTUNREACH (Keystone could not answer: 503). */
int kova_authenticate(struct kova_req *r);

/* ---- route tables, one per resource file ---- */
extern const struct kova_route kova_version_routes[];
extern const struct kova_route kova_flavor_routes[];
extern const struct kova_route kova_keypair_routes[];
extern const struct kova_route kova_server_routes[];
extern const struct kova_route kova_image_routes[];
extern const struct kova_route kova_host_routes[];
extern const struct kova_route kova_network_routes[];

/* ---- networks.c: a create's `networks`, /os-networks, os-interface ---- */
struct kova_net_def;
struct net_nic_request {
    const struct kova_net_def *net;
    uint32_t ip; /* with has_ip: the fixed IP asked for (usable on net) */
    bool has_ip;
};
struct net_request {
    unsigned n; /* NICs, in order */
    struct net_nic_request nic[KOVA_DB_PORTS_MAX];
};
/* A create's `networks` (v NULL: not given) into *out: "none", "auto" (and not given: the only
 * network, none when there is none, 409 when there are several), or [{"uuid", "fixed_ip"}].
 * false after replying 400/409. */
bool net_request_parse(struct kova_req *r, json_t *v, long long max_count, struct net_request *out);
/* In the create's transaction: the ports of server_id for nr. Replies 409 itself for a fixed IP
 * in use or a network without free addresses (then -ECANCELED); else 0 or a database error. */
int net_ports_create(struct kova_req *r, sqlite3 *conn, const struct net_request *nr,
                     const char *server_id);
/* After a commit that added or removed ports: tells the agent (DHCP leases). */
void net_ports_changed(struct kova_api *api);
/* servers.c: the server with this id as the caller may see it (load_server); false after
 * replying 404 (or 500). */
bool server_visible(struct kova_req *r, sqlite3 *conn, const char *id,
                    struct kova_db_server_view *v);
extern const struct kova_route kova_identity_routes[];

/* versions.c */
void versions_reply_root(struct kova_req *r);

/* images.c: upload streaming */
int image_upload_begin(struct kova_req *r);
int image_upload_chunk(struct kova_req *r, const char *data, size_t len);
void image_upload_abort(struct kova_req *r);
int images_recover(struct kova_api *api);

#endif
