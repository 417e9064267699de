/* SPDX-License-Identifier: Apache-2.0 */
#include "serial.h"

#include <errno.h>
#include <string.h>
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

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* a full disk or a closed stdout must not stop the guest */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void flush_locked(struct serial *s)
{
    if (s->buf_len == 0)
        return;
    for (int i = 0; i < 2; i++)
        if (s->out_fds[i] >= 0)
            write_all(s->out_fds[i], s->buf, s->buf_len);
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

void serial_init(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                 int stdout_fd)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->irq = irq;
    s->gsi = gsi;
    s->out_fds[0] = log_fd;
    s->out_fds[1] = stdout_fd;
    s->mcr = 0x08;
}

void serial_destroy(struct serial *s)
{
    serial_flush(s);
    pthread_mutex_destroy(&s->lock);
}
