/* Events: builders of the contract's outgoing JSON. */
#include "events.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "pw.h"

static char *pw_event_print(cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!text)
        abort(); /* cJSON fails only on allocation */
    return text;
}

static void pw_event_add_time(cJSON *obj, const char *name, int64_t at_ms)
{
    char buf[40];
    pw_format_time_ms(at_ms, buf, sizeof(buf));
    cJSON_AddStringToObject(obj, name, buf);
}

char *pw_event_account_new(const char *type, const char *account_id, int64_t at_ms)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "schema", "account.event.v1");
    cJSON_AddStringToObject(obj, "type", type);
    cJSON_AddStringToObject(obj, "account_id", account_id);
    pw_event_add_time(obj, "at", at_ms);
    return pw_event_print(obj);
}
