/* A tiny HTTP/1.1 server on a loopback port, for unit tests of the HTTP
 * client and the API calls: one connection at a time, each closed after its
 * answer.
 *
 *   .../size/N...     200 with N bytes and a Content-Length
 *   .../chunked/N...  200 with N bytes in chunks, no Content-Length
 *   anything else     the answer set with http_server_answer() */
#ifndef PW_TEST_HTTP_SERVER_H
#define PW_TEST_HTTP_SERVER_H

/** @brief Starts the server thread; returns its port, or -1. */
int http_server_start(void);
void http_server_stop(void);
/** @brief The status and body (copied) of the answer to other paths; set it
 *  before the request. */
void http_server_answer(int status, const char *body);
/** @brief http_server_answer() with more header lines (each ending in
 *  "\r\n"; copied), e.g. a WWW-Authenticate challenge. */
void http_server_answer_with(int status, const char *headers, const char *body);

#endif
