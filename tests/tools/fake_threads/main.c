/* fake-threads: the command line, signals, start-up and shutdown. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "fake.h"

typedef struct {
    const char *host;
    struct sockaddr_in sa, tls_sa; /* tls_sa's family is 0 without --tls-port */
    const char *client_id, *client_secret;
    const char *tls_cert, *tls_key; /* files */
} ft_args_t;

/* Thousands of benchmark connections need more descriptors than the usual 1024. */
static void ft_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void ft_usage(FILE *out)
{
    fputs("usage: fake-threads [--host 127.0.0.1] [--port N] [--oauth-client-id ID]\n"
          "                    [--oauth-client-secret SECRET]\n"
          "                    [--tls-port N --tls-cert PEM_FILE --tls-key PEM_FILE]\n"
          "A fake Threads API for tests. Prints \"LISTENING http://HOST:PORT\" once bound\n"
          "(port 0, the default, lets the kernel pick) and runs until SIGTERM or SIGINT.\n"
          "With --tls-port it also serves the same state over HTTPS with that certificate\n"
          "(and its chain) and key, and prints \"LISTENING_TLS https://HOST:PORT\" first.\n",
          out);
}

/* Fills args from the command line. Returns -1 to exit with *rc (0 after
 * --help, 2 on bad usage, already reported), 0 to run. */
static int ft_args_parse(int argc, char **argv, ft_args_t *args, int *rc)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"oauth-client-id", required_argument, NULL, 'i'},
                                         {"oauth-client-secret", required_argument, NULL, 's'},
                                         {"tls-port", required_argument, NULL, 't'},
                                         {"tls-cert", required_argument, NULL, 'c'},
                                         {"tls-key", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    long port = 0, tls_port = -1;
    char *end;
    int opt;

    *args = (ft_args_t){.host = "127.0.0.1",
                        .sa = {.sin_family = AF_INET},
                        .client_id = "pw-client",
                        .client_secret = "pw-secret"};
    *rc = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            args->host = optarg;
            break;
        case 'p':
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 65535) {
                fprintf(stderr, "fake-threads: --%s must be 0..65535\n",
                        opt == 'p' ? "port" : "tls-port");
                return -1;
            }
            *(opt == 'p' ? &port : &tls_port) = v;
            break;
        }
        case 'c':
            args->tls_cert = optarg;
            break;
        case 'k':
            args->tls_key = optarg;
            break;
        case 'i':
            args->client_id = optarg;
            break;
        case 's':
            args->client_secret = optarg;
            break;
        case 'H':
            ft_usage(stdout);
            *rc = 0;
            return -1;
        default:
            ft_usage(stderr);
            return -1;
        }
    }
    if (optind < argc || inet_pton(AF_INET, args->host, &args->sa.sin_addr) != 1) {
        fprintf(stderr, "fake-threads: --host must be an IPv4 address\n");
        return -1;
    }
    args->sa.sin_port = htons((uint16_t)port);
    if ((tls_port >= 0) != (args->tls_cert && args->tls_key)) {
        fprintf(stderr, "fake-threads: --tls-port, --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (tls_port >= 0) {
        args->tls_sa = args->sa;
        args->tls_sa.sin_port = htons((uint16_t)tls_port);
    }
    return 0;
}

/* A whole PEM file as a string (libmicrohttpd takes certificates in memory);
 * NULL after saying why. Caller frees. */
static char *ft_read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0, n;

    if (!f) {
        perror(path);
        return NULL;
    }
    do {
        if (cap - len < 4096)
            text = ft_xrealloc(text, cap = cap * 2 + 4096);
        n = fread(text + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    text[len] = '\0';
    return text;
}

/* The HTTPS listener, sharing st with the plain one; NULL after saying why.
 * pem gets the certificate and key texts, which the daemon uses (it copies
 * neither) until it stops; the caller frees them then. */
static struct MHD_Daemon *ft_tls_start(ft_state_t *st, const ft_args_t *args, char *pem[2],
                                       uint16_t *port)
{
    struct MHD_Daemon *d = NULL;

    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "fake-threads: this libmicrohttpd has no TLS\n");
        return NULL;
    }
    if ((pem[0] = ft_read_pem(args->tls_cert)) && (pem[1] = ft_read_pem(args->tls_key)) &&
        !(d = ft_http_start(st, &args->tls_sa, pem[0], pem[1], port)))
        fprintf(stderr, "fake-threads: cannot serve TLS on %s:%u with %s and %s\n", args->host,
                (unsigned)ntohs(args->tls_sa.sin_port), args->tls_cert, args->tls_key);
    return d;
}

/* Blocks the stop signals in every thread; main waits for them with sigwait().
 * A shell starts background jobs with SIGINT ignored, and an ignored signal is
 * discarded before sigwait() can see it: restore the defaults first. */
static void ft_signals_block(sigset_t *sigs)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(sigs);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    ft_args_t args;
    ft_state_t *st;
    struct MHD_Daemon *d = NULL, *tls = NULL;
    char *pem[2] = {NULL, NULL};
    uint16_t port, tls_port;
    sigset_t sigs;
    int rc, sig;

    if (ft_args_parse(argc, argv, &args, &rc) != 0)
        return rc;
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = ft_xmalloc, .free_fn = free});
    ft_raise_nofile();
    ft_signals_block(&sigs); /* before any thread starts, so that all inherit the mask */
    st = ft_state_new(args.client_id, args.client_secret);

    rc = 1;
    if (args.tls_sa.sin_family && !(tls = ft_tls_start(st, &args, pem, &tls_port)))
        goto fail;
    if (!(d = ft_http_start(st, &args.sa, NULL, NULL, &port))) {
        fprintf(stderr, "fake-threads: cannot listen on %s:%u\n", args.host,
                (unsigned)ntohs(args.sa.sin_port));
        goto fail;
    }
    /* LISTENING last: a reader that waits for it finds both. */
    if (tls)
        printf("LISTENING_TLS https://%s:%u\n", args.host, (unsigned)tls_port);
    printf("LISTENING http://%s:%u\n", args.host, (unsigned)port);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    ft_state_stop(st); /* ends injected hangs, which MHD_stop_daemon() would wait for */
    rc = 0;
fail:
    if (d)
        MHD_stop_daemon(d); /* waits for every connection thread */
    if (tls)
        MHD_stop_daemon(tls);
    free(pem[0]);
    free(pem[1]);
    ft_state_destroy(st);
    return rc;
}
