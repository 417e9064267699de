/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metadata service (kova/api.h, kova_mdsvc_*): Nova's metadata API for the guests, served
 * from kova/metadata.h's trees. The guest is known by where its request comes from, never by
 * anything it says: a listener bound to one network's bridge looks the source address up among
 * that network's fixed IPs; a listener on a configured address among every network's. Unknown
 * source, unknown path: 404. Only GET and HEAD; the path is taken as sent (no unescaping: a '%'
 * is simply not in the trees).
 */
#include "kova/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kova/common.h"
#include "kova/db.h"
#include "kova/metadata.h"
#include "kova/network.h"

#define MD_THREADS   2
#define MD_CONNS     128
#define MD_TIMEOUT   30 /* seconds */
#define MD_HDR_MAX   8192
#define MD_LISTENERS (KOVA_NET_MAX > 1 ? KOVA_NET_MAX : 1)

struct listener {
    struct kova_mdsvc *svc;
    const struct kova_net_def *net; /* bound to this network's bridge; NULL: every network */
    struct MHD_Daemon *d;
};

struct kova_mdsvc {
    struct kova_mdsvc_config cfg;
    struct listener l[MD_LISTENERS];
    size_t n;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                             const char *body, size_t len)
{
    struct MHD_Response *rsp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!rsp)
        return MHD_NO;
    MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = MHD_queue_response(c, status, rsp);
    MHD_destroy_response(rsp);
    return r;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return reply(c, status, "text/plain; charset=UTF-8", text, strlen(text));
}

/* The server that sends from the connection's address, into id: 1, or 0 when none does. */
static int whose(const struct listener *l, struct MHD_Connection *c, char *id, char *ip,
                 size_t iplen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(ip, iplen, "?");
    if (!ci || !ci->client_addr || ci->client_addr->sa_family != AF_INET)
        return 0;
    struct sockaddr_in sin;
    memcpy(&sin, ci->client_addr, sizeof(sin));
    inet_ntop(AF_INET, &sin.sin_addr, ip, (socklen_t)iplen);
    uint32_t a = ntohl(sin.sin_addr.s_addr);
    sqlite3 *conn = kova_db_acquire(l->svc->cfg.db);
    int r =
        l->net ? kova_db_port_ip_owner(conn, l->net->uuid, a, id) : kova_db_port_by_ip(conn, a, id);
    kova_db_release(l->svc->cfg.db, conn);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    struct listener *l = cls;
    if (!*state) { /* the first call, headers only: answer once the body (if any) is in */
        *state = l;
        return MHD_YES;
    }
    if (*upload_len) { /* a body is ignored */
        *upload_len = 0;
        return MHD_YES;
    }
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
    char id[KOVA_DB_ID_MAX], ip[INET_ADDRSTRLEN];
    int r = whose(l, c, id, ip, sizeof(ip));
    if (r <= 0) {
        kova_log(KOVA_LOG_INFO, "metadata: %s %s from %s: no server has that address%s", method,
                 url, ip, r < 0 ? " (database error)" : "");
        return reply_text(c, r < 0 ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_NOT_FOUND,
                          r < 0 ? "500 Internal Server Error\n" : "404 Not Found\n");
    }
    struct kova_md_source src;
    sqlite3 *conn = kova_db_acquire(l->svc->cfg.db);
    r = kova_md_source_load(conn, id, l->svc->cfg.networks, l->svc->cfg.nnetworks,
                            l->svc->cfg.dhcp_domain, &src);
    kova_db_release(l->svc->cfg.db, conn);
    if (r == -ENOENT) /* deleted meanwhile */
        return reply_text(c, MHD_HTTP_NOT_FOUND, "404 Not Found\n");
    if (r < 0) {
        kova_log(KOVA_LOG_WARNING, "metadata: server %s: cannot load it: %s", id, strerror(-r));
        return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 Internal Server Error\n");
    }
    char *body = NULL;
    size_t len = 0;
    const char *ctype = NULL;
    r = kova_md_getn(&src.in, url, strlen(url), &body, &len, &ctype);
    kova_md_source_free(&src);
    kova_log(KOVA_LOG_DEBUG, "metadata: %s %s from %s (server %s): %d", method, url, ip, id, r);
    enum MHD_Result ret;
    if (r == 0)
        ret = reply(c, MHD_HTTP_OK, ctype, head ? "" : body, head ? 0 : len);
    else if (r == -ENOENT)
        ret = reply_text(c, MHD_HTTP_NOT_FOUND, "404 Not Found\n");
    else {
        kova_log(KOVA_LOG_WARNING, "metadata: %s for server %s: %s", url, id, strerror(-r));
        ret = reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 Internal Server Error\n");
    }
    free(body);
    return ret;
}

