/* Fuzz target: publish.request.v1 parsing and validation (common/request.c).
 *
 * Input: one Kafka message value, as the pipeline hands it over (not
 * NUL-terminated). Seeds: schemas/examples/ and seeds/request/.
 * Invariants: exactly one outcome; a dead letter has one of the four classes
 * and no request; an answered request has its three ids; a valid one obeys
 * every rule of the contract (ids of 1 to 128 characters, account_id of
 * [A-Za-z0-9._:-], text length, links, media fields, carousel size); the
 * reason is a terminated, valid UTF-8 string (it goes into a result or a
 * dead letter's header); only JSON texts are answered. */
#include "fuzz.h"
#include "request.h"

static int pw_fuzz_http_url(const char *url)
{
    return url && ((strncmp(url, "http://", 7) == 0 && url[7]) ||
                   (strncmp(url, "https://", 8) == 0 && url[8]));
}

/* Code points of valid UTF-8. */
static size_t pw_fuzz_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* A JSON text (RFC 8259) holds no control character but its whitespace:
 * inside strings they must be escaped. */
static int pw_fuzz_json_controls_ok(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (data[i] < 0x20 && data[i] != '\t' && data[i] != '\n' && data[i] != '\r')
            return 0;
    return 1;
}

static void pw_fuzz_check_answered(const pw_request_t *req)
{
    PW_FUZZ_CHECK(req->event_id && req->event_id[0] && pw_fuzz_utf8(req->event_id));
    PW_FUZZ_CHECK(req->post_id && req->post_id[0] && pw_fuzz_utf8(req->post_id));
    PW_FUZZ_CHECK(req->account_id && req->account_id[0] && pw_fuzz_utf8(req->account_id));
    PW_FUZZ_CHECK(req->media_type <= PW_MEDIA_CAROUSEL);
    PW_FUZZ_CHECK(pw_media_name(req->media_type) != NULL);
}

static void pw_fuzz_check_valid(const pw_request_t *req)
{
    PW_FUZZ_CHECK(pw_fuzz_chars(req->event_id) <= 128);
    PW_FUZZ_CHECK(pw_fuzz_chars(req->post_id) <= 128);
    PW_FUZZ_CHECK(pw_account_id_valid(req->account_id));
    if (req->text) {
        PW_FUZZ_CHECK(pw_fuzz_utf8(req->text));
        PW_FUZZ_CHECK(pw_request_text_length(req->text) <= PW_TEXT_MAX);
    }
    PW_FUZZ_CHECK(pw_request_link_count(req->text, req->link_attachment) <= PW_LINKS_MAX);
    PW_FUZZ_CHECK(!req->link_attachment || pw_fuzz_http_url(req->link_attachment));
    switch (req->media_type) {
    case PW_MEDIA_TEXT:
        PW_FUZZ_CHECK(req->text && req->text[0]);
        break;
    case PW_MEDIA_IMAGE:
        PW_FUZZ_CHECK(pw_fuzz_http_url(req->image_url));
        break;
    case PW_MEDIA_VIDEO:
        PW_FUZZ_CHECK(pw_fuzz_http_url(req->video_url));
        break;
    case PW_MEDIA_CAROUSEL:
        PW_FUZZ_CHECK(req->child_count >= PW_CAROUSEL_MIN && req->child_count <= PW_CAROUSEL_MAX);
        for (size_t i = 0; i < req->child_count; i++) {
            PW_FUZZ_CHECK(req->children[i].media_type == PW_MEDIA_IMAGE ||
                          req->children[i].media_type == PW_MEDIA_VIDEO);
            PW_FUZZ_CHECK(pw_fuzz_http_url(req->children[i].url));
        }
        return;
    }
    PW_FUZZ_CHECK(req->child_count == 0 && req->children == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_request_t *req = (pw_request_t *)&req; /* not NULL: the parser must set it */
    const char *cls = "unset";
    char errstr[512]; /* the pipeline's size */
    memset(errstr, 'x', sizeof(errstr));
    pw_req_status_t st = pw_request_parse(data, size, &req, &cls, errstr, sizeof(errstr));
    switch (st) {
    case PW_REQ_DEAD_LETTER:
        PW_FUZZ_CHECK(req == NULL);
        PW_FUZZ_CHECK(cls &&
                      (strcmp(cls, "not_json") == 0 || strcmp(cls, "not_object") == 0 ||
                       strcmp(cls, "unknown_schema") == 0 || strcmp(cls, "missing_id") == 0));
        break;
    case PW_REQ_INVALID:
    case PW_REQ_VALID:
        PW_FUZZ_CHECK(req != NULL && cls == NULL);
        PW_FUZZ_CHECK(pw_fuzz_json_controls_ok(data, size));
        pw_fuzz_check_answered(req);
        if (st == PW_REQ_VALID)
            pw_fuzz_check_valid(req);
        break;
    default:
        PW_FUZZ_CHECK(!"pw_request_parse returned an unknown status");
    }
    if (st != PW_REQ_VALID) {
        /* The reason goes into a result or a dead letter's header. */
        PW_FUZZ_CHECK(pw_fuzz_terminated(errstr, sizeof(errstr)) && errstr[0]);
        PW_FUZZ_CHECK(pw_fuzz_utf8(errstr));
    }
    pw_request_destroy(req);
    return 0;
}
