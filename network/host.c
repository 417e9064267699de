/* SPDX-License-Identifier: Apache-2.0 */
/* The host side of kova's networks (kova/network.h kova_net_host_*): bridges, masquerade, one
 * supervised dnsmasq per network with its static leases, the sweep of stray taps.
 *
 * dnsmasq runs in the foreground as our child (its own session, so that a Ctrl-C of the agent
 * does not reach it), logging to its stderr, which is <run_dir>/<uuid>.log. Only this library
 * waits for it, by pid (the agent has other children it reaps itself). It drops to user nobody
 * unless run_dir cannot be reached by nobody (then --user=root: it must re-read its hosts file on
 * SIGHUP, after dropping privileges). */
#include "kova/network.h"
#include "kova/common.h"
#include "nl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_DIR_MAX   200 /* so that every <run_dir>/<uuid>.<ext> fits PATH_LEN */
#define PATH_LEN      256
#define START_WAIT_MS 5000 /* for dnsmasq's pid file at start */
#define STOP_WAIT_MS  2000 /* SIGTERM, then SIGKILL */
#define LEASE_TIME    "86400s"
#define HOSTS_LINE    (KOVA_NET_MAC_LEN + 1 + KOVA_NET_IP_STRLEN + 64 + 2)

struct net {
    const struct kova_net_def *def;
    pid_t pid;               /* 0: not running */
    struct timespec started; /* the last start, CLOCK_MONOTONIC */
    char *hosts;             /* the hosts file's content */
};

struct kova_net_host {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: wakes the supervisor to stop */
    pthread_t thread;
    bool thread_started;
    bool stopping;
    bool as_root; /* dnsmasq keeps root: nobody cannot reach run_dir */
    size_t n;
    struct kova_net_def defs[KOVA_NET_MAX];
    struct net nets[KOVA_NET_MAX];
    char run_dir[RUN_DIR_MAX];
    char dnsmasq[PATH_LEN];
    char iptables[PATH_LEN];
};

static void net_path(const struct kova_net_host *h, const struct net *n, const char *ext,
                     char out[PATH_LEN])
{
    snprintf(out, PATH_LEN, "%s/%s.%s", h->run_dir, n->def->uuid, ext);
}

static double elapsed_s(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    nanosleep(&ts, NULL);
}

/* name if it has a '/', else the first executable name in $PATH, /usr/sbin or /sbin. */
static int find_exe(const char *name, char out[PATH_LEN])
{
    if (strchr(name, '/')) {
        if (strlen(name) >= PATH_LEN)
            return -ENAMETOOLONG;
        snprintf(out, PATH_LEN, "%s", name);
        return access(out, X_OK) ? -errno : 0;
    }
    const char *env = getenv("PATH");
    char path[4096];
    snprintf(path, sizeof(path), "%s:/usr/sbin:/sbin", env ? env : "/usr/bin:/bin");
    for (char *save, *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (snprintf(out, PATH_LEN, "%s/%s", dir, name) < PATH_LEN && !access(out, X_OK))
            return 0;
    }
    return -ENOENT;
}

/* Up to n-1 bytes of a small file, NUL-terminated: its length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t r, len = 0;
    while ((size_t)len < n - 1 && (r = read(fd, buf + len, n - 1 - (size_t)len)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            r = -errno;
            close(fd);
            return r;
        }
        len += r;
    }
    close(fd);
    buf[len] = '\0';
    return len;
}

/* Whether user nobody may search every directory from / down to dir. */
static bool world_searchable(const char *dir)
{
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return false;
    for (char *p = real;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = '\0';
            struct stat st;
            if (stat(real[0] ? real : "/", &st) < 0 || !(st.st_mode & S_IXOTH))
                return false;
            *p = c;
            if (!c)
                return true;
        }
    }
}

/* ---- child processes ---- */

