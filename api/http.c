/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP front: libmicrohttpd listeners, routing, microversions, request ids, reply helpers. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static const struct kova_route *const route_tables[] = {
    kova_version_routes, kova_flavor_routes, kova_keypair_routes,  kova_server_routes,
    kova_image_routes,   kova_host_routes,   kova_identity_routes, kova_network_routes,
};

const char *kova_api_min_version(void)
{
    return "2.1";
}

const char *kova_api_max_version(void)
{
    return "2.1";
}

/* ---------------------------------------------------------------- reply helpers */

static const char *fault_name(int status)
{
    switch (status) {
    case 400:
        return "badRequest";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "itemNotFound";
    case 405:
        return "badMethod";
    case 409:
        return "conflictingRequest";
    case 413:
        return "overLimit";
    case 415:
        return "badMediaType";
    case 414:
    case 429:
    case 431:
        return "overLimit";
    case 501:
        return "notImplemented";
    case 503:
        return "serviceUnavailable";
    default:
        return "computeFault";
    }
}

static const char *status_title(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request-URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    default:
        return "Internal Server Error";
    }
}

void reply_json(struct kova_req *r, int status, json_t *obj)
{
    if (r->replied) {
        json_decref(obj);
        return;
    }
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        r->status = 500;
        r->resp = strdup("{\"computeFault\": {\"code\": 500, \"message\": \"out of memory\"}}");
        r->resp_len = r->resp ? strlen(r->resp) : 0;
    } else {
        r->status = status;
        r->resp = s;
        r->resp_len = strlen(s);
    }
    r->ctype = "application/json";
    r->replied = true;
}

void reply_sbuf(struct kova_req *r, int status, struct sbuf *b)
{
    if (r->replied || b->oom || !b->p) {
        free(b->p);
        b->p = NULL;
        if (!r->replied)
            reply_fault(r, 500, "out of memory");
        return;
    }
    r->status = status;
    r->resp = b->p;
    r->resp_len = b->len;
    r->ctype = "application/json";
    r->replied = true;
    b->p = NULL;
}

void reply_centry(struct kova_req *r, int status, struct kova_centry *e)
{
    if (r->replied) {
        kova_centry_unref(e);
        return;
    }
    r->status = status;
    r->centry = e;
    r->ctype = "application/json";
    r->replied = true;
}

/* An RFC 9110 qvalue: 1 when positive, 0 when zero, -1 when malformed. */
static int qvalue(const char *p, const char *end)
{
    if (p < end && (*p == '0' || *p == '1')) {
        bool one = *p++ == '1', nonzero = one;
        if (p < end && *p == '.') {
            p++;
            for (int i = 0; i < 3 && p < end && *p >= '0' && *p <= '9'; i++, p++) {
                if (*p != '0' && one)
                    return -1;
                nonzero |= *p != '0';
            }
        }
        return p == end ? nonzero : -1;
    }
    return -1;
}

static bool token_is(const char *p, const char *end, const char *tok)
{
    size_t n = strlen(tok);
    return (size_t)(end - p) == n && strncasecmp(p, tok, n) == 0;
}

bool accepts_gzip(const char *h)
{
    bool gzip_named = false, gzip_ok = false, any_ok = false;
    while (h && *h) {
        const char *e = strchr(h, ',');
        if (!e)
            e = h + strlen(h);
        /* coding [OWS ";" OWS "q=" qvalue], other parameters ignored */
        const char *p = h, *semi = memchr(h, ';', (size_t)(e - h));
        const char *tend = semi ? semi : e;
        while (p < tend && (*p == ' ' || *p == '\t'))
            p++;
        while (tend > p && (tend[-1] == ' ' || tend[-1] == '\t'))
            tend--;
        int q = 1;
        for (const char *a = semi; a && a < e;) {
            a++;
            const char *ae = memchr(a, ';', (size_t)(e - a));
            if (!ae)
                ae = e;
            while (a < ae && (*a == ' ' || *a == '\t'))
                a++;
            const char *ve = ae;
            while (ve > a && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (ve - a >= 2 && (a[0] == 'q' || a[0] == 'Q') && a[1] == '=')
                q = qvalue(a + 2, ve);
            a = ae;
        }
        if (token_is(p, tend, "gzip") || token_is(p, tend, "x-gzip")) {
            gzip_named = true;
            gzip_ok |= q > 0;
        } else if (token_is(p, tend, "*")) {
            any_ok |= q > 0;
        }
        h = *e ? e + 1 : e;
    }
    return gzip_named ? gzip_ok : any_ok;
}

static void centry_free_cb(void *cls)
{
    kova_centry_unref(cls);
}

void reply_empty(struct kova_req *r, int status)
{
    if (r->replied)
        return;
    r->status = status;
    r->replied = true;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if there is none there. */
static int utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n = s[0] >= 0xf5 ? 0 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)))
        return 0; /* overlong, or a surrogate */
    if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)))
        return 0; /* overlong, or past U+10FFFF */
    return n;
}

