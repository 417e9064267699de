/* SPDX-License-Identifier: Apache-2.0 */
/* The agent process: state dir, database, worker threads for slow tasks, the API listeners. */
#include "kova/agent.h"
#include "kova/common.h"
#include "kova/compute.h"
#include "kova/db.h"
#include "kova/keystone.h"
#include "net.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct task {
    kova_task_fn fn;
    void *arg;
    struct task *next;
};

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct task *head, *tail;
    bool stopping;
    unsigned n;
    pthread_t *threads;
};

static void *worker_main(void *p)
{
    struct workers *w = p;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (!w->head)
            break; /* stopping and drained */
        struct task *t = w->head;
        w->head = t->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->lock);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int submit(void *opaque, kova_task_fn fn, void *arg)
{
    struct workers *w = opaque;
    struct task *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        free(t);
        return -ESHUTDOWN;
    }
    if (w->tail)
        w->tail->next = t;
    else
        w->head = t;
    w->tail = t;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static int workers_start(struct workers *w, unsigned n)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->threads = calloc(n, sizeof(pthread_t));
    if (!w->threads)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        int e = pthread_create(&w->threads[i], NULL, worker_main, w);
        if (e)
            return -e;
        w->n = i + 1;
    }
    return 0;
}

/* Finishes the queued tasks, then joins the threads. */
static void workers_stop(struct workers *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->n; i++)
        pthread_join(w->threads[i], NULL);
    free(w->threads);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* kova-vmm next to this executable, or in the build tree's vmm/ beside agent/. */
static void default_vmm_path(char *out, size_t len)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(out, len, "/usr/local/bin/kova-vmm");
        return;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    static const char *const rel[] = {"/kova-vmm", "/../vmm/kova-vmm"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        int k = snprintf(out, len, "%s%s", self, rel[i]);
        if (k > 0 && (size_t)k < len && access(out, X_OK) == 0)
            return;
    }
    snprintf(out, len, "/usr/local/bin/kova-vmm");
}

