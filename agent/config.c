/* SPDX-License-Identifier: Apache-2.0 */
/* nova.conf-style configuration through Debian's libinih. */
#include "kova/agent.h"
#include "kova/common.h"
#include "kova/network.h"

#include <errno.h>
#include <stddef.h>
#include <strings.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void kova_agent_config_defaults(struct kova_agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 8774;
    snprintf(cfg->image_host, sizeof(cfg->image_host), "127.0.0.1");
    cfg->image_port = 9292;
    snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/kova");
    snprintf(cfg->auth_strategy, sizeof(cfg->auth_strategy), "noauth2");
    if (gethostname(cfg->host_name, sizeof(cfg->host_name) - 1) < 0 || !cfg->host_name[0])
        snprintf(cfg->host_name, sizeof(cfg->host_name), "localhost");
    snprintf(cfg->availability_zone, sizeof(cfg->availability_zone), "nova");
    snprintf(cfg->dhcp_domain, sizeof(cfg->dhcp_domain), "novalocal"); /* Nova's default */
    cfg->metadata_port = 80;
    cfg->api_threads = 2;
    cfg->workers = 8; /* builds and clean shutdowns wait: several run at once */
    cfg->shutdown_timeout = 60;
    cfg->boot_timeout = 60;
    cfg->max_body = 114688;      /* oslo.middleware's max_request_body_size */
    cfg->max_connections = 1000; /* Nova's [wsgi] default_pool_size */
    cfg->connection_timeout = 120;
    cfg->max_header_size = 16384; /* Nova's [wsgi] max_header_line */
    cfg->max_image_size = 1ULL << 40;
    snprintf(cfg->import_allowed_ports, sizeof(cfg->import_allowed_ports), "80,443");
    cfg->max_limit = 1000;
    cfg->quota_instances = 10;
    cfg->quota_cores = 20;
    cfg->quota_ram = 51200;
    cfg->quota_key_pairs = 100;
    cfg->quota_metadata_items = 128;
    cfg->log_level = 1;
    snprintf(cfg->ks.auth_type, sizeof(cfg->ks.auth_type), "password");
    snprintf(cfg->ks.user_domain_name, sizeof(cfg->ks.user_domain_name), "Default");
    snprintf(cfg->ks.project_domain_name, sizeof(cfg->ks.project_domain_name), "Default");
    cfg->ks.token_cache_time = 300;
    cfg->ks.cache_size = 1024;
    cfg->ks.http_request_timeout = 5;
}

int kova_agent_parse_listen(const char *s, char *host, unsigned hostlen, unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            hl = 0;
            colon = s - 1; /* only a port */
        } else {
            hl = (size_t)(colon - s);
        }
    }
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || colon[1] == 0 || p == 0 || p > 65535)
        return -EINVAL;
    if (hl) {
        if (hl >= hostlen)
            return -EINVAL;
        memcpy(host, h, hl);
        host[hl] = 0;
    }
    *port = (unsigned)p;
    return 0;
}

static int set_int(const char *v, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max)
        return 0;
    *out = x;
    return 1;
}

static int set_str(char *dst, size_t len, const char *v)
{
    if (strlen(v) >= len)
        return 0;
    snprintf(dst, len, "%s", v);
    return 1;
}

static int set_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
             !strcasecmp(v, "off"))
        *out = 0;
    else
        return 0;
    return 1;
}

/* A key of a [network:NAME] section: the network's definition is started at its first key. */
static int network_item(struct kova_agent_config *c, const char *netname, const char *name,
                        const char *value)
{
    char err[256] = "";
    struct kova_net_def *d = NULL;
    for (size_t i = 0; i < c->nnetworks; i++)
        if (strcmp(c->networks[i].name, netname) == 0)
            d = &c->networks[i];
    if (!d) {
        if (c->nnetworks == KOVA_NET_MAX) {
            fprintf(stderr, "kova-agent: at most %d networks\n", KOVA_NET_MAX);
            return 0;
        }
        d = &c->networks[c->nnetworks];
        if (kova_net_def_init(d, netname, err, sizeof(err)) < 0) {
            fprintf(stderr, "kova-agent: [network:%s]: %s\n", netname, err);
            return 0;
        }
        c->nnetworks++;
    }
    if (kova_net_def_set(d, name, value, err, sizeof(err)) < 0) {
        fprintf(stderr, "kova-agent: [network:%s] %s: %s\n", netname, name, err);
        return 0;
    }
    return 1;
}

