/* SPDX-License-Identifier: Apache-2.0 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <zlib.h>

bool kova_parse_int(const char *s, long long *out)
{
    if (!s || !*s)
        return false;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!*p)
        return false;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool json_as_int(json_t *v, long long min, long long max, long long *out)
{
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        /* as Nova's schemas write it: ^[0-9]+$, or ^-?[0-9]+$ where negatives are allowed (no
         * '+', no spaces) */
        const char *s = json_string_value(v);
        const char *d = (min < 0 && s[0] == '-') ? s + 1 : s;
        if (!*d || strspn(d, "0123456789") != strlen(d) || strlen(s) > 20 || !kova_parse_int(s, &x))
            return false;
    } else {
        return false;
    }
    if (x < min || x > max)
        return false;
    *out = x;
    return true;
}

bool valid_name(const char *s, size_t maxlen)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > maxlen)
        return false;
    /* Nova's valid_name_regex (2.1): printable, no leading or trailing whitespace */
    if (s[0] == ' ' || s[n - 1] == ' ')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *link_list(struct kova_req *r, const char *path_fmt, const char *id)
{
    /* path_fmt is like "servers" → self: <base>/v2.1/servers/<id>, bookmark: <base>/servers/<id>
     */
    char self[1024], book[1024];
    snprintf(self, sizeof(self), "%s/v2.1/%s/%s", r->base_url, path_fmt, id);
    snprintf(book, sizeof(book), "%s/%s/%s", r->base_url, path_fmt, id);
    return json_pack("[{s:s,s:s},{s:s,s:s}]", "rel", "self", "href", self, "rel", "bookmark",
                     "href", book);
}

bool sb_grow(struct sbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) {
        if (cap > ((size_t)1 << 40)) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = cap;
    return true;
}

static inline bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