/* Makes s valid UTF-8 in place (each byte of an invalid sequence becomes '?'): a message may
 * quote what the client sent (an id from the path, a method), and JSON holds only UTF-8. */
static void utf8_clean(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p;) {
        int n = utf8_seq(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

void reply_fault(struct kova_req *r, int status, const char *fmt, ...)
{
    if (r->replied)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    utf8_clean(msg);
    json_t *o;
    if (r->service == SVC_IMAGE) {
        /* Glance's error body */
        char code[64];
        snprintf(code, sizeof(code), "%d %s", status, status_title(status));
        o = json_pack("{s:s, s:s, s:s}", "message", msg, "code", code, "title",
                      status_title(status));
    } else {
        o = json_pack("{s:{s:i, s:s}}", fault_name(status), "code", status, "message", msg);
    }
    reply_json(r, status, o);
    if (status >= 500)
        kova_log(0, "%s %s -> %d: %s", r->method, r->url, status, msg);
}

void reply_db_error(struct kova_req *r, int err)
{
    reply_fault(r, 500, "Internal state error (%s)", strerror(err < 0 ? -err : err));
}

bool reply_list_failed(struct kova_req *r, int e, const char *marker_fmt, const char *marker)
{
    if (e >= 0)
        return false;
    if (e == -ENOENT)
        reply_fault(r, 400, marker_fmt, marker);
    else
        reply_db_error(r, -EIO);
    return true;
}

void set_location(struct kova_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->location, sizeof(r->location), fmt, ap);
    va_end(ap);
}

const char *req_header(struct kova_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_query(struct kova_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_all {
    const char *name, **out;
    int max, n;
};

static enum MHD_Result query_all_arg(void *cls, enum MHD_ValueKind kind, const char *k,
                                     const char *v)
{
    (void)kind;
    struct query_all *q = cls;
    if (k && !strcmp(k, q->name)) {
        if (q->n < q->max)
            q->out[q->n] = v ? v : "";
        q->n++;
    }
    return MHD_YES;
}

int req_query_all(struct kova_req *r, const char *name, const char **out, int max)
{
    struct query_all q = {name, out, max, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_all_arg, &q);
    return q.n;
}

#define CACHE_KEY_MAX 4096

/* Percent-encodes s for a query string: RFC 3986 unreserved characters stay as they are. */
static void sb_urlenc(struct sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            sb_putn(b, (const char *)c, 1);
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            sb_putn(b, e, 3);
        }
    }
}

struct query_copy {
    struct sbuf *out;
    const char *const *skip;
};

static enum MHD_Result copy_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    struct query_copy *q = cls;
    for (const char *const *s = q->skip; *s; s++)
        if (!strcmp(*s, k))
            return MHD_YES;
    sb_urlenc(q->out, k);
    if (v) {
        sb_put(q->out, "=");
        sb_urlenc(q->out, v);
    }
    sb_put(q->out, "&");
    return MHD_YES;
}

void req_query_copy(struct kova_req *r, const char *const *skip, struct sbuf *out)
{
    struct query_copy q = {out, skip};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, copy_arg, &q);
}

static void key_part(struct sbuf *key, char tag, const char *s)
{
    if (!s) {
        sb_printf(key, "%c-", tag);
        return;
    }
    size_t n = strlen(s);
    sb_printf(key, "%c%zu:", tag, n);
    sb_putn(key, s, n);
}

static enum MHD_Result key_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    struct sbuf *key = cls;
    key_part(key, 'k', k);
    key_part(key, 'v', v);
    return key->len > CACHE_KEY_MAX ? MHD_NO : MHD_YES;
}

bool req_cache_key(struct kova_req *r, const char *what, struct sbuf *key)
{
    key_part(key, 'w', what);
    sb_printf(key, "m%d a%d", r->mv, r->auth.is_admin ? 1 : 0);
    key_part(key, 'p', r->auth.project_id);
    key_part(key, 'b', r->base_url);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, key_arg, key);
    return !key->oom && key->len <= CACHE_KEY_MAX;
}

