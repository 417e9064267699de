/* SPDX-License-Identifier: Apache-2.0 */
#include "serial.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UART_RBR_THR 0
#define UART_IER     1
#define UART_IIR_FCR 2
#define UART_LCR     3
#define UART_MCR     4
#define UART_LSR     5
#define UART_MSR     6
#define UART_SCR     7

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

static void flush_locked(struct serial *s)
{
    if (s->buf_len == 0)
        return;
    if (s->rotating) {
        int before = s->log.fd;
        /* errors are dropped: a full disk must not stop the guest */
        (void)kova_console_write(&s->log, s->buf, s->buf_len);
        if (s->log.fd != before && s->log.fd >= 0)
            dup3(s->log.fd, s->out_fds[0], O_CLOEXEC); /* rotated: follow the new log */
    } else if (s->out_fds[0] >= 0) {
        (void)kova_write_all(s->out_fds[0], s->buf,
                             s->buf_len); /* a full disk must not stop the guest */
    }
    if (s->out_fds[1] >= 0)
        (void)kova_write_all(s->out_fds[1], s->buf, s->buf_len);
    s->buf_len = 0;
}

void serial_flush(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    flush_locked(s);
    pthread_mutex_unlock(&s->lock);
}

static void update_irq(struct serial *s)
{
    int level = (s->ier & IER_THRI) && s->thre_pending;
    if (level != s->irq_level) {
        s->irq_level = level;
        if (s->irq)
            s->irq->set_level(s->irq->opaque, s->gsi, level);
    }
}

static void serial_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    struct serial *s = opaque;
    memset(data, 0, size);
    pthread_mutex_lock(&s->lock);
    uint8_t v = 0;
    switch (off) {
    case UART_RBR_THR:
        v = (s->lcr & LCR_DLAB) ? s->dll : 0;
        break;
    case UART_IER:
        v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
        break;
    case UART_IIR_FCR:
        if ((s->ier & IER_THRI) && s->thre_pending) {
            v = IIR_THRI;
            s->thre_pending = 0; /* reading IIR acknowledges THRE */
        } else {
            v = IIR_NONE;
        }
        v |= s->iir_fifo;
        update_irq(s);
        break;
    case UART_LCR:
        v = s->lcr;
        break;
    case UART_MCR:
        v = s->mcr;
        break;
    case UART_LSR:
        v = LSR_THRE | LSR_TEMT;
        break;
    case UART_MSR:
        if (s->mcr & MCR_LOOP) {
            /* loopback: CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2 */
            v = (uint8_t)(((s->mcr & 0x02) << 3) | ((s->mcr & 0x01) << 5) | ((s->mcr & 0x04) << 4) |
                          ((s->mcr & 0x08) << 4));
        } else {
            v = 0xb0; /* DCD, DSR, CTS */
        }
        break;
    case UART_SCR:
        v = s->scr;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    data[0] = v;
}

static void serial_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct serial *s = opaque;
    uint8_t v = data[0];
    pthread_mutex_lock(&s->lock);
    switch (off) {
    case UART_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            s->dll = v;
            break;
        }
        if (!(s->mcr & MCR_LOOP)) {
            s->buf[s->buf_len++] = v;
            if (v == '\n' || s->buf_len == sizeof(s->buf))
                flush_locked(s);
        }
        s->thre_pending = 1; /* transmitted at once: the holding register is empty again */
        update_irq(s);
        break;
    case UART_IER:
        if (s->lcr & LCR_DLAB) {
            s->dlm = v;
            break;
        }
        if (!(s->ier & IER_THRI) && (v & IER_THRI))
            s->thre_pending = 1;
        s->ier = v & 0x0f;
        update_irq(s);
        /* Linux writes IER at the end of each console message and of each transmit burst: a
         * line with no newline yet (a login prompt) reaches the log then, not at the next one */
        flush_locked(s);
        break;
    case UART_IIR_FCR:
        s->iir_fifo = (v & 0x01) ? 0xc0 : 0;
        break;
    case UART_LCR:
        s->lcr = v;
        break;
    case UART_MCR:
        s->mcr = v & 0x1f;
        break;
    case UART_SCR:
        s->scr = v;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&s->lock);
}

