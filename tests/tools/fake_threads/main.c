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
    struct sockaddr_in sa;
    const char *client_id, *client_secret;
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
          "A fake Threads API for tests. Prints \"LISTENING http://HOST:PORT\" once bound\n"
          "(port 0, the default, lets the kernel pick) and runs until SIGTERM or SIGINT.\n",
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
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    long port = 0;
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
            port = strtol(optarg, &end, 10);
            if (*end || end == optarg || port < 0 || port > 65535) {
                fprintf(stderr, "fake-threads: --port must be 0..65535\n");
                return -1;
            }
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
    return 0;
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
    struct MHD_Daemon *d;
    uint16_t port;
    sigset_t sigs;
    int rc, sig;

    if (ft_args_parse(argc, argv, &args, &rc) != 0)
        return rc;
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = ft_xmalloc, .free_fn = free});
    ft_raise_nofile();
    ft_signals_block(&sigs); /* before any thread starts, so that all inherit the mask */
    st = ft_state_new(args.client_id, args.client_secret);

    if (!(d = ft_http_start(st, &args.sa, &port))) {
        fprintf(stderr, "fake-threads: cannot listen on %s:%u\n", args.host,
                (unsigned)ntohs(args.sa.sin_port));
        ft_state_destroy(st);
        return 1;
    }
    printf("LISTENING http://%s:%u\n", args.host, (unsigned)port);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    ft_state_stop(st);  /* ends injected hangs, which MHD_stop_daemon() would wait for */
    MHD_stop_daemon(d); /* waits for every connection thread */
    ft_state_destroy(st);
    return 0;
}