json_t *req_json(struct kova_req *r)
{
    if (!r->body || r->body_len == 0) {
        reply_fault(r, 400, "The request body is empty; a JSON object is required.");
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        reply_fault(r, 400, "Malformed request body: %s", err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_fault(r, 400, "Malformed request body: a JSON object is required.");
        return NULL;
    }
    return j;
}

json_t *req_json_root(struct kova_req *r, json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    if (!v || !json_is_object(v)) {
        reply_fault(r, 400, "Invalid input: '%s' is a required object.", key);
        return NULL;
    }
    return v;
}

bool check_keys(struct kova_req *r, json_t *obj, const char *const *allowed, const char *what)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(*a, k) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            reply_fault(r, 400,
                        "Invalid input for field/attribute %s. Additional properties are not "
                        "allowed ('%.200s' was unexpected)",
                        what, k);
            return false;
        }
    }
    return true;
}

/* Whether s is one or more decimal digits and nothing else (no sign, no space). */
static bool all_digits(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

struct limit_arg {
    const char *last; /* the last value of limit */
    bool bad;         /* some value is not digits */
};

static enum MHD_Result limit_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    struct limit_arg *l = cls;
    if (k && !strcmp(k, "limit")) {
        l->bad |= !all_digits(v);
        l->last = v;
    }
    return MHD_YES;
}

bool req_limit(struct kova_req *r, int *limit)
{
    *limit = r->api->cfg.max_limit;
    /* Nova checks every value of a repeated limit (multi_params of ^[0-9]+$) and uses the last;
     * one too large for a number is the maximum, as Python's int has no upper end */
    struct limit_arg l = {NULL, false};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, limit_arg, &l);
    if (l.bad) {
        reply_fault(r, 400, "limit param must be an integer >= 0");
        return false;
    }
    long long v;
    if (l.last && kova_parse_int(l.last, &v) && v < *limit)
        *limit = (int)v;
    return true;
}

/* ---------------------------------------------------------------- routing */

static int split_path(char *p, char **segs, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(p, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        segs[n++] = s;
    }
    return n;
}

#define MAX_SEGS 12

/* Bounds of the cache of rendered server lists: a 1000-server /servers/detail is ~1.4 MB. */
#define LIST_CACHE_BYTES   ((size_t)64 << 20)
#define LIST_CACHE_ENTRIES 32

/* Finds the route for (service, method, path). Returns it, or NULL with *path_known telling
 * whether some route had that path under another method (405). */
static const struct kova_route *match_route(struct kova_req *r, bool *path_known)
{
    char *copy = strdup(r->path);
    if (!copy)
        return NULL;
    char *segs[MAX_SEGS];
    int n = split_path(copy, segs, MAX_SEGS);
    const struct kova_route *found = NULL;
    *path_known = false;
    for (size_t t = 0; n >= 0 && !found && t < sizeof(route_tables) / sizeof(route_tables[0]);
         t++) {
        if (route_tables[t] == kova_identity_routes && r->api->cfg.keystone)
            continue; /* the noauth identity endpoint exists only with noauth2 */
        for (const struct kova_route *rt = route_tables[t]; rt->pattern; rt++) {
            if (rt->service != r->service)
                continue;
            char pat[256];
            snprintf(pat, sizeof(pat), "%s", rt->pattern);
            char *psegs[MAX_SEGS];
            int pn = split_path(pat, psegs, MAX_SEGS);
            if (pn != n)
                continue;
            bool ok = true;
            int na = 0;
            for (int i = 0; i < n && ok; i++) {
                if (strcmp(psegs[i], "*") == 0)
                    na++;
                else if (strcmp(psegs[i], segs[i]) != 0)
                    ok = false;
            }
            if (!ok || na > KOVA_MAX_ARGS)
                continue;
            if (strcmp(rt->method, r->method) != 0) {
                *path_known = true;
                continue;
            }
            r->nargs = 0;
            for (int i = 0; i < n; i++) {
                if (strcmp(psegs[i], "*") == 0)
                    r->arg[r->nargs++] = strdup(segs[i]);
            }
            for (int i = 0; i < r->nargs; i++) {
                if (!r->arg[i]) {
                    free(copy);
                    return NULL;
                }
            }
            found = rt;
            break;
        }
    }
    free(copy);
    return found;
}

/* Compute paths: "/v2.1/..." (or the legacy "/v2/...") → "/..."; version documents are matched
 * by their own routes ("/", "/v2.1", "/v2"). */