static void sb_escape(struct sbuf *b, const char *s, size_t n, bool quote)
{
    static const char hex[] = "0123456789abcdef";
    if (!sb_grow(b, n * 6 + 2))
        return;
    char *o = b->p + b->len;
    if (quote)
        *o++ = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    /* most strings need no escaping: find the clean prefix 8 bytes at a time (a word with no
     * byte < 0x20, '"', '\\' or 0x7f; the tests may flag a clean word, never miss one), then
     * copy it in one go */
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const unsigned char *q = p;
    while (end - q >= 8) {
        uint64_t w, qu, bs, del;
        memcpy(&w, q, 8);
        qu = w ^ (ones * '"');
        bs = w ^ (ones * '\\');
        del = w ^ (ones * 0x7f);
        uint64_t hit = ((w - ones * 0x20) & ~w) | ((qu - ones) & ~qu) | ((bs - ones) & ~bs) |
                       ((del - ones) & ~del);
        if (hit & highs)
            break;
        q += 8;
    }
    while (q < end && !needs_escape(*q))
        q++;
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    for (p = q; p < end; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    if (quote)
        *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = 0;
}

void sb_str(struct sbuf *b, const char *s)
{
    if (!s)
        sb_putn(b, "null", 4);
    else
        sb_escape(b, s, strlen(s), true);
}

void sb_strn(struct sbuf *b, const char *s, size_t n)
{
    if (!s)
        sb_putn(b, "null", 4);
    else
        sb_escape(b, s, n, true);
}

void sb_esc(struct sbuf *b, const char *s)
{
    if (s)
        sb_escape(b, s, strlen(s), false);
}

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        sb_putn(b, tmp, (size_t)n);
        return;
    }
    if (!sb_grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ------------------------------------------------------------------ response cache */

struct kova_centry {
    _Atomic unsigned ref;
    bool in_cache; /* the cache holds one reference; changed under the cache's lock */
    uint64_t hash, gen, last_use;
    char *key, *body, *gz; /* gz: set once under the cache's lock, then never changed */
    size_t klen, len, gzlen;
    struct kova_centry *next;
};

struct kova_cache {
    pthread_mutex_t lock;
    size_t max_bytes, bytes;
    unsigned max_entries, n;
    uint64_t tick;
    struct kova_centry *head;
};

/* gzip is made with this deflate level, once per entry: level 1 compresses a 1000-server
 * /servers/detail (1.3 MB) to 52 KB for half the CPU of level 6 (46 KB), which is several
 * times the render itself; it is paid by the first gzip request after every write. */
#define CACHE_GZIP_LEVEL 1

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static size_t centry_size(const struct kova_centry *e)
{
    return sizeof(*e) + e->klen + e->len + e->gzlen;
}

void kova_centry_ref(struct kova_centry *e)
{
    atomic_fetch_add(&e->ref, 1);
}

void kova_centry_unref(struct kova_centry *e)
{
    if (!e || atomic_fetch_sub(&e->ref, 1) != 1)
        return;
    free(e->key);
    free(e->body);
    free(e->gz);
    free(e);
}

int kova_cache_new(size_t max_bytes, unsigned max_entries, struct kova_cache **out)
{
    struct kova_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int e = pthread_mutex_init(&c->lock, NULL);
    if (e) {
        free(c);
        return -e;
    }
    c->max_bytes = max_bytes;
    c->max_entries = max_entries;
    *out = c;
    return 0;
}

/* Unlinks *pp (under the lock) and drops the cache's reference. */
static void cache_remove(struct kova_cache *c, struct kova_centry **pp)
{
    struct kova_centry *e = *pp;
    *pp = e->next;
    e->next = NULL;
    e->in_cache = false;
    c->n--;
    c->bytes -= centry_size(e);
    kova_centry_unref(e);
}

void kova_cache_free(struct kova_cache *c)
{
    if (!c)
        return;
    while (c->head)
        cache_remove(c, &c->head);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Drops entries older than gen: the generation only grows, so they cannot be found again. */
static void cache_purge(struct kova_cache *c, uint64_t gen)
{
    for (struct kova_centry **pp = &c->head; *pp;) {
        if ((*pp)->gen < gen)
            cache_remove(c, pp);
        else
            pp = &(*pp)->next;
    }
}

/* Evicts the least recently used entries other than keep until need more bytes and nent more
 * entries fit. */
static void cache_shrink(struct kova_cache *c, size_t need, unsigned nent,
                         const struct kova_centry *keep)
{
    while (c->head && (c->n + nent > c->max_entries || c->bytes + need > c->max_bytes)) {
        struct kova_centry **lru = NULL;
        for (struct kova_centry **pp = &c->head; *pp; pp = &(*pp)->next)
            if (*pp != keep && (!lru || (*pp)->last_use < (*lru)->last_use))
                lru = pp;
        if (!lru)
            break;
        cache_remove(c, lru);
    }
}

struct kova_centry *kova_cache_get(struct kova_cache *c, const void *key, size_t klen, uint64_t gen)
{
    uint64_t h = fnv1a(key, klen);
    struct kova_centry *found = NULL;
    pthread_mutex_lock(&c->lock);
    cache_purge(c, gen);
    for (struct kova_centry *e = c->head; e; e = e->next) {
        if (e->hash == h && e->gen == gen && e->klen == klen && !memcmp(e->key, key, klen)) {
            e->last_use = ++c->tick;
            kova_centry_ref(e);
            found = e;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

struct kova_centry *kova_cache_put(struct kova_cache *c, const void *key, size_t klen, uint64_t gen,
                                   uint64_t cur, char *body, size_t len)
{
    struct kova_centry *e = calloc(1, sizeof(*e));
    if (!key)
        klen = 0;
    char *k = malloc(klen ? klen : 1);
    if (!e || !k) {
        free(e);
        free(k);
        free(body);
        return NULL;
    }
    if (klen)
        memcpy(k, key, klen);
    e->key = k;
    e->klen = klen;
    e->hash = fnv1a(key, klen);
    e->gen = gen;
    e->body = body;
    e->len = len;
    atomic_init(&e->ref, 1);
    /* room for a gzip encoding of about a tenth of the body */
    size_t need = centry_size(e) + len / 10;
    pthread_mutex_lock(&c->lock);
    cache_purge(c, cur);
    bool dup = false;
    for (struct kova_centry *o = key ? c->head : NULL; o; o = o->next)
        if (o->hash == e->hash && o->gen == gen && o->klen == klen && !memcmp(o->key, key, klen))
            dup = true;
    if (key && gen == cur && !dup && need <= c->max_bytes / 4 && c->max_entries > 0) {
        cache_shrink(c, centry_size(e), 1, NULL);
        e->last_use = ++c->tick;
        e->in_cache = true;
        e->next = c->head;
        c->head = e;
        c->n++;
        c->bytes += centry_size(e);
        kova_centry_ref(e);
    }
    pthread_mutex_unlock(&c->lock);
    return e;
}

void kova_centry_body(struct kova_centry *e, const char **data, size_t *len)
{
    *data = e->body;
    *len = e->len;
}

static int gzip_encode(const char *in, size_t len, char **out, size_t *outlen)
{
    if (len > UINT32_MAX / 2)
        return -EFBIG;
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* windowBits 15 + 16: a gzip wrapper around the deflate stream */
    if (deflateInit2(&z, CACHE_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    int r = 0;
    uLong bound = deflateBound(&z, (uLong)len);
    char *buf = malloc(bound);
    if (!buf) {
        r = -ENOMEM;
        goto out;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        free(buf);
        r = -EIO;
        goto out;
    }
    char *shrunk = realloc(buf, z.total_out ? z.total_out : 1);
    *out = shrunk ? shrunk : buf;
    *outlen = z.total_out;
out:
    deflateEnd(&z);
    return r;
}

int kova_centry_gzip(struct kova_cache *c, struct kova_centry *e, const char **data, size_t *len)
{
    pthread_mutex_lock(&c->lock);
    bool have = e->gz != NULL;
    pthread_mutex_unlock(&c->lock);
    if (!have) {
        /* outside the lock: two threads may both compress; the first one's result is kept */
        char *gz = NULL;
        size_t gzlen = 0;
        int r = gzip_encode(e->body, e->len, &gz, &gzlen);
        if (r < 0)
            return r;
        pthread_mutex_lock(&c->lock);
        if (!e->gz) {
            if (e->in_cache)
                c->bytes -= centry_size(e);
            e->gz = gz;
            e->gzlen = gzlen;
            gz = NULL;
            if (e->in_cache) {
                c->bytes += centry_size(e);
                cache_shrink(c, 0, 0, e);
            }
        }
        pthread_mutex_unlock(&c->lock);
        free(gz);
    }
    *data = e->gz;
    *len = e->gzlen;
    return 0;
}
