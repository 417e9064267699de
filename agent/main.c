/* SPDX-License-Identifier: Apache-2.0 */
/* kova-agent: the Nova-compatible compute agent. */
#include "kova/agent.h"
#include "kova/common.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kova-agent [--config FILE] [--listen HOST:PORT] [--image-listen HOST:PORT]\n"
            "                  [--no-image-service] [--state-dir DIR] [--auth-strategy noauth2]\n"
            "                  [--log-level warning|info|debug] [--vmm PATH]\n"
            "                  [--shutdown-timeout SECONDS]\n"
            "Defaults: --listen 127.0.0.1:8774 --image-listen 127.0.0.1:9292 "
            "--state-dir /var/lib/kova\n");
}

int main(int argc, char **argv)
{
    struct kova_agent_config cfg;
    kova_agent_config_defaults(&cfg);
    /* The config file first, whatever its position, so the command line overrides it. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            if (kova_agent_config_load(&cfg, argv[i + 1]) < 0)
                return 1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--no-image-service") == 0) {
            cfg.image_port = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "kova-agent: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--config") == 0) {
            continue;
        } else if (strcmp(a, "--listen") == 0) {
            if (kova_agent_parse_listen(v, cfg.listen_host, sizeof(cfg.listen_host),
                                        &cfg.listen_port) < 0) {
                fprintf(stderr, "kova-agent: bad --listen %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--image-listen") == 0) {
            if (kova_agent_parse_listen(v, cfg.image_host, sizeof(cfg.image_host),
                                        &cfg.image_port) < 0) {
                fprintf(stderr, "kova-agent: bad --image-listen %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--state-dir") == 0) {
            if (strlen(v) >= sizeof(cfg.state_dir) || !v[0]) {
                fprintf(stderr, "kova-agent: bad --state-dir\n");
                return 2;
            }
            snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", v);
        } else if (strcmp(a, "--auth-strategy") == 0) {
            if (strlen(v) >= sizeof(cfg.auth_strategy)) {
                fprintf(stderr, "kova-agent: bad --auth-strategy\n");
                return 2;
            }
            snprintf(cfg.auth_strategy, sizeof(cfg.auth_strategy), "%s", v);
        } else if (strcmp(a, "--vmm") == 0) {
            if (strlen(v) >= sizeof(cfg.vmm_path) || !v[0]) {
                fprintf(stderr, "kova-agent: bad --vmm\n");
                return 2;
            }
            snprintf(cfg.vmm_path, sizeof(cfg.vmm_path), "%s", v);
        } else if (strcmp(a, "--shutdown-timeout") == 0) {
            char *end;
            unsigned long t = strtoul(v, &end, 10);
            if (*end || !v[0] || t > 3600) {
                fprintf(stderr, "kova-agent: bad --shutdown-timeout\n");
                return 2;
            }
            cfg.shutdown_timeout = (unsigned)t;
        } else if (strcmp(a, "--log-level") == 0) {
            if (kova_log_level_parse(v, &cfg.log_level) < 0) {
                fprintf(stderr, "kova-agent: bad --log-level %s\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "kova-agent: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    /* Block the stop signals in every thread; kova_agent_run() waits for them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return kova_agent_run(&cfg) == 0 ? 0 : 1;
}
