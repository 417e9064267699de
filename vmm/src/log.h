/* SPDX-License-Identifier: Apache-2.0 */
/* Levelled logging to stderr. One process-wide level: the VMM process has one log. */
#ifndef KOVA_VMM_LOG_H
#define KOVA_VMM_LOG_H

enum vlog_level { VLOG_ERROR, VLOG_WARN, VLOG_INFO, VLOG_DEBUG };

void vlog_set_level(enum vlog_level level);
/* Parses "error", "warn", "info", "debug"; returns -EINVAL for anything else. */
int vlog_parse_level(const char *name, enum vlog_level *out);
void vlog(enum vlog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   vlog(VLOG_ERROR, __VA_ARGS__)
#define log_warn(...)  vlog(VLOG_WARN, __VA_ARGS__)
#define log_info(...)  vlog(VLOG_INFO, __VA_ARGS__)
#define log_debug(...) vlog(VLOG_DEBUG, __VA_ARGS__)

#endif