/* argv[0] in its own session, stdout and stderr to out (-1: /dev/null): kova_spawn. */
static pid_t spawn(const char *const *argv, int out)
{
    return kova_spawn(argv, NULL, out, true);
}

/* Runs argv to its end: its exit status (128 + signal when killed) or -errno. */
static int run_wait(const char *const *argv, int out)
{
    pid_t pid = spawn(argv, out);
    if (pid < 0)
        return pid;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether pid is gone: no such process, or a zombie (of a parent that does not reap it). */
static bool proc_gone(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small(path, stat, sizeof(stat)) < 0)
        return true;
    const char *p = strrchr(stat, ')');
    return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

/* ---- masquerade ---- */

static int masquerade(struct kova_net_host *h, const struct kova_net_def *d, char *err,
                      size_t errlen)
{
    int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
    int r = fd < 0 ? -errno : kova_write_all(fd, "1\n", 2);
    if (fd >= 0)
        close(fd);
    if (r < 0)
        return kova_err(err, errlen, r, "network %s: cannot set net.ipv4.ip_forward: %s", d->name,
                        strerror(-r));
    if (!h->iptables[0] && (r = find_exe("iptables", h->iptables)) < 0)
        return kova_err(err, errlen, r, "network %s: masquerade: no iptables found", d->name);
    char net[KOVA_NET_IP_STRLEN], cidr[KOVA_NET_IP_STRLEN + 4];
    kova_net_ip_format(d->net, net);
    snprintf(cidr, sizeof(cidr), "%s/%u", net, d->prefix);
    const char *argv[] = {h->iptables,   "-w", "-t",         "nat", "-C", "POSTROUTING",
                          "-s",          cidr, "!",          "-d",  cidr, "-o",
                          d->masquerade, "-j", "MASQUERADE", NULL};
    r = run_wait(argv, -1);
    if (r == 0)
        return 0; /* the rule is there already */
    if (r != 1)
        return kova_err(err, errlen, r < 0 ? r : -EIO,
                        "network %s: iptables -t nat -C failed (status %d)", d->name, r);
    argv[4] = "-A";
    r = run_wait(argv, 2);
    if (r != 0)
        return kova_err(err, errlen, r < 0 ? r : -EIO,
                        "network %s: iptables -t nat -A POSTROUTING ... -j MASQUERADE failed "
                        "(status %d)",
                        d->name, r);
    kova_log(KOVA_LOG_INFO, "network %s: masquerading %s out of %s", d->name, cidr, d->masquerade);
    return 0;
}

/* ---- the bridge ---- */

static int bridge_setup(const struct kova_net_def *d, uint32_t metadata_ip, char *err,
                        size_t errlen)
{
    struct nl_link l;
    int r = nl_link_get(d->bridge, &l);
    if (r == -ENODEV) {
        /* A MAC of its own, set once: a bridge without one takes its lowest port's, and
         * changes it when that port (a guest's tap) goes, which leaves every other guest's ARP
         * entry for the gateway stale until it expires. 02:..: locally administered, from the
         * network's uuid (stable across agent restarts). */
        uint8_t mac[6] = {0x02};
        unsigned nib = 0;
        for (const char *c = d->uuid; *c && nib < 10; c++) {
            int v = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
            if (v < 0)
                continue;
            mac[1 + nib / 2] = (uint8_t)(mac[1 + nib / 2] << 4 | (unsigned)v);
            nib++;
        }
        r = nl_bridge_add(d->bridge, d->mtu, mac);
        if (r < 0 && r != -EEXIST)
            return kova_err(err, errlen, r, "network %s: cannot create bridge %s: %s", d->name,
                            d->bridge, strerror(-r));
        if (r == 0)
            kova_log(KOVA_LOG_INFO, "network %s: bridge %s created", d->name, d->bridge);
        r = nl_link_get(d->bridge, &l);
    }
    if (r < 0)
        return kova_err(err, errlen, r, "network %s: bridge %s: %s", d->name, d->bridge,
                        strerror(-r));
    if (strcmp(l.kind, "bridge"))
        return kova_err(err, errlen, -EEXIST, "network %s: %s exists and is not a bridge", d->name,
                        d->bridge);
    if ((r = nl_link_set(l.index, d->mtu, 0, true)) < 0)
        return kova_err(err, errlen, r, "network %s: cannot set bridge %s up (mtu %u): %s", d->name,
                        d->bridge, d->mtu, strerror(-r));
    if ((r = nl_addr_add(l.index, d->gateway, d->prefix)) < 0) {
        char gw[KOVA_NET_IP_STRLEN];
        kova_net_ip_format(d->gateway, gw);
        return kova_err(err, errlen, r, "network %s: cannot add %s/%u to %s: %s", d->name, gw,
                        d->prefix, d->bridge, strerror(-r));
    }
    if (metadata_ip && (r = nl_addr_add(l.index, metadata_ip, 32)) < 0) {
        char ip[KOVA_NET_IP_STRLEN];
        kova_net_ip_format(metadata_ip, ip);
        return kova_err(err, errlen, r, "network %s: cannot add %s/32 to %s: %s", d->name, ip,
                        d->bridge, strerror(-r));
    }
    return 0;
}

/* ---- dnsmasq ---- */

/* Writes the hosts file (tmp + rename, mode 0644: dnsmasq re-reads it as nobody). */
static int hosts_write(const struct kova_net_host *h, const struct net *n, const char *content)
{
    char path[PATH_LEN], tmp[PATH_LEN + 8];
    net_path(h, n, "hosts", path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    int r = kova_write_all(fd, content, strlen(content));
    if (r == 0 && fchmod(fd, 0644) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

/* Starts n's dnsmasq (not waiting for it to be ready); truncate: a fresh log. */
static int dnsmasq_spawn(struct kova_net_host *h, struct net *n, bool truncate)
{
    const struct kova_net_def *d = n->def;
    char hosts[PATH_LEN], leases[PATH_LEN], pidf[PATH_LEN], logp[PATH_LEN];
    net_path(h, n, "hosts", hosts);
    net_path(h, n, "leases", leases);
    net_path(h, n, "pid", pidf);
    net_path(h, n, "log", logp);
    char gw[KOVA_NET_IP_STRLEN], net[KOVA_NET_IP_STRLEN], mask[KOVA_NET_IP_STRLEN];
    kova_net_ip_format(d->gateway, gw);
    kova_net_ip_format(d->net, net);
    kova_net_ip_format(d->prefix ? ~0u << (32 - d->prefix) : 0, mask);

    char a[12][PATH_LEN + 32];
    int k = 0;
    snprintf(a[k++], sizeof(a[0]), "--interface=%s", d->bridge);
    snprintf(a[k++], sizeof(a[0]), "--listen-address=%s", gw);
    snprintf(a[k++], sizeof(a[0]), "--dhcp-range=%s,static,%s,%s", net, mask, LEASE_TIME);
    snprintf(a[k++], sizeof(a[0]), "--dhcp-hostsfile=%s", hosts);
    snprintf(a[k++], sizeof(a[0]), "--dhcp-leasefile=%s", leases);
    snprintf(a[k++], sizeof(a[0]), "--pid-file=%s", pidf);
    snprintf(a[k++], sizeof(a[0]), "--dhcp-option=option:router,%s", gw);
    snprintf(a[k++], sizeof(a[0]), "--dhcp-option=option:mtu,%u", d->mtu);
    if (d->ndns) {
        int len = snprintf(a[k], sizeof(a[0]), "--dhcp-option=option:dns-server");
        for (unsigned i = 0; i < d->ndns; i++) {
            char ip[KOVA_NET_IP_STRLEN];
            kova_net_ip_format(d->dns[i], ip);
            len += snprintf(a[k] + len, sizeof(a[0]) - (size_t)len, ",%s", ip);
        }
        k++;
    }
    const char *argv[32] = {h->dnsmasq,          "--keep-in-foreground",  "--conf-file=/dev/null",
                            "--port=0",          "--no-resolv",           "--no-hosts",
                            "--bind-interfaces", "--except-interface=lo", "--dhcp-authoritative",
                            "--log-facility=-"};
    int argc = 10;
    if (h->as_root)
        argv[argc++] = "--user=root";
    for (int i = 0; i < k; i++)
        argv[argc++] = a[i];
    argv[argc] = NULL;

    clock_gettime(CLOCK_MONOTONIC, &n->started);
    unlink(pidf); /* its pid there says it is ready */
    int logfd = open(
        logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | (truncate ? O_TRUNC : 0),
        0644);
    if (logfd < 0)
        return -errno;
    pid_t pid = spawn(argv, logfd);
    close(logfd);
    if (pid < 0)
        return pid;
    n->pid = pid;
    return 0;
}

/* Stops n's dnsmasq: SIGTERM, SIGKILL after STOP_WAIT_MS, reaped. */
static void dnsmasq_stop(struct net *n)
{
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGTERM);
    int st;
    for (int ms = 0; ms < STOP_WAIT_MS; ms += 10) {
        pid_t w = waitpid(n->pid, &st, WNOHANG);
        if (w == n->pid || (w < 0 && errno == ECHILD)) {
            n->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kova_log(KOVA_LOG_WARNING, "network %s: dnsmasq (pid %d) ignored SIGTERM, killing it",
             n->def->name, (int)n->pid);
    kill(n->pid, SIGKILL);
    while (waitpid(n->pid, &st, 0) < 0 && errno == EINTR) {
    }
    n->pid = 0;
}

/* The last line dnsmasq wrote to its log (why it exited). */
static void log_tail(const struct kova_net_host *h, const struct net *n, char *out, size_t len)
{
    char path[PATH_LEN];
    net_path(h, n, "log", path);
    kova_file_last_line(path, out, len);
    if (!out[0])
        snprintf(out, len, "no message");
}

/* Waits until n's dnsmasq has written its pid file (it has bound its sockets then). */
static int dnsmasq_wait(struct kova_net_host *h, struct net *n, char *err, size_t errlen)
{
    char pidf[PATH_LEN], buf[32];
    net_path(h, n, "pid", pidf);
    for (int ms = 0; ms < START_WAIT_MS; ms += 10) {
        int st;
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            char why[300];
            log_tail(h, n, why, sizeof(why));
            return kova_err(err, errlen, -EIO, "network %s: dnsmasq exited at once: %s",
                            n->def->name, why);
        }
        if (read_small(pidf, buf, sizeof(buf)) > 0 && atoi(buf) == n->pid)
            return 0;
        sleep_ms(10);
    }
    dnsmasq_stop(n);
    return kova_err(err, errlen, -ETIMEDOUT, "network %s: dnsmasq did not start in %d ms",
                    n->def->name, START_WAIT_MS);
}

/* Stops a dnsmasq that a previous agent left running for this network: the pid in the pid
 * file, when /proc says it is a dnsmasq started with that very pid file. */
static void stale_stop(const struct kova_net_host *h, const struct net *n)
{
    char pidf[PATH_LEN], buf[32];
    net_path(h, n, "pid", pidf);
    if (read_small(pidf, buf, sizeof(buf)) <= 0)
        return;
    int pid = atoi(buf);
    if (pid <= 1)
        return;
    char path[64], cmd[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    ssize_t len = read_small(path, cmd, sizeof(cmd));
    if (len <= 0)
        return;
    char want[PATH_LEN + 16];
    snprintf(want, sizeof(want), "--pid-file=%s", pidf);
    const char *base = strrchr(cmd, '/');
    bool dnsmasq = !strcmp(base ? base + 1 : cmd, "dnsmasq"), ours = false;
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(cmd + i) + 1)
        if (!strcmp(cmd + i, want))
            ours = true;
    if (!dnsmasq || !ours)
        return;
    kova_log(KOVA_LOG_WARNING, "network %s: stopping the dnsmasq (pid %d) a previous run left",
             n->def->name, pid);
    kill(pid, SIGTERM);
    for (int ms = 0; ms < STOP_WAIT_MS && !proc_gone(pid); ms += 10)
        sleep_ms(10);
    if (!proc_gone(pid)) {
        kill(pid, SIGKILL);
        for (int ms = 0; ms < STOP_WAIT_MS && !proc_gone(pid); ms += 10)
            sleep_ms(10);
    }
}

/* Whether n's dnsmasq has set up its signal handlers: it installs them first thing and writes
 * its pid file later, so a pid file naming n->pid means a SIGHUP rereads the hosts file (sent
 * earlier, it would kill the new dnsmasq). Waits up to READY_WAIT_MS for it. */
#define READY_WAIT_MS 3000
static bool dnsmasq_ready(const struct kova_net_host *h, const struct net *n)
{
    char pidf[PATH_LEN], buf[32];
    net_path(h, n, "pid", pidf);
    for (int ms = 0; ms <= READY_WAIT_MS; ms += 10) {
        if (n->pid > 0 && read_small(pidf, buf, sizeof(buf)) > 0 && atoi(buf) == (int)n->pid)
            return true;
        sleep_ms(10);
    }
    return false;
}

static void *supervise(void *arg)
{
    struct kova_net_host *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        for (size_t i = 0; i < h->n; i++) {
            struct net *n = &h->nets[i];
            int st = 0;
            pid_t w = n->pid > 0 ? waitpid(n->pid, &st, WNOHANG) : 0;
            if (n->pid > 0 && (w == n->pid || (w < 0 && errno == ECHILD))) {
                if (w < 0)
                    kova_log(KOVA_LOG_WARNING, "network %s: dnsmasq (pid %d) is gone", n->def->name,
                             (int)n->pid);
                else if (WIFSIGNALED(st))
                    kova_log(KOVA_LOG_WARNING, "network %s: dnsmasq (pid %d) killed by signal %d",
                             n->def->name, (int)n->pid, WTERMSIG(st));
                else
                    kova_log(KOVA_LOG_WARNING, "network %s: dnsmasq (pid %d) exited (status %d)",
                             n->def->name, (int)n->pid, WEXITSTATUS(st));
                n->pid = 0;
            }
            if (n->pid == 0 && elapsed_s(&n->started) >= 1.0) {
                int r = dnsmasq_spawn(h, n, false);
                if (r < 0)
                    kova_log(KOVA_LOG_ERROR, "network %s: cannot restart dnsmasq: %s", n->def->name,
                             strerror(-r));
                else
                    kova_log(KOVA_LOG_INFO, "network %s: dnsmasq restarted (pid %d)", n->def->name,
                             (int)n->pid);
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&h->cond, &h->lock, &until);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- the host ---- */

static void host_free(struct kova_net_host *h)
{
    if (h->thread_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    for (size_t i = 0; i < h->n; i++) {
        dnsmasq_stop(&h->nets[i]);
        free(h->nets[i].hosts);
    }
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

int kova_net_host_start(const struct kova_net_host_config *cfg, struct kova_net_host **out,
                        char *err, size_t errlen)
{
    if (!cfg->run_dir || !cfg->run_dir[0] || strlen(cfg->run_dir) >= RUN_DIR_MAX)
        return kova_err(err, errlen, -EINVAL, "network run dir: 1..%d characters expected",
                        RUN_DIR_MAX - 1);
    if (cfg->ndefs > KOVA_NET_MAX)
        return kova_err(err, errlen, -EINVAL, "%zu networks: at most %d", cfg->ndefs, KOVA_NET_MAX);
    int r = kova_net_defs_check(cfg->defs, cfg->ndefs, err, errlen);
    if (r < 0)
        return r;
    struct kova_net_host *h = calloc(1, sizeof(*h));
    if (!h)
        return kova_err(err, errlen, -ENOMEM, "out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->lock, NULL);
    snprintf(h->run_dir, sizeof(h->run_dir), "%s", cfg->run_dir);
    h->n = cfg->ndefs;
    for (size_t i = 0; i < h->n; i++) {
        h->defs[i] = cfg->defs[i];
        h->nets[i].def = &h->defs[i];
        if (!(h->nets[i].hosts = strdup(""))) {
            r = kova_err(err, errlen, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (h->n && (r = find_exe(cfg->dnsmasq ? cfg->dnsmasq : "dnsmasq", h->dnsmasq)) < 0) {
        kova_err(err, errlen, r, "cannot find dnsmasq (%s): %s",
                 cfg->dnsmasq ? cfg->dnsmasq : "dnsmasq-base", strerror(-r));
        goto fail;
    }
    if (mkdir(h->run_dir, 0755) < 0 && errno != EEXIST) {
        r = -errno;
        kova_err(err, errlen, r, "cannot create %s: %s", h->run_dir, strerror(-r));
        goto fail;
    }
    h->as_root = !world_searchable(h->run_dir);
    if (h->as_root && h->n)
        kova_log(KOVA_LOG_INFO, "network: user nobody cannot reach %s: dnsmasq stays root",
                 h->run_dir);

    for (size_t i = 0; i < h->n; i++) {
        const struct kova_net_def *d = &h->defs[i];
        if ((r = bridge_setup(d, cfg->metadata_ip, err, errlen)) < 0)
            goto fail;
        if (d->masquerade[0] && (r = masquerade(h, d, err, errlen)) < 0)
            goto fail;
    }
    for (size_t i = 0; i < h->n; i++) {
        struct net *n = &h->nets[i];
        char path[PATH_LEN];
        stale_stop(h, n);
        if ((r = hosts_write(h, n, "")) < 0) {
            net_path(h, n, "hosts", path);
            kova_err(err, errlen, r, "cannot write %s: %s", path, strerror(-r));
            goto fail;
        }
        if ((r = dnsmasq_spawn(h, n, true)) < 0) {
            kova_err(err, errlen, r, "network %s: cannot start dnsmasq: %s", n->def->name,
                     strerror(-r));
            goto fail;
        }
        if ((r = dnsmasq_wait(h, n, err, errlen)) < 0)
            goto fail;
        kova_log(KOVA_LOG_INFO, "network %s: bridge %s, dnsmasq pid %d", n->def->name,
                 n->def->bridge, (int)n->pid);
    }
    if ((r = -pthread_create(&h->thread, NULL, supervise, h)) < 0) {
        kova_err(err, errlen, r, "cannot start the dnsmasq supervisor: %s", strerror(-r));
        goto fail;
    }
    h->thread_started = true;
    *out = h;
    return 0;
fail:
    host_free(h);
    return r;
}

const struct kova_net_def *kova_net_host_defs(const struct kova_net_host *h, size_t *n)
{
    *n = h->n;
    return h->defs;
}

const struct kova_net_def *kova_net_host_find(const struct kova_net_host *h,
                                              const char *uuid_or_name)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcasecmp(h->defs[i].uuid, uuid_or_name) || !strcmp(h->defs[i].name, uuid_or_name))
            return &h->defs[i];
    return NULL;
}

int kova_net_host_dnsmasq_pid(struct kova_net_host *h, const char *uuid)
{
    int pid = 0;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n; i++)
        if (!strcasecmp(h->defs[i].uuid, uuid))
            pid = h->nets[i].pid;
    pthread_mutex_unlock(&h->lock);
    return pid;
}

static bool mac_ok(const char *m)
{
    for (int i = 0; i < KOVA_NET_MAC_LEN; i++)
        if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
            return false;
    return m[KOVA_NET_MAC_LEN] == '\0';
}

/* A hostname dnsmasq takes as one: [A-Za-z0-9-] (others become '-'), no '-' at either end, at
 * most 63 bytes; "" when nothing is left or dnsmasq would read it as something else (a lease
 * time such as "300" or "12h", "infinite", "ignore"). */
static void hostname_clean(const char *in, char out[64])
{
    size_t k = 0;
    for (size_t i = 0; in[i] && k < 63; i++)
        out[k++] = isalnum((unsigned char)in[i]) ? in[i] : '-';
    out[k] = '\0';
    while (k && out[k - 1] == '-')
        out[--k] = '\0';
    size_t lead = strspn(out, "-");
    memmove(out, out + lead, k - lead + 1);
    k -= lead;
    size_t digits = strspn(out, "0123456789");
    if ((digits && (digits == k || (digits + 1 == k && strchr("smhdwSMHDW", out[k - 1])))) ||
        !strcasecmp(out, "infinite") || !strcasecmp(out, "ignore"))
        out[0] = '\0';
}

static int lease_cmp(const void *a, const void *b)
{
    const struct kova_net_lease *x = *(const struct kova_net_lease *const *)a;
    const struct kova_net_lease *y = *(const struct kova_net_lease *const *)b;
    return x->ip < y->ip ? -1 : x->ip > y->ip ? 1 : strcasecmp(x->mac, y->mac);
}

/* The hosts file for network d: "MAC,IP[,HOSTNAME]" lines sorted by IP (malloc'd, NULL: out of
 * memory). Leases with a bad MAC or an IP outside d are left out, with a warning. */
static char *hosts_content(const struct kova_net_def *d, const struct kova_net_lease *l, size_t n)
{
    const struct kova_net_lease **mine = malloc((n ? n : 1) * sizeof(*mine));
    if (!mine)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!l[i].network_uuid || strcasecmp(l[i].network_uuid, d->uuid))
            continue;
        char ip[KOVA_NET_IP_STRLEN];
        kova_net_ip_format(l[i].ip, ip);
        if (!mac_ok(l[i].mac) || !kova_net_ip_usable(d, l[i].ip)) {
            kova_log(KOVA_LOG_WARNING, "network %s: lease %.17s %s left out: bad MAC or IP",
                     d->name, l[i].mac, ip);
            continue;
        }
        mine[k++] = &l[i];
    }
    qsort(mine, k, sizeof(*mine), lease_cmp);
    char *s = malloc(k * HOSTS_LINE + 1);
    if (s) {
        size_t len = 0;
        s[0] = '\0';
        for (size_t i = 0; i < k; i++) {
            char ip[KOVA_NET_IP_STRLEN], name[64];
            kova_net_ip_format(mine[i]->ip, ip);
            hostname_clean(mine[i]->hostname, name);
            len +=
                (size_t)sprintf(s + len, "%s,%s%s%s\n", mine[i]->mac, ip, name[0] ? "," : "", name);
        }
    }
    free(mine);
    return s;
}

/* Whether some line of old is not in new. */
static bool lines_removed(const char *old, const char *new)
{
    for (const char *p = old; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
        bool found = false;
        for (const char *q = new; *q && !found;) {
            const char *f = strchr(q, '\n');
            size_t flen = f ? (size_t)(f - q) + 1 : strlen(q);
            found = flen == len && !memcmp(p, q, len);
            q += flen;
        }
        if (!found)
            return true;
        p += len;
    }
    return false;
}

int kova_net_host_set_leases(struct kova_net_host *h, const struct kova_net_lease *l, size_t n)
{
    int ret = 0;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n; i++) {
        struct net *nt = &h->nets[i];
        char *s = hosts_content(nt->def, l, n);
        if (!s) {
            ret = -ENOMEM;
            continue;
        }
        if (!strcmp(s, nt->hosts)) {
            free(s);
            continue;
        }
        int r = hosts_write(h, nt, s);
        if (r < 0) {
            kova_log(KOVA_LOG_ERROR, "network %s: cannot write its hosts file: %s", nt->def->name,
                     strerror(-r));
            free(s);
            ret = ret ? ret : r;
            continue;
        }
        if (lines_removed(nt->hosts, s)) {
            /* dnsmasq keeps the leases it gave and would not hand a freed address to another
             * MAC while the old lease lasts: restart it without them (it is authoritative, so
             * clients that renew get their static address back). */
            char leases[PATH_LEN];
            net_path(h, nt, "leases", leases);
            dnsmasq_stop(nt);
            unlink(leases);
            if ((r = dnsmasq_spawn(h, nt, false)) < 0)
                kova_log(KOVA_LOG_ERROR, "network %s: cannot restart dnsmasq: %s", nt->def->name,
                         strerror(-r)); /* the supervisor tries again */
            else
                kova_log(KOVA_LOG_INFO, "network %s: a lease went: dnsmasq restarted (pid %d)",
                         nt->def->name, (int)nt->pid);
        } else if (nt->pid > 0 && dnsmasq_ready(h, nt)) {
            kill(nt->pid, SIGHUP);
        } else if (nt->pid > 0) { /* not answering signals yet: a new one reads the new file */
            dnsmasq_stop(nt);
            if ((r = dnsmasq_spawn(h, nt, false)) < 0)
                kova_log(KOVA_LOG_ERROR, "network %s: cannot restart dnsmasq: %s", nt->def->name,
                         strerror(-r));
        }
        free(nt->hosts);
        nt->hosts = s;
    }
    pthread_mutex_unlock(&h->lock);
    return ret;
}

struct sweep {
    const struct kova_net_host *h;
    int bridges[KOVA_NET_MAX];
    struct nl_link *taps;
    size_t ntaps, cap;
    int err;
};

static int sweep_fn(const struct nl_link *l, void *arg)
{
    struct sweep *s = arg;
    for (size_t i = 0; i < s->h->n; i++)
        if (!strcmp(l->name, s->h->defs[i].bridge))
            s->bridges[i] = l->index;
    if (strcmp(l->kind, "tun") || strncmp(l->name, "tap", 3) || !l->master)
        return 0;
    if (s->ntaps == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct nl_link *t = realloc(s->taps, cap * sizeof(*t));
        if (!t) {
            s->err = -ENOMEM;
            return 0;
        }
        s->taps = t;
        s->cap = cap;
    }
    s->taps[s->ntaps++] = *l;
    return 0;
}

int kova_net_host_sweep_taps(struct kova_net_host *h, const char *const *keep, size_t nkeep)
{
    struct sweep s = {.h = h};
    int r = nl_links(sweep_fn, &s);
    if (r < 0 || s.err < 0) {
        free(s.taps);
        return r < 0 ? r : s.err;
    }
    int deleted = 0;
    for (size_t i = 0; i < s.ntaps; i++) {
        const struct nl_link *t = &s.taps[i];
        bool ours = false, kept = false;
        for (size_t b = 0; b < h->n; b++)
            ours |= s.bridges[b] && s.bridges[b] == t->master;
        for (size_t k = 0; k < nkeep; k++)
            kept |= keep[k] && !strcmp(keep[k], t->name);
        if (!ours || kept)
            continue;
        int e = nl_link_del(t->index);
        if (e < 0 && e != -ENODEV) {
            kova_log(KOVA_LOG_WARNING, "network: cannot delete stray tap %s: %s", t->name,
                     strerror(-e));
            r = r < 0 ? r : e;
            continue;
        }
        kova_log(KOVA_LOG_INFO, "network: deleted stray tap %s", t->name);
        deleted++;
    }
    free(s.taps);
    return r < 0 ? r : deleted;
}

void kova_net_host_stop(struct kova_net_host *h)
{
    if (h)
        host_free(h);
}