static int normalise_path(struct kova_req *r)
{
    const char *u = r->url;
    size_t len = strlen(u);
    if (len > 2048)
        return -ENAMETOOLONG; /* Nova (eventlet's wsgi): 414 */
    if (len == 0 || u[0] != '/')
        return -EINVAL;
    char *p = strdup(u);
    if (!p)
        return -ENOMEM;
    if (r->service == SVC_COMPUTE) {
        const char *rest = NULL;
        if (strncmp(p, "/v2.1", 5) == 0 && (p[5] == '/' || p[5] == 0)) {
            r->version_prefix = 21;
            rest = p + 5;
        } else if (strncmp(p, "/v2", 3) == 0 && (p[3] == '/' || p[3] == 0)) {
            r->version_prefix = 20;
            rest = p + 3;
        }
        if (rest) {
            /* "/v2.1" and "/v2.1/" are the version document: keep them as "/v2.1" */
            if (rest[0] == 0 || strcmp(rest, "/") == 0) {
                p[r->version_prefix == 21 ? 5 : 3] = 0;
            } else {
                memmove(p, rest, strlen(rest) + 1);
                r->version_prefix = -r->version_prefix; /* negative: a resource path */
            }
        }
    }
    size_t pl = strlen(p);
    while (pl > 1 && p[pl - 1] == '/')
        p[--pl] = 0;
    r->path = p;
    return 0;
}

/* One number of a version string: "0" or digits without a leading zero; one too large for a
 * long long reads as LLONG_MAX (a version no API has). false when s is not of that form. */
static bool version_number(const char *s, size_t n, long long *out)
{
    if (n == 0 || (n > 1 && s[0] == '0'))
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v > (LLONG_MAX - 9) / 10 ? LLONG_MAX : v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "MAJOR.MINOR" (the n bytes at s) as Nova's APIVersionRequest reads it
 * (^([1-9]\d*)\.([1-9]\d*|0)$): no sign, no leading zero, no space, nothing after. */
static bool parse_version(const char *s, size_t n, long long *major, long long *minor)
{
    const char *dot = memchr(s, '.', n);
    return dot && s[0] != '0' && version_number(s, (size_t)(dot - s), major) &&
           version_number(dot + 1, n - (size_t)(dot - s) - 1, minor);
}

/* Microversion negotiation (compute, /v2.1 resources). Returns 0 or the HTTP status to fail. */
static int negotiate_microversion(struct kova_req *r, char *err, size_t errlen)
{
    r->mv = KOVA_MV_MIN;
    if (r->service != SVC_COMPUTE || r->version_prefix != -21)
        return 0;
    const char *h = req_header(r, "OpenStack-API-Version");
    const char *v = NULL; /* the version asked for: l bytes at v */
    size_t l = 0;
    if (h) {
        /* "compute 2.5" or a comma-separated list of "service version" */
        const char *p = h;
        while (*p) {
            while (*p == ' ' || *p == ',')
                p++;
            const char *e = p;
            while (*e && *e != ',')
                e++;
            if ((size_t)(e - p) > 8 && strncasecmp(p, "compute ", 8) == 0) {
                l = (size_t)(e - p) - 8;
                v = p + 8;
                while (l && *v == ' ')
                    v++, l--;
                while (l && v[l - 1] == ' ')
                    l--;
                break;
            }
            p = e;
        }
    }
    if (!l) {
        v = req_header(r, "X-OpenStack-Nova-API-Version");
        l = v ? strlen(v) : 0;
    }
    if (!l)
        return 0;
    if (l == 6 && strncasecmp(v, "latest", 6) == 0) {
        r->mv = KOVA_MV_MAX;
        return 0;
    }
    long long major, minor;
    if (!parse_version(v, l, &major, &minor)) {
        snprintf(err, errlen,
                 "API Version String %.*s is of invalid format. Must be of format "
                 "MajorNum.MinorNum.",
                 (int)(l < 60 ? l : 60), v);
        return 400;
    }
    if (major != 2 || minor < KOVA_MV_MIN || minor > KOVA_MV_MAX) {
        snprintf(err, errlen,
                 "Version %lld.%lld is not supported by the API. Minimum is %s and maximum is %s.",
                 major, minor, kova_api_min_version(), kova_api_max_version());
        return 406;
    }
    r->mv = (int)minor;
    return 0;
}

void image_base_url(struct kova_req *r, char *out, size_t n)
{
    /* the host the client used, with the image listener's port */
    char host[300];
    snprintf(host, sizeof(host), "%s", r->base_url + strlen("http://"));
    char *colon = strrchr(host, ':');
    char *bracket = strrchr(host, ']');
    if (colon && (!bracket || colon > bracket))
        *colon = 0;
    snprintf(out, n, "http://%s:%u", host, r->api->cfg.image_port);
}

static void set_base_url(struct kova_req *r)
{
    const char *host = req_header(r, "Host");
    bool ok = host && host[0] && strlen(host) < 256;
    for (const char *p = host; ok && *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == ':' || c == '-' || c == '[' || c == ']'))
            ok = false;
    }
    if (ok) {
        snprintf(r->base_url, sizeof(r->base_url), "http://%s", host);
    } else {
        const struct kova_api_config *c = &r->api->cfg;
        const char *h = r->service == SVC_IMAGE ? c->image_host : c->listen_host;
        bool v6 = strchr(h, ':') != NULL;
        snprintf(r->base_url, sizeof(r->base_url), "http://%s%s%s:%u", v6 ? "[" : "", h,
                 v6 ? "]" : "", r->service == SVC_IMAGE ? c->image_port : c->listen_port);
    }
}