const struct bus_ops serial_ops = {serial_read, serial_write};

/* Sets up the rotating writer when log_fd is a regular file, the one named `name` in `dir_fd`
 * (when dir_fd < 0: the file its /proc/self/fd link names, if that path still leads to it). */
static int open_rotating(struct serial *s, int log_fd, int dir_fd, const char *name,
                         uint64_t max_size, unsigned backups)
{
    char link[64], path[KOVA_CONSOLE_PATH_MAX];
    struct stat fst, pst;
    int own_dir = -1, r;
    if (fstat(log_fd, &fst) < 0)
        return -errno;
    if (!S_ISREG(fst.st_mode))
        return -ENOTSUP;
    if (dir_fd < 0) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", log_fd);
        ssize_t n = readlink(link, path, sizeof(path));
        if (n < 0)
            return -errno;
        if ((size_t)n >= sizeof(path))
            return -ENAMETOOLONG;
        path[n] = 0;
        char *slash = strrchr(path, '/');
        if (path[0] != '/' || !slash)
            return -ENOENT; /* deleted (" (deleted)") or not a path */
        *slash = 0;
        own_dir = open(slash == path ? "/" : path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (own_dir < 0)
            return -errno;
        dir_fd = own_dir;
        name = slash + 1;
    }
    /* deleted or replaced: not the file any more */
    if (!name || fstatat(dir_fd, name, &pst, AT_SYMLINK_NOFOLLOW) < 0 || pst.st_dev != fst.st_dev ||
        pst.st_ino != fst.st_ino) {
        r = -ENOENT;
        goto out;
    }
    int fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    r = kova_console_openat(&s->log, dir_fd, name, fd, max_size, backups);
    if (r < 0) {
        close(fd);
        goto out;
    }
    s->rotating = true;
out:
    if (own_dir >= 0)
        close(own_dir);
    return r;
}

void serial_init_at(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                    int dir_fd, const char *name, int stdout_fd, uint64_t max_size,
                    unsigned backups)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->irq = irq;
    s->gsi = gsi;
    s->out_fds[0] = log_fd;
    s->out_fds[1] = stdout_fd;
    s->log.fd = s->log.dirfd = -1;
    s->mcr = 0x08;
    if (log_fd >= 0 && open_rotating(s, log_fd, dir_fd, name, max_size, backups) < 0)
        s->rotating = false; /* written plainly */
}

void serial_init_rotating(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                          int stdout_fd, uint64_t max_size, unsigned backups)
{
    serial_init_at(s, irq, gsi, log_fd, -1, NULL, stdout_fd, max_size, backups);
}

void serial_init(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                 int stdout_fd)
{
    serial_init_rotating(s, irq, gsi, log_fd, stdout_fd, 0, KOVA_CONSOLE_BACKUPS);
}

void serial_destroy(struct serial *s)
{
    serial_flush(s);
    if (s->rotating)
        kova_console_close(&s->log);
    pthread_mutex_destroy(&s->lock);
}

static int serial_create(const struct device_kind *kind, const struct dev_env *env,
                         const struct dev_config *cfg, unsigned index, void **dev, const char **why)
{
    struct serial *s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (cfg->console_name)
        serial_init_at(s, env->irq, GSI_COM1, cfg->console_fd, cfg->console_dir_fd,
                       cfg->console_name, cfg->stdout_fd, 0, KOVA_CONSOLE_BACKUPS);
    else
        serial_init(s, env->irq, GSI_COM1, cfg->console_fd, cfg->stdout_fd);
    int r = bus_register(env->pio, PIO_COM1, 8, &serial_ops, s, "com1");
    if (r < 0) {
        serial_destroy(s);
        free(s);
        return r;
    }
    *dev = s;
    return 0;
}

static void serial_kind_destroy(const struct device_kind *kind, void *dev)
{
    serial_destroy(dev);
    free(dev);
}

const struct device_kind serial_kind = {
    .name = "com1",
    .why = "cannot register the devices",
    .create = serial_create,
    .destroy = serial_kind_destroy,
};
