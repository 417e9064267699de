/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket: a unix stream socket; each client sends one JSON object per line and gets
 * one JSON object per line back. Malformed input gets an error reply; it never stops the VMM.
 */
#ifndef KOVA_VMM_CONTROL_H
#define KOVA_VMM_CONTROL_H

#include <jansson.h>
#include <poll.h>
#include <stddef.h>

#define CTL_MAX_CLIENTS 8
#define CTL_LINE_MAX    4096

/* Returns a new reply object for request req whose "cmd" is cmd. */
typedef json_t *(*ctl_handler)(void *opaque, const char *cmd, json_t *req);

struct ctl_client {
    int fd;
    size_t len;
    int overlong; /* discarding the rest of a line that was too long */
    char buf[CTL_LINE_MAX];
};

struct ctl_server {
    int listen_fd;
    char path[108];
    struct ctl_client clients[CTL_MAX_CLIENTS];
};

void ctl_init(struct ctl_server *s);
/* Binds and listens on path (an existing socket file there is replaced). 0 or -errno. */
int ctl_listen(struct ctl_server *s, const char *path);
/* Adopts an already connected socket as a client (tests). 0 or -ENOSPC. */
int ctl_add_client(struct ctl_server *s, int fd);
/* Fills pfds (at most max) and returns how many. */
size_t ctl_pollfds(struct ctl_server *s, struct pollfd *pfds, size_t max);
/* Handles the ready fds among pfds[0..n). */
void ctl_process(struct ctl_server *s, const struct pollfd *pfds, size_t n, ctl_handler h,
                 void *opaque);
/* Answers one request line (for the socket and for tests): a new reply object. */
json_t *ctl_handle_line(const char *line, size_t len, ctl_handler h, void *opaque);
void ctl_close(struct ctl_server *s);

#endif