struct svc_cls {
    struct kova_api *api;
    int service;
};

static void req_free(struct kova_req *r)
{
    if (!r)
        return;
    if (r->upload)
        image_upload_abort(r);
    if (r->db)
        kova_db_release(r->api->db, r->db);
    for (int i = 0; i < r->nargs; i++)
        free(r->arg[i]);
    free(r->path);
    free(r->body);
    free(r->resp);
    free(r->subject_token);
    kova_centry_unref(r->centry);
    if (r->resp_fd >= 0)
        close(r->resp_fd);
    free(r);
}

/* First call for a request: route, authenticate, negotiate. Any failure is replied now and the
 * body (if any) is drained. */
static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *k,
                                        const char *v)
{
    (void)kind;
    *(size_t *)cls += strlen(k) + (v ? strlen(v) : 0) + 4; /* "k: v\r\n" */
    return MHD_YES;
}

/* The size of the request line and headers as sent (near enough: separators counted). */
static size_t header_bytes(struct kova_req *r)
{
    size_t n = strlen(r->method) + strlen(r->url) + 12;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header_bytes, &n);
    return n;
}

/* Whether the media type of the request's Content-Type (parameters and spaces cut) is one of
 * types (NULL-terminated; case-insensitive); none or an empty one counts as "". */
static bool media_type_is(struct kova_req *r, const char *const *types)
{
    const char *h = req_header(r, "Content-Type");
    h = h ? h : "";
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strcspn(h, ";");
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    for (; *types; types++)
        if (strlen(*types) == n && strncasecmp(h, *types, n) == 0)
            return true;
    return false;
}

/*
 * The request's Content-Type, checked before the handler reads a byte of the body (replied and
 * false when refused):
 *  - Nova (wsgi.Request.get_content_type): anything but JSON is 415 on every method; none, an
 *    empty one and text/plain (some web servers' default) read as JSON;
 *  - Glance: a JSON patch type for PATCH (kova also takes application/json) and
 *    application/octet-stream for an upload, else 415; its other bodies are read as JSON;
 *  - Keystone (the noauth identity endpoint): a POST whose body is not JSON is 400.
 */
static bool content_type_ok(struct kova_req *r)
{
    static const char *const nova[] = {"", "text/plain", "application/json",
                                       "application/vnd.openstack.compute+json", NULL};
    static const char *const patch[] = {"application/openstack-images-v2.1-json-patch",
                                        "application/openstack-images-v2.0-json-patch",
                                        "application/json", NULL};
    static const char *const octet[] = {"application/octet-stream", NULL};
    static const char *const keystone[] = {"", "application/json", NULL};
    if (r->service == SVC_IMAGE) {
        const char *const *want = r->route->flags & ROUTE_UPLOAD    ? octet
                                  : strcmp(r->method, "PATCH") == 0 ? patch
                                                                    : NULL;
        if (want && !media_type_is(r, want)) {
            reply_fault(r, 415, "The Content-Type of the request is not supported here: %s",
                        want[0]);
            return false;
        }
        return true;
    }
    if (strncmp(r->path, "/identity", 9) == 0 && r->version_prefix == 0) {
        if (strcmp(r->method, "POST") == 0 && !media_type_is(r, keystone)) {
            reply_fault(r, 400, "Expecting to find application/json in Content-Type header.");
            return false;
        }
        return true;
    }
    if (!media_type_is(r, nova)) {
        reply_fault(r, 415, "Unsupported Content-Type");
        return false;
    }
    return true;
}

