/* Requests: parsing and validating publish.request.v1.
 *
 * DESIGN: three outcomes. A request that cannot be answered (not JSON, not
 * an object, another schema, or missing one of its three ids) goes to the
 * dead-letter topic with a class; one that names its ids but is otherwise
 * invalid is answered with a failed result of class invalid_request; the
 * rest are valid. Checks are in that order, so each input has exactly one
 * outcome (schemas/README.md states the same rule). */
#ifndef PW_REQUEST_H
#define PW_REQUEST_H

#include <stddef.h>

#include "pw.h"

typedef enum { PW_MEDIA_TEXT = 0, PW_MEDIA_IMAGE, PW_MEDIA_VIDEO, PW_MEDIA_CAROUSEL } pw_media_t;

typedef struct pw_child_s {
    pw_media_t media_type; /* IMAGE or VIDEO */
    char *url;
} pw_child_t;

typedef struct pw_request_s {
    char *event_id;
    char *post_id;
    char *account_id;
    pw_media_t media_type;
    char *text; /* NULL when absent; so are the other optional fields */
    char *image_url;
    char *video_url;
    char *reply_to_id;
    char *reply_control;
    char *link_attachment;
    pw_child_t *children;
    size_t child_count;
} pw_request_t;

typedef enum {
    PW_REQ_VALID = 0,
    PW_REQ_INVALID,    /* answer with failed/invalid_request: *out has the ids */
    PW_REQ_DEAD_LETTER /* *dlq_class says why; *out is NULL */
} pw_req_status_t;

#define PW_TEXT_MAX 500
#define PW_LINKS_MAX 5
#define PW_CAROUSEL_MIN 2
#define PW_CAROUSEL_MAX 20

/** @brief Parses and validates one message value.
 *  @returns the outcome; for VALID and INVALID *out is the request (caller
 *  frees with pw_request_destroy()); for INVALID and DEAD_LETTER errstr says
 *  why, and for DEAD_LETTER *dlq_class is "not_json", "not_object",
 *  "unknown_schema" or "missing_id" (a static string). */
pw_req_status_t pw_request_parse(const void *data, size_t len, pw_request_t **out,
                                 const char **dlq_class, char *errstr, size_t errstr_size);
void pw_request_destroy(pw_request_t *req);

const char *pw_media_name(pw_media_t media);

/** @brief Text length as Threads counts it: Unicode code points, except that
 *  an emoji counts as its UTF-8 bytes. Input must be valid UTF-8. */
size_t pw_request_text_length(const char *text);
/** @brief Links in the text (http:// or https://) plus a link attachment not
 *  already among them. */
int pw_request_link_count(const char *text, const char *link_attachment);
/** @brief 1 when data is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int pw_utf8_valid(const unsigned char *data, size_t len);

#endif
