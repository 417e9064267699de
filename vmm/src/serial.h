/* SPDX-License-Identifier: Apache-2.0 */
/* 8250/16550A UART on COM1: output to the console log (appended) and optionally stdout.
 * No input: the receiver stays empty. */
#ifndef KOVA_VMM_SERIAL_H
#define KOVA_VMM_SERIAL_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"
#include "irq.h"

struct serial {
    pthread_mutex_t lock;
    uint8_t ier, iir_fifo, lcr, mcr, scr, dll, dlm;
    int thre_pending;
    int irq_level;
    uint32_t gsi;
    const struct irq_sink *irq;
    int out_fds[2]; /* -1 when unused */
    uint8_t buf[512];
    size_t buf_len;
};

extern const struct bus_ops serial_ops;

void serial_init(struct serial *s, const struct irq_sink *irq, uint32_t gsi, int log_fd,
                 int stdout_fd);
void serial_flush(struct serial *s);
void serial_destroy(struct serial *s);

#endif