static void req_start(struct kova_req *r)
{
    char err[256], uuid[37];
    kova_uuid(uuid);
    snprintf(r->request_id, sizeof(r->request_id), "req-%s", uuid);
    set_base_url(r);
    size_t hdr = header_bytes(r);
    if (hdr > r->api->cfg.max_header_size) {
        reply_fault(r, 431, "The request's headers are too large (%zu bytes; the limit is %zu).",
                    hdr, r->api->cfg.max_header_size);
        return;
    }
    /* RFC 9112 §6.3: a request whose last transfer coding is not chunked has no knowable
     * length (400, and the connection closed: on_request answers at once); kova decodes no
     * other coding, so anything but plain "chunked" is refused */
    const char *te = req_header(r, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") != 0) {
        r->close = true;
        reply_fault(r, 400, "Transfer-Encoding %.40s is not supported (only chunked).", te);
        return;
    }
    int np = normalise_path(r);
    if (np == -ENAMETOOLONG) {
        reply_fault(r, 414, "Request-URI Too Long: the path is over 2048 bytes.");
        return;
    }
    if (np < 0) {
        reply_fault(r, 400, "Invalid request path");
        return;
    }
    bool known = false;
    if (r->service == SVC_COMPUTE && r->version_prefix == 0 && strcmp(r->path, "/") != 0 &&
        strncmp(r->path, "/identity", 9) != 0) {
        reply_fault(r, 404, "The resource could not be found.");
        return;
    }
    r->route = match_route(r, &known);
    if (!r->route) {
        if (known)
            reply_fault(r, 405, "The method %s is not allowed for this resource.", r->method);
        else
            reply_fault(r, 404, "The resource could not be found.");
        return;
    }
    int st = negotiate_microversion(r, err, sizeof(err));
    if (st) {
        reply_fault(r, st, "%s", err);
        return;
    }
    if (r->route->rule != RULE_PUBLIC) {
        int e = kova_authenticate(r);
        if (e == -EACCES) {
            r->www_authenticate = r->api->cfg.keystone != NULL;
            if (r->api->cfg.keystone)
                reply_fault(r, 401, "The request you have made requires authentication.");
            else
                reply_fault(r, 401,
                            "Authentication required (noauth2: X-Auth-Token: user:project)");
            return;
        }
        if (e < 0) {
            reply_fault(r, 503,
                        "The identity service (Keystone) is not available; try again later.");
            return;
        }
        if (!content_type_ok(r))
            return;
        if (!kova_policy_allows(r->route->rule, &r->auth)) {
            reply_fault(r, 403, "Policy doesn't allow %s to be performed.",
                        kova_policy_name(r->route->rule));
            return;
        }
    }
    if (r->route->rule == RULE_PUBLIC && !content_type_ok(r))
        return;
    if (r->route->flags & ROUTE_UPLOAD) {
        r->db = kova_db_acquire(r->api->db);
        image_upload_begin(r);
        kova_db_release(r->api->db, r->db);
        r->db = NULL;
    }
}

static enum MHD_Result send_reply(struct kova_req *r)
{
    struct MHD_Response *resp;
    bool gzip = false, negotiated = r->centry != NULL;
    if (r->centry) {
        const char *data;
        size_t len;
        gzip = r->api->list_cache && accepts_gzip(req_header(r, "Accept-Encoding")) &&
               kova_centry_gzip(r->api->list_cache, r->centry, &data, &len) == 0;
        if (!gzip)
            kova_centry_body(r->centry, &data, &len);
        resp = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data,
                                                                      centry_free_cb, r->centry);
        if (resp)
            r->centry = NULL; /* the response holds the reference now */
    } else if (r->resp_fd >= 0) {
        resp = MHD_create_response_from_fd64(r->resp_len, r->resp_fd);
        if (!resp)
            close(r->resp_fd);
        r->resp_fd = -1;
    } else if (r->resp) {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
        r->resp = NULL;
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    if (r->ctype)
        MHD_add_response_header(resp, "Content-Type", r->ctype);
    if (gzip)
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
    MHD_add_response_header(resp, "x-openstack-request-id", r->request_id);
    if (r->service == SVC_COMPUTE) {
        MHD_add_response_header(resp, "x-compute-request-id", r->request_id);
        if (r->version_prefix == -21 || r->version_prefix == 21) {
            char v[32];
            snprintf(v, sizeof(v), "compute 2.%d", r->mv);
            MHD_add_response_header(resp, "OpenStack-API-Version", v);
            MHD_add_response_header(resp, "X-OpenStack-Nova-API-Version", v + 8);
            MHD_add_response_header(resp, "Vary",
                                    negotiated ? "OpenStack-API-Version, "
                                                 "X-OpenStack-Nova-API-Version, Accept-Encoding"
                                               : "OpenStack-API-Version, "
                                                 "X-OpenStack-Nova-API-Version");
            negotiated = false;
        }
    }
    /* cached bodies are the ones offered gzip-encoded: caches must key them on the encoding */
    if (negotiated)
        MHD_add_response_header(resp, "Vary", "Accept-Encoding");
    if (r->location[0])
        MHD_add_response_header(resp, "Location", r->location);
    if (r->www_authenticate) {
        char v[600];
        snprintf(v, sizeof(v), "Keystone uri=\"%s\"", r->api->www_auth_uri);
        MHD_add_response_header(resp, "WWW-Authenticate", v);
    }
    if (r->subject_token)
        MHD_add_response_header(resp, "X-Subject-Token", r->subject_token);
    if (r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (kova_log_get_level() >= 2)
        kova_log(2, "%s %s %d %s", r->method, r->url, r->status, r->request_id);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct svc_cls *svc = cls;
    struct kova_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->api = svc->api;
        r->service = svc->service;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->mv = KOVA_MV_MIN;
        r->resp_fd = -1;
        *con_cls = r;
        req_start(r);
        if (r->close)
            return send_reply(r); /* the body cannot be read: answer now, then close */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->replied)
            return MHD_YES; /* drain */
        if (r->route->flags & ROUTE_UPLOAD) {
            if (image_upload_chunk(r, upload_data, n) < 0)
                image_upload_abort(r);
            return MHD_YES;
        }
        if (r->body_too_large)
            return MHD_YES;
        if (r->body_len + n > r->api->cfg.max_body) {
            r->body_too_large = true;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            char *nb = realloc(r->body, cap);
            if (!nb) {
                reply_fault(r, 500, "out of memory");
                return MHD_YES;
            }
            r->body = nb;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }
    /* the whole request is in */
    if (!r->replied) {
        if (r->body_too_large) {
            reply_fault(r, 413, "Request is too large (the limit is %zu bytes).",
                        r->api->cfg.max_body);
        } else {
            r->db = kova_db_acquire(r->api->db);
            r->route->handler(r);
            kova_db_release(r->api->db, r->db);
            r->db = NULL;
            /* a finished upload handler clears r->upload; one still set is aborted by
             * req_free (partial data removed, image back to queued) */
            if (!r->replied)
                reply_fault(r, 500, "The handler produced no reply.");
        }
    }
    return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    req_free(*con_cls);
    *con_cls = NULL;
}