int kova_agent_run(const struct kova_agent_config *cfg)
{
    char vmm[4096];
    struct kova_db *db = NULL;
    struct kova_api *api = NULL;
    struct kova_mdsvc *mdsvc = NULL;
    struct kova_compute *compute = NULL;
    struct kova_driver *driver = NULL;
    struct kova_keystone *keystone = NULL;
    struct workers w;
    bool workers_up = false;
    struct agent_net an;
    bool net_up = false;
    char path[4200];
    int r;

    kova_log_setup("kova-agent", cfg->log_level);
    if ((r = mkdir_p(cfg->state_dir)) < 0) {
        fprintf(stderr, "kova-agent: cannot create state dir %s: %s\n", cfg->state_dir,
                strerror(-r));
        return r;
    }
    snprintf(path, sizeof(path), "%s/state.db", cfg->state_dir);
    unsigned nconn = cfg->api_threads * 2 + cfg->workers;
    if (nconn > 64)
        nconn = 64;
    if ((r = kova_db_open(path, nconn, &db)) < 0) {
        fprintf(stderr, "kova-agent: cannot open %s: %s\n", path, strerror(-r));
        return r;
    }
    if (cfg->vmm_path[0])
        snprintf(vmm, sizeof(vmm), "%s", cfg->vmm_path);
    else
        default_vmm_path(vmm, sizeof(vmm));
    if ((r = workers_start(&w, cfg->workers ? cfg->workers : 1)) < 0)
        goto out;
    workers_up = true;

    /* the compute manager over the KVM driver; reconciled before the API listens */
    char images_dir[4200];
    snprintf(images_dir, sizeof(images_dir), "%s/images", cfg->state_dir);
    /* the networks' bridges and DHCP first: builds and adopted instances use them */
    if ((r = agent_net_start(&an, cfg, db)) < 0)
        goto out;
    net_up = true;
    size_t nnets;
    const struct kova_net_def *nets = agent_net_defs(&an, &nnets);
    struct kova_compute_config cc = {.db = db,
                                     .submit = submit,
                                     .submit_opaque = &w,
                                     .networks = nets,
                                     .nnetworks = nnets,
                                     .dhcp_domain = cfg->dhcp_domain,
                                     .ports_changed = agent_net_ports_changed,
                                     .ports_opaque = &an};
    struct kova_kvm_driver_config kc = {
        .state_dir = cfg->state_dir,
        .images_dir = images_dir,
        .vmm_path = vmm,
        .vmm_user = cfg->vmm_user,
        .vmm_uid_range = cfg->vmm_uid_range,
        .shutdown_timeout = cfg->shutdown_timeout,
        .boot_timeout = cfg->boot_timeout ? cfg->boot_timeout : 60,
    };
    if ((r = kova_compute_new(&cc, &compute)) < 0 ||
        (r = kova_kvm_driver_new(&kc, kova_compute_instance_exited, compute, &driver)) < 0 ||
        (r = kova_compute_start(compute, driver)) < 0) {
        fprintf(stderr, "kova-agent: cannot start the instance lifecycle: %s\n", strerror(-r));
        goto out;
    }
    agent_net_reconcile(&an); /* after the VMMs nobody owns are gone: their taps with them */

    if (strcmp(cfg->auth_strategy, "keystone") == 0) {
        const struct kova_keystone_config kcfg = {
            .auth_url = cfg->ks.auth_url,
            .username = cfg->ks.username,
            .password = cfg->ks.password,
            .project_name = cfg->ks.project_name,
            .user_domain_name = cfg->ks.user_domain_name,
            .project_domain_name = cfg->ks.project_domain_name,
            .cache_time = cfg->ks.token_cache_time,
            .cache_size = cfg->ks.cache_size,
            .timeout_ms = cfg->ks.http_request_timeout * 1000,
        };
        if (strcmp(cfg->ks.auth_type, "password") != 0) {
            fprintf(stderr, "kova-agent: [keystone_authtoken] auth_type %s: only password\n",
                    cfg->ks.auth_type);
            r = -EINVAL;
            goto out;
        }
        if ((r = kova_keystone_new(&kcfg, &keystone)) < 0) {
            fprintf(stderr,
                    "kova-agent: auth_strategy keystone needs [keystone_authtoken] auth_url "
                    "(http:// or https://), username, password and project_name\n");
            goto out;
        }
    }

    struct kova_api_config ac = {
        .listen_host = cfg->listen_host,
        .listen_port = cfg->listen_port,
        .image_host = cfg->image_host,
        .image_port = cfg->image_port,
        .state_dir = cfg->state_dir,
        .auth_strategy = cfg->auth_strategy,
        .keystone = keystone,
        .www_authenticate_uri =
            cfg->ks.www_authenticate_uri[0] ? cfg->ks.www_authenticate_uri : cfg->ks.auth_url,
        .host_name = cfg->host_name,
        .availability_zone = cfg->availability_zone,
        .threads = cfg->api_threads,
        .max_body = cfg->max_body,
        .max_connections = cfg->max_connections,
        .connection_timeout = cfg->connection_timeout,
        .max_header_size = cfg->max_header_size,
        .max_image_size = cfg->max_image_size,
        .import_allowed_networks = cfg->import_allowed_networks,
        .import_allowed_ports = cfg->import_allowed_ports,
        .max_limit = cfg->max_limit,
        .quota_instances = cfg->quota_instances,
        .quota_cores = cfg->quota_cores,
        .quota_ram = cfg->quota_ram,
        .quota_key_pairs = cfg->quota_key_pairs,
        .quota_metadata_items = cfg->quota_metadata_items,
        .force_config_drive = cfg->force_config_drive,
        .compute = compute,
        .networks = nets,
        .nnetworks = nnets,
        .ports_changed = agent_net_ports_changed,
        .ports_opaque = &an,
        .verbose = cfg->log_level,
        .submit = submit,
        .submit_opaque = &w,
    };
    if ((r = kova_api_start(&ac, db, &api)) < 0)
        goto out;
    /* the metadata service: per network on 169.254.169.254, or on the address configured */
    if (!cfg->metadata_off && (cfg->metadata_host[0] || nnets)) {
        struct kova_mdsvc_config mc = {
            .db = db,
            .networks = nets,
            .nnetworks = nnets,
            .dhcp_domain = cfg->dhcp_domain,
            .host = cfg->metadata_host,
            .port = cfg->metadata_port,
        };
        char err[512] = "";
        if ((r = kova_mdsvc_start(&mc, &mdsvc, err, sizeof(err))) < 0) {
            fprintf(stderr, "kova-agent: %s\n", err[0] ? err : strerror(-r));
            goto out;
        }
    }
    /* after listening (a failed start must not leave tasks behind) */
    int n = kova_compute_resume(compute);
    if (n > 0)
        kova_log(1, "%d build(s)/delete(s) left by a previous run: running them again", n);
    bool v6 = strchr(cfg->listen_host, ':') != NULL, iv6 = strchr(cfg->image_host, ':') != NULL;
    fprintf(stderr, "kova-agent: compute API on http://%s%s%s:%u/v2.1", v6 ? "[" : "",
            cfg->listen_host, v6 ? "]" : "", cfg->listen_port);
    if (cfg->image_port)
        fprintf(stderr, ", image API on http://%s%s%s:%u/v2", iv6 ? "[" : "", cfg->image_host,
                iv6 ? "]" : "", cfg->image_port);
    fprintf(stderr, ", state in %s (schema %d)\n", cfg->state_dir, kova_db_schema_version(db));

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
        r = -EINTR;
    fprintf(stderr, "kova-agent: signal %d, stopping\n", sig);
    r = 0;
out:
    kova_mdsvc_stop(mdsvc);
    kova_api_quiesce(api); /* in-flight requests finish; nothing new is queued */
    if (workers_up)
        workers_stop(&w); /* queued tasks finish: they use the api and the db */
    kova_api_stop(api);
    if (driver)
        driver->ops->free(driver); /* its monitor calls into compute: it goes first */
    kova_compute_free(compute);
    if (net_up)
        agent_net_stop(&an);
    kova_keystone_free(keystone);
    kova_db_close(db);
    return r;
}
