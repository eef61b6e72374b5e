/* Logging: JSON lines on stdout.
 *
 * DESIGN: one line per event, {"ts","level","msg","worker_id",...fields}. The
 * macros test the level before evaluating their arguments. Fields are typed
 * (string, integer, boolean) and there is no field type for pw_secret_t, so a
 * secret cannot reach a log line. Safe to call from any thread, including
 * librdkafka's. */
#ifndef PW_LOG_H
#define PW_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { PW_LOG_DEBUG = 0, PW_LOG_INFO, PW_LOG_WARN, PW_LOG_ERROR } pw_log_level_t;

typedef enum { PW_LOGF_STR, PW_LOGF_INT, PW_LOGF_BOOL, PW_LOGF_NULL } pw_log_field_type_t;

typedef struct pw_log_field_s {
    const char *key;
    pw_log_field_type_t type;
    const char *s;
    int64_t i;
} pw_log_field_t;

#define PW_F_STR(k, v) ((pw_log_field_t){.key = (k), .type = PW_LOGF_STR, .s = (v)})
#define PW_F_INT(k, v) ((pw_log_field_t){.key = (k), .type = PW_LOGF_INT, .i = (int64_t)(v)})
#define PW_F_BOOL(k, v) ((pw_log_field_t){.key = (k), .type = PW_LOGF_BOOL, .i = (v) ? 1 : 0})
/* An integer that the platform may not have given: negative means null. */
#define PW_F_OPT_INT(k, v)                                                                         \
    ((pw_log_field_t){.key = (k), .type = (v) < 0 ? PW_LOGF_NULL : PW_LOGF_INT, .i = (int64_t)(v)})

extern pw_log_level_t pw_log_min_level;

/** @brief Sets the level and the worker id stamped on every line (copied). */
void pw_log_init(pw_log_level_t level, const char *worker_id);
/** @brief Sends lines to out instead of stdout (the CLI keeps stdout for its
 *  own output). */
void pw_log_set_stream(FILE *out);
/** @brief Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int pw_log_level_parse(const char *name, pw_log_level_t *level);
void pw_log_write(pw_log_level_t level, const char *msg, const pw_log_field_t *fields, int count);

/* pw_log(level, msg, fields...): fields are PW_F_*() values. */
#define pw_log(level, msg, ...)                                                                    \
    do {                                                                                           \
        if ((level) >= pw_log_min_level) {                                                         \
            const pw_log_field_t pw_fields_[] = {PW_F_STR(NULL, NULL), ##__VA_ARGS__};             \
            pw_log_write((level), (msg), pw_fields_ + 1,                                           \
                         (int)(sizeof(pw_fields_) / sizeof(pw_fields_[0])) - 1);                   \
        }                                                                                          \
    } while (0)

#define pw_log_debug(msg, ...) pw_log(PW_LOG_DEBUG, msg, ##__VA_ARGS__)
#define pw_log_info(msg, ...) pw_log(PW_LOG_INFO, msg, ##__VA_ARGS__)
#define pw_log_warn(msg, ...) pw_log(PW_LOG_WARN, msg, ##__VA_ARGS__)
#define pw_log_error(msg, ...) pw_log(PW_LOG_ERROR, msg, ##__VA_ARGS__)

#endif
