/* SPDX-License-Identifier: Apache-2.0 */
/* kova-vmm's log lines go through the one logger of kova/common.h (set up once in vmm.c with
 * the program name "kova-vmm" and --log-level); these are its short names inside the VMM. */
#ifndef KOVA_VMM_LOG_H
#define KOVA_VMM_LOG_H

#include "kova/common.h"

#define log_err(...)   kova_log(KOVA_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  kova_log(KOVA_LOG_WARNING, __VA_ARGS__)
#define log_info(...)  kova_log(KOVA_LOG_INFO, __VA_ARGS__)
#define log_debug(...) kova_log(KOVA_LOG_DEBUG, __VA_ARGS__)

#endif