static int on_item(void *user, const char *section, const char *name, const char *value)
{
    struct kova_agent_config *c = user;
    long long x;
    int b;
    if (strncasecmp(section, "network:", 8) == 0)
        return network_item(c, section + 8, name, value);
#define IS(s, n) (strcasecmp(section, s) == 0 && strcasecmp(name, n) == 0)
    if (IS("DEFAULT", "osapi_compute_listen") || IS("kova", "listen_host"))
        return set_str(c->listen_host, sizeof(c->listen_host), value);
    if (IS("DEFAULT", "osapi_compute_listen_port") || IS("kova", "listen_port")) {
        if (!set_int(value, 1, 65535, &x))
            return 0;
        c->listen_port = (unsigned)x;
        return 1;
    }
    if (IS("DEFAULT", "osapi_compute_workers") || IS("kova", "api_threads")) {
        if (!set_int(value, 1, 64, &x))
            return 0;
        c->api_threads = (unsigned)x;
        return 1;
    }
    if (IS("kova", "listen")) {
        return kova_agent_parse_listen(value, c->listen_host, sizeof(c->listen_host),
                                       &c->listen_port) == 0;
    }
    if (IS("kova", "image_listen") || IS("glance", "listen")) {
        return kova_agent_parse_listen(value, c->image_host, sizeof(c->image_host),
                                       &c->image_port) == 0;
    }
    if (IS("kova", "image_service")) {
        if (!set_bool(value, &b))
            return 0;
        if (!b)
            c->image_port = 0;
        return 1;
    }
    if (IS("kova", "metadata_listen")) { /* HOST:PORT, or "off" */
        c->metadata_off = strcasecmp(value, "off") == 0;
        if (c->metadata_off) {
            c->metadata_host[0] = 0;
            return 1;
        }
        return kova_agent_parse_listen(value, c->metadata_host, sizeof(c->metadata_host),
                                       &c->metadata_port) == 0 &&
               !strchr(c->metadata_host, ':');
    }
    if (IS("DEFAULT", "force_config_drive"))
        return set_bool(value, &c->force_config_drive);
    if (IS("api", "dhcp_domain") || IS("DEFAULT", "dhcp_domain"))
        return set_str(c->dhcp_domain, sizeof(c->dhcp_domain), value);
    if (IS("DEFAULT", "state_path") || IS("kova", "state_dir"))
        return set_str(c->state_dir, sizeof(c->state_dir), value);
    if (IS("DEFAULT", "host"))
        return set_str(c->host_name, sizeof(c->host_name), value);
    if (IS("DEFAULT", "default_availability_zone"))
        return set_str(c->availability_zone, sizeof(c->availability_zone), value);
    if (IS("api", "auth_strategy") || IS("DEFAULT", "auth_strategy"))
        return set_str(c->auth_strategy, sizeof(c->auth_strategy), value);
    if (IS("api", "max_limit")) {
        if (!set_int(value, 1, 100000, &x))
            return 0;
        c->max_limit = (int)x;
        return 1;
    }
    if (IS("kova", "vmm_user"))
        return set_str(c->vmm_user, sizeof(c->vmm_user), value);
    if (IS("kova", "vmm_uid_range"))
        return set_str(c->vmm_uid_range, sizeof(c->vmm_uid_range), value);
    if (IS("import_filtering_opts", "allowed_networks"))
        return set_str(c->import_allowed_networks, sizeof(c->import_allowed_networks), value);
    if (IS("import_filtering_opts", "allowed_ports"))
        return set_str(c->import_allowed_ports, sizeof(c->import_allowed_ports), value);
    if (IS("kova", "max_connections") || IS("wsgi", "default_pool_size")) {
        if (!set_int(value, 1, 100000, &x))
            return 0;
        c->max_connections = (unsigned)x;
        return 1;
    }
    if (IS("kova", "connection_timeout") || IS("wsgi", "client_socket_timeout")) {
        if (!set_int(value, 1, 86400, &x))
            return 0;
        c->connection_timeout = (unsigned)x;
        return 1;
    }
    if (IS("kova", "max_header_size")) {
        if (!set_int(value, 1024, 1 << 20, &x))
            return 0;
        c->max_header_size = (unsigned)x;
        return 1;
    }
    if (IS("oslo_middleware", "max_request_body_size")) {
        if (!set_int(value, 1024, 1LL << 30, &x))
            return 0;
        c->max_body = (unsigned long long)x;
        return 1;
    }
    if (IS("kova", "max_image_size") || IS("glance", "image_size_cap")) {
        if (!set_int(value, 1, 1LL << 50, &x))
            return 0;
        c->max_image_size = (unsigned long long)x;
        return 1;
    }
    if (IS("DEFAULT", "shutdown_timeout") || IS("kova", "shutdown_timeout")) {
        if (!set_int(value, 0, 3600, &x))
            return 0;
        c->shutdown_timeout = (unsigned)x;
        return 1;
    }
    if (IS("kova", "vmm_start_timeout")) {
        if (!set_int(value, 1, 3600, &x))
            return 0;
        c->boot_timeout = (unsigned)x;
        return 1;
    }
    if (IS("kova", "dnsmasq")) {
        if (strlen(value) >= sizeof(c->dnsmasq_path) || value[0] != '/')
            return 0;
        snprintf(c->dnsmasq_path, sizeof(c->dnsmasq_path), "%s", value);
        return 1;
    }
    if (IS("kova", "vmm_path")) {
        if (strlen(value) >= sizeof(c->vmm_path) || value[0] != '/')
            return 0;
        snprintf(c->vmm_path, sizeof(c->vmm_path), "%s", value);
        return 1;
    }
    if (IS("kova", "workers")) {
        if (!set_int(value, 1, 64, &x))
            return 0;
        c->workers = (unsigned)x;
        return 1;
    }
    if (IS("DEFAULT", "debug")) {
        if (!set_bool(value, &b))
            return 0;
        if (b)
            c->log_level = 2;
        return 1;
    }
    if (IS("kova", "log_level")) {
        return kova_log_level_parse(value, &c->log_level) == 0;
    }
    if (strcasecmp(section, "keystone_authtoken") == 0) {
        static const struct {
            const char *name;
            size_t off, len;
        } strs[] = {
#define KS_STR(f)                                                                                  \
    {#f, offsetof(struct kova_agent_config, ks.f), sizeof(((struct kova_agent_config *)0)->ks.f)}
            KS_STR(www_authenticate_uri),
            KS_STR(auth_url),
            KS_STR(auth_type),
            KS_STR(username),
            KS_STR(password),
            KS_STR(project_name),
            KS_STR(user_domain_name),
            KS_STR(project_domain_name),
#undef KS_STR
        };
        for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
            if (strcasecmp(name, strs[i].name) == 0)
                return set_str((char *)c + strs[i].off, strs[i].len, value);
        if (strcasecmp(name, "token_cache_time") == 0) {
            if (!set_int(value, 0, 86400, &x))
                return 0;
            c->ks.token_cache_time = (unsigned)x;
            return 1;
        }
        if (strcasecmp(name, "http_request_timeout") == 0) {
            if (!set_int(value, 1, 300, &x))
                return 0;
            c->ks.http_request_timeout = (unsigned)x;
            return 1;
        }
        if (strcasecmp(name, "cache_size") == 0) {
            if (!set_int(value, 4, 1 << 20, &x))
                return 0;
            c->ks.cache_size = (unsigned)x;
            return 1;
        }
    }
    static const struct {
        const char *name;
        size_t off;
    } quotas[] = {
        {"instances", offsetof(struct kova_agent_config, quota_instances)},
        {"cores", offsetof(struct kova_agent_config, quota_cores)},
        {"ram", offsetof(struct kova_agent_config, quota_ram)},
        {"key_pairs", offsetof(struct kova_agent_config, quota_key_pairs)},
        {"metadata_items", offsetof(struct kova_agent_config, quota_metadata_items)},
    };
    if (strcasecmp(section, "quota") == 0) {
        for (size_t i = 0; i < sizeof(quotas) / sizeof(quotas[0]); i++) {
            if (strcasecmp(name, quotas[i].name) == 0) {
                if (!set_int(value, -1, 1LL << 30, &x))
                    return 0;
                *(int *)((char *)c + quotas[i].off) = (int)x;
                return 1;
            }
        }
    }
#undef IS
    /* Unknown options are ignored (a nova.conf carries many that kova has no use for). */
    return 1;
}

int kova_agent_config_load(struct kova_agent_config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        fprintf(stderr, "kova-agent: cannot open config %s: %s\n", path, strerror(e));
        return -e;
    }
    int line = ini_parse_file(f, on_item, cfg);
    fclose(f);
    if (line != 0) {
        fprintf(stderr, "kova-agent: %s:%d: invalid line or value\n", path, line);
        return -EINVAL;
    }
    char err[256] = "";
    for (size_t i = 0; i < cfg->nnetworks; i++) {
        if (kova_net_def_finish(&cfg->networks[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "kova-agent: %s: [network:%s]: %s\n", path, cfg->networks[i].name, err);
            return -EINVAL;
        }
    }
    if (kova_net_defs_check(cfg->networks, cfg->nnetworks, err, sizeof(err)) < 0) {
        fprintf(stderr, "kova-agent: %s: networks: %s\n", path, err);
        return -EINVAL;
    }
    return 0;
}