/* libmicrohttpd's unescaping of the path and the query arguments, in place: "%XX" becomes the
 * byte, except "%00", which stays as it is, so that no decoded path, id or argument ever holds a
 * NUL (a C string would end there: "/servers/%00" would read as "/servers"). A '%' not followed
 * by two hex digits stays too. Returns the new length. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = kova_hexval(p[1])) >= 0 && (lo = kova_hexval(p[2])) >= 0 &&
            (hi | lo)) {
            *w++ = (char)(hi << 4 | lo);
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

static struct MHD_Daemon *listen_on(struct kova_api *api, struct svc_cls *cls, const char *host,
                                    unsigned port)
{
    struct sockaddr_in sa4;
    struct sockaddr_in6 sa6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    memset(&sa4, 0, sizeof(sa4));
    memset(&sa6, 0, sizeof(sa6));
    if (port == 0 || port > 65535) {
        kova_log(0, "invalid port %u", port);
        return NULL;
    }
    if (inet_pton(AF_INET, host, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, host, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa6;
        flags |= MHD_USE_IPv6;
    } else {
        kova_log(0, "invalid listen address '%s' (a numeric IPv4/IPv6 address is needed)", host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, cls, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(api->cfg.threads ? api->cfg.threads : 2),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        api->cfg.connection_timeout, MHD_OPTION_CONNECTION_LIMIT, api->cfg.max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, api->cfg.max_header_size * 2 + (size_t)32768,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (!d)
        kova_log(0, "cannot listen on %s:%u: %s", host, port, strerror(errno));
    return d;
}

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && s[0] ? s : dflt);
}

int kova_api_start(const struct kova_api_config *cfg, struct kova_db *db, struct kova_api **out)
{
    if (!cfg || !db || !out || !cfg->state_dir)
        return -EINVAL;
    struct kova_api *api = calloc(1, sizeof(*api) + 2 * sizeof(struct svc_cls));
    if (!api)
        return -ENOMEM;
    api->cfg = *cfg;
    api->listen_host = dup_or(cfg->listen_host, "127.0.0.1");
    api->image_host = dup_or(cfg->image_host, api->listen_host ? api->listen_host : "127.0.0.1");
    api->state_dir = dup_or(cfg->state_dir, ".");
    api->auth_strategy = dup_or(cfg->auth_strategy, "noauth2");
    api->host_name = dup_or(cfg->host_name, "localhost");
    api->az = dup_or(cfg->availability_zone, "nova");
    api->manager = cfg->compute;
    if (!api->manager) {
        kova_log(0, "the API needs a compute manager");
        kova_api_stop(api);
        return -EINVAL;
    }
    if (!api->listen_host || !api->image_host || !api->state_dir || !api->auth_strategy ||
        !api->host_name || !api->az) {
        kova_api_stop(api);
        return -ENOMEM;
    }
    api->cfg.listen_host = api->listen_host;
    api->cfg.image_host = api->image_host;
    api->cfg.state_dir = api->state_dir;
    api->cfg.auth_strategy = api->auth_strategy;
    api->cfg.host_name = api->host_name;
    api->cfg.availability_zone = api->az;
    if (api->cfg.max_body == 0)
        api->cfg.max_body = 114688;
    if (api->cfg.max_connections == 0)
        api->cfg.max_connections = 1000;
    if (api->cfg.connection_timeout == 0)
        api->cfg.connection_timeout = 120;
    if (api->cfg.max_header_size == 0)
        api->cfg.max_header_size = 16384;
    if (api->cfg.max_limit <= 0)
        api->cfg.max_limit = 1000;
    char ferr[160];
    int fe = fetch_filter_parse(&api->fetch, cfg->import_allowed_networks,
                                cfg->import_allowed_ports, ferr, sizeof(ferr));
    api->cfg.import_allowed_networks = api->cfg.import_allowed_ports = NULL; /* not owned */
    if (fe < 0) {
        kova_log(0, "[import_filtering_opts]: %s", ferr);
        kova_api_stop(api);
        return fe;
    }
    bool ks = strcmp(api->auth_strategy, "keystone") == 0;
    if (!ks && strcmp(api->auth_strategy, "noauth2") != 0) {
        kova_log(0, "auth_strategy '%s' is not supported (noauth2 or keystone)",
                 api->auth_strategy);
        kova_api_stop(api);
        return -ENOTSUP;
    }
    if (ks != (cfg->keystone != NULL)) {
        kova_log(0, "auth_strategy %s needs %s Keystone client", api->auth_strategy,
                 ks ? "a" : "no");
        kova_api_stop(api);
        return -EINVAL;
    }
    api->www_auth_uri = dup_or(cfg->www_authenticate_uri, "");
    if (!api->www_auth_uri) {
        kova_api_stop(api);
        return -ENOMEM;
    }
    for (size_t t = 0; t < sizeof(route_tables) / sizeof(route_tables[0]); t++) {
        for (const struct kova_route *rt = route_tables[t]; rt->pattern; rt++) {
            if (rt->rule == RULE_UNSET) {
                kova_log(0, "route %s %s has no policy rule", rt->method, rt->pattern);
                kova_api_stop(api);
                return -EINVAL;
            }
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    api->db = db;
    sqlite3 *conn = kova_db_acquire(db);
    uint64_t gen;
    int ge = kova_db_generation(db, conn, &gen);
    kova_db_release(db, conn);
    if (ge == 0 && kova_cache_new(LIST_CACHE_BYTES, LIST_CACHE_ENTRIES, &api->list_cache) < 0) {
        kova_api_stop(api);
        return -ENOMEM;
    }
    api->started = time(NULL);
    snprintf(api->images_dir, sizeof(api->images_dir), "%s/images", api->state_dir);
    if (mkdir(api->images_dir, 0750) < 0 && errno != EEXIST) {
        int e = errno;
        kova_log(0, "cannot create %s: %s", api->images_dir, strerror(e));
        kova_api_stop(api);
        return -e;
    }
    /* before listening: no request may see a half-recovered state */
    int n = images_recover(api);
    if (n > 0)
        kova_log(1, "%d image upload(s) cut short by a previous run: back to queued", n);
    struct svc_cls *cls = (struct svc_cls *)(api + 1);
    cls[0].api = api;
    cls[0].service = SVC_COMPUTE;
    cls[1].api = api;
    cls[1].service = SVC_IMAGE;
    api->compute = listen_on(api, &cls[0], api->listen_host, cfg->listen_port);
    if (!api->compute) {
        kova_api_stop(api);
        return -EADDRINUSE;
    }
    if (cfg->image_port) {
        api->image = listen_on(api, &cls[1], api->image_host, cfg->image_port);
        if (!api->image) {
            kova_api_stop(api);
            return -EADDRINUSE;
        }
    }
    *out = api;
    return 0;
}

void kova_api_quiesce(struct kova_api *api)
{
    if (!api)
        return;
    atomic_store(&api->stopping, true);
    if (api->compute)
        MHD_stop_daemon(api->compute);
    if (api->image)
        MHD_stop_daemon(api->image);
    api->compute = api->image = NULL;
}

void kova_api_stop(struct kova_api *api)
{
    if (!api)
        return;
    kova_api_quiesce(api);
    kova_cache_free(api->list_cache);
    free(api->listen_host);
    free(api->image_host);
    free(api->state_dir);
    free(api->auth_strategy);
    free(api->www_auth_uri);
    free(api->host_name);
    free(api->az);
    if (api->db)
        curl_global_cleanup();
    free(api);
}
