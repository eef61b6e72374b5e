/* Token input: how an operator hands a token to token put.
 *
 * Reads the access token (and, for oauth2, the refresh token) from stdin or
 * a file, a line each of any length up to 1 MiB, without echo on a terminal
 * and as operators paste it: surrounding white space and a leading
 * "Bearer " removed. Every buffer that held a token is wiped before it is
 * freed, and the stream is unbuffered so that no stdio buffer keeps a copy. */
#include "token_input.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "pw.h"

/* A token line longer than this is no token (and no reason to fill memory). */
#define PW_TOKEN_LINE_MAX (1024 * 1024)

/* Reads one line of in, of any length below PW_TOKEN_LINE_MAX, without its
 * line end: NULL at the end of input before any byte, or (with *too_long)
 * past the limit. Every buffer it outgrows is wiped before it is freed. */
static char *pw_read_line(FILE *in, bool *too_long)
{
    size_t cap = 256, len = 0;
    char *buf = pw_malloc(cap);
    int c;
    *too_long = false;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (len + 1 == cap) {
            if (cap >= PW_TOKEN_LINE_MAX) {
                *too_long = true;
                break;
            }
            char *bigger = pw_malloc(cap * 2);
            memcpy(bigger, buf, len);
            OPENSSL_cleanse(buf, cap);
            free(buf);
            buf = bigger;
            cap *= 2;
        }
        buf[len++] = (char)c;
    }
    buf[len] = '\0';
    if (*too_long || (c == EOF && len == 0)) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The token in a line as operators paste it: surrounding white space (and
 * the \r of a CRLF line) and a leading "Bearer " removed. NULL when nothing
 * is left. */
static pw_secret_t *pw_token_clean(const char *line)
{
    static const char space[] = " \t\r\n\v\f";
    line += strspn(line, space);
    if (strncasecmp(line, "Bearer", 6) == 0 && line[6] && strchr(space, line[6]))
        line += 6 + strspn(line + 6, space);
    size_t len = strlen(line);
    while (len > 0 && strchr(space, line[len - 1]))
        len--;
    return len > 0 ? pw_secret_new(line, len) : NULL;
}

/* ---- no echo on a terminal ----
 * While a token is typed or pasted on a terminal, echo is off, so that it
 * stays out of the scrollback and of a shared screen. A signal that ends the
 * command first turns echo back on. */

static struct termios pw_tty_saved;
static volatile sig_atomic_t pw_tty_fd = -1;
static const int pw_tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
static struct sigaction pw_tty_old_actions[PW_ARRAY_SIZE(pw_tty_signals)];

static void pw_echo_restore(void)
{
    if (pw_tty_fd >= 0)
        tcsetattr(pw_tty_fd, TCSANOW, &pw_tty_saved); /* async-signal-safe */
    pw_tty_fd = -1;
}

static void pw_echo_on_signal(int sig)
{
    pw_echo_restore();
    signal(sig, SIG_DFL);
    raise(sig); /* dies of it as it would have, after the handler returns */
}

/* Echo back on, and the signals' actions as they were. */
static void pw_echo_on(void)
{
    pw_echo_restore();
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_tty_signals); i++)
        sigaction(pw_tty_signals[i], &pw_tty_old_actions[i], NULL);
}

/* Turns echo off when fd is a terminal; returns whether it did. */
static bool pw_echo_off(int fd)
{
    struct termios quiet;
    if (!isatty(fd) || tcgetattr(fd, &pw_tty_saved) == -1)
        return false;
    struct sigaction sa = {.sa_handler = pw_echo_on_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_tty_signals); i++)
        sigaction(pw_tty_signals[i], &sa, &pw_tty_old_actions[i]);
    quiet = pw_tty_saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    pw_tty_fd = fd;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) == -1) {
        pw_echo_on();
        return false;
    }
    return true;
}

/* Reads the token's line from in, hidden on a terminal (prompting on
 * stderr). Returns 0 with *out (NULL for an empty line or no input), or -1
 * after a message. */
static int pw_read_secret_line(FILE *in, const char *what, pw_secret_t **out)
{
    bool hidden = pw_echo_off(fileno(in));
    if (hidden)
        fprintf(stderr, "%s (not shown): ", what);
    bool too_long;
    char *line = pw_read_line(in, &too_long);
    if (hidden) {
        pw_echo_on();
        fputc('\n', stderr); /* the Enter was not echoed either */
    }
    *out = line ? pw_token_clean(line) : NULL;
    if (line) {
        OPENSSL_cleanse(line, strlen(line));
        free(line);
    }
    if (too_long)
        fprintf(stderr, "publish-worker: token put: the %s is longer than 1 MiB\n", what);
    return too_long ? -1 : 0;
}

/* Reads the access token, and for oauth2 the refresh token, from stdin or
 * --token-file; returns 0 or the exit code (2) after a message. */
int pw_token_input_read(const char *token_file, bool oauth2, pw_token_t *token)
{
    FILE *in = token_file ? fopen(token_file, "r") : stdin;
    if (!in) {
        fprintf(stderr, "publish-worker: --token-file: cannot open %s: %s\n", token_file,
                strerror(errno));
        return 2;
    }
    setvbuf(in, NULL, _IONBF, 0); /* no stdio buffer keeps a copy of the token */
    int rc = pw_read_secret_line(in, "access token", &token->access_token);
    if (rc == 0 && token->access_token && oauth2)
        rc = pw_read_secret_line(in, "refresh token", &token->refresh_token);
    if (token_file)
        fclose(in);
    if (rc == 0 && (!token->access_token || (oauth2 && !token->refresh_token))) {
        fprintf(stderr, "publish-worker: token put: expected the access token%s on %s\n",
                oauth2 ? " then the refresh token, a line each" : "",
                token_file ? token_file : "stdin");
        rc = -1;
    }
    return rc == 0 ? 0 : 2;
}
