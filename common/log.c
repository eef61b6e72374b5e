/* Logging: JSON lines on stdout, one write per line. */
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw.h"

pw_log_level_t pw_log_min_level = PW_LOG_INFO;
static char *pw_log_worker_id;
static FILE *pw_log_stream;

static const char *const pw_log_level_names[] = {"debug", "info", "warn", "error"};

void pw_log_init(pw_log_level_t level, const char *worker_id)
{
    pw_log_min_level = level;
    free(pw_log_worker_id);
    pw_log_worker_id = worker_id ? pw_strdup(worker_id) : NULL;
}

void pw_log_set_stream(FILE *out)
{
    pw_log_stream = out;
}

int pw_log_level_parse(const char *name, pw_log_level_t *level)
{
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_log_level_names); i++) {
        if (strcmp(name, pw_log_level_names[i]) == 0) {
            *level = (pw_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void pw_log_write(pw_log_level_t level, const char *msg, const pw_log_field_t *fields, int count)
{
    char ts[32];
    pw_format_time_ms(pw_now_ms(), ts, sizeof(ts));

    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "ts", ts);
    cJSON_AddStringToObject(line, "level", pw_log_level_names[level]);
    cJSON_AddStringToObject(line, "msg", msg);
    if (pw_log_worker_id)
        cJSON_AddStringToObject(line, "worker_id", pw_log_worker_id);
    for (int i = 0; i < count; i++) {
        const pw_log_field_t *f = &fields[i];
        switch (f->type) {
        case PW_LOGF_STR:
            if (f->s)
                cJSON_AddStringToObject(line, f->key, f->s);
            else
                cJSON_AddNullToObject(line, f->key);
            break;
        case PW_LOGF_INT:
            cJSON_AddNumberToObject(line, f->key, (double)f->i);
            break;
        case PW_LOGF_BOOL:
            cJSON_AddBoolToObject(line, f->key, f->i != 0);
            break;
        case PW_LOGF_NULL:
            cJSON_AddNullToObject(line, f->key);
            break;
        }
    }
    char *text = cJSON_PrintUnformatted(line);
    if (!text)
        pw_abort("cJSON could not print a log line: out of memory");
    /* One locked write keeps lines whole when threads log at once. */
    FILE *out = pw_log_stream ? pw_log_stream : stdout;
    flockfile(out);
    fputs(text, out);
    fputc('\n', out);
    fflush(out);
    funlockfile(out);
    free(text);
    cJSON_Delete(line);
}
