/* SPDX-License-Identifier: Apache-2.0 */
/* The control protocol's server side (kova/vmm_control.h): line framing, JSON parsing and the
 * replies; what each command does is the caller's handler. */
#include "kova/common.h"
#include "kova/vmm_control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void kova_ctl_init(struct kova_ctl_server *s)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
    for (int i = 0; i < KOVA_CTL_MAX_CLIENTS; i++)
        s->clients[i].fd = -1;
}

int kova_ctl_listen(struct kova_ctl_server *s, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    chmod(path, 0600);
    s->listen_fd = fd;
    snprintf(s->path, sizeof(s->path), "%s", path);
    return 0;
}

int kova_ctl_add_client(struct kova_ctl_server *s, int fd)
{
    for (int i = 0; i < KOVA_CTL_MAX_CLIENTS; i++) {
        if (s->clients[i].fd < 0) {
            s->clients[i].fd = fd;
            s->clients[i].len = 0;
            s->clients[i].overlong = 0;
            return 0;
        }
    }
    return -ENOSPC;
}

size_t kova_ctl_pollfds(struct kova_ctl_server *s, struct pollfd *pfds, size_t max)
{
    size_t n = 0;
    if (s->listen_fd >= 0 && n < max)
        pfds[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    for (int i = 0; i < KOVA_CTL_MAX_CLIENTS && n < max; i++)
        if (s->clients[i].fd >= 0)
            pfds[n++] = (struct pollfd){.fd = s->clients[i].fd, .events = POLLIN};
    return n;
}

static json_t *error_reply(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *kova_ctl_handle_line(const char *line, size_t len, kova_ctl_handler h, void *opaque)
{
    json_error_t err;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (!req)
        return error_reply("malformed JSON");
    json_t *reply;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!json_is_object(req))
        reply = error_reply("a request is a JSON object");
    else if (!cmd)
        reply = error_reply("missing \"cmd\" string");
    else
        reply = h(opaque, cmd, req);
    if (!reply)
        reply = error_reply("internal error");
    json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    if (id)
        json_object_set(reply, "id", id);
    json_decref(req);
    return reply;
}

static void drop(struct kova_ctl_client *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static void send_reply(struct kova_ctl_client *c, json_t *reply)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    if (!text)
        return;
    size_t n = strlen(text);
    const char *p = text;
    size_t left = n;
    /* Replies are small; a client that does not read them is dropped. */
    while (left > 0) {
        ssize_t w = send(c->fd, p, left, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            drop(c);
            free(text);
            return;
        }
        p += w;
        left -= (size_t)w;
    }
    if (send(c->fd, "\n", 1, MSG_NOSIGNAL) != 1)
        drop(c);
    free(text);
}

static void client_input(struct kova_ctl_client *c, kova_ctl_handler h, void *opaque)
{
    char tmp[1024];
    ssize_t r = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        drop(c);
        return;
    }
    for (ssize_t i = 0; i < r && c->fd >= 0; i++) {
        char ch = tmp[i];
        if (ch == '\n') {
            if (c->overlong) {
                send_reply(c, error_reply("request line too long"));
            } else {
                size_t len = c->len;
                while (len > 0 && (c->buf[len - 1] == '\r' || c->buf[len - 1] == ' '))
                    len--;
                if (len > 0)
                    send_reply(c, kova_ctl_handle_line(c->buf, len, h, opaque));
            }
            c->len = 0;
            c->overlong = 0;
        } else if (!c->overlong) {
            if (c->len == sizeof(c->buf))
                c->overlong = 1;
            else
                c->buf[c->len++] = ch;
        }
    }
}

void kova_ctl_process(struct kova_ctl_server *s, const struct pollfd *pfds, size_t n,
                      kova_ctl_handler h, void *opaque)
{
    for (size_t i = 0; i < n; i++) {
        if (!pfds[i].revents)
            continue;
        if (pfds[i].fd == s->listen_fd) {
            int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0 && kova_ctl_add_client(s, fd) < 0) {
                kova_log(0, "control: too many clients");
                close(fd);
            }
            continue;
        }
        for (int k = 0; k < KOVA_CTL_MAX_CLIENTS; k++)
            if (s->clients[k].fd == pfds[i].fd)
                client_input(&s->clients[k], h, opaque);
    }
}

void kova_ctl_close(struct kova_ctl_server *s)
{
    for (int i = 0; i < KOVA_CTL_MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0)
            drop(&s->clients[i]);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(s->path);
    }
    s->listen_fd = -1;
}