/* The path as it came: no %-decoding (kova_md_getn refuses '%' itself). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* A listening socket on addr:port, bound to the device dev when not NULL. */
static int listen_socket(uint32_t addr, unsigned port, const char *dev, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, r;
    char ip[INET_ADDRSTRLEN];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(addr);
    inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
    if (fd < 0)
        return kova_err(err, errlen, -errno, "metadata: socket: %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (dev && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, (socklen_t)strlen(dev)) < 0)) {
        r = -errno;
        kova_err(err, errlen, r, "metadata: cannot bind a socket to %s: %s", dev ? dev : "?",
                 strerror(-r));
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 64) < 0) {
        r = -errno;
        kova_err(err, errlen, r, "metadata: cannot listen on %s:%u%s%s: %s", ip, port,
                 dev ? " on " : "", dev ? dev : "", strerror(-r));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return r;
}

void kova_mdsvc_stop(struct kova_mdsvc *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->l[i].d)
            MHD_stop_daemon(s->l[i].d); /* closes its socket */
    free(s);
}

int kova_mdsvc_start(const struct kova_mdsvc_config *cfg, struct kova_mdsvc **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    struct kova_mdsvc *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = *cfg;
    int r = 0;
    uint32_t addr = KOVA_MD_SERVICE_IP;
    unsigned port = cfg->port ? cfg->port : 80;
    if (cfg->host && cfg->host[0]) {
        struct in_addr ia;
        if (inet_pton(AF_INET, cfg->host, &ia) != 1) {
            r = kova_err(err, errlen, -EINVAL, "metadata: %s is not an IPv4 address", cfg->host);
            goto fail;
        }
        addr = ntohl(ia.s_addr);
    }
    size_t want = cfg->host && cfg->host[0] ? 1 : cfg->nnetworks;
    for (size_t i = 0; i < want && i < MD_LISTENERS; i++) {
        struct listener *l = &s->l[s->n];
        l->svc = s;
        l->net = cfg->host && cfg->host[0] ? NULL : &cfg->networks[i];
        int fd = listen_socket(addr, port, l->net ? l->net->bridge : NULL, err, errlen);
        if (fd < 0) {
            r = fd;
            goto fail;
        }
        l->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                                0, NULL, NULL, on_request, l, MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)MD_THREADS,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MD_TIMEOUT,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)MD_CONNS,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MD_HDR_MAX * 2,
                                MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
        if (!l->d) {
            close(fd);
            r = kova_err(err, errlen, -EIO, "metadata: cannot start its HTTP server");
            goto fail;
        }
        s->n++;
        char ip[INET_ADDRSTRLEN];
        struct in_addr ia = {htonl(addr)};
        inet_ntop(AF_INET, &ia, ip, sizeof(ip));
        kova_log(KOVA_LOG_INFO, "metadata service on http://%s:%u%s%s", ip, port,
                 l->net ? " for network " : "", l->net ? l->net->name : "");
    }
    *out = s;
    return 0;
fail:
    kova_mdsvc_stop(s);
    return r;
}
