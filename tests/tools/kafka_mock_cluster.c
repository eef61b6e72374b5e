/*
 * kafka-mock-cluster: librdkafka's mock Kafka cluster as a process of its own,
 * so that tests, `deploy/dev demo` and developers get a Kafka cluster on
 * loopback without a JVM.
 *
 * DESIGN
 * The mock cluster lives inside an rd_kafka_t (a producer that never
 * produces); its brokers listen on 127.0.0.1 and speak the Kafka protocol to
 * any client, including the worker and Python's confluent_kafka. On start we
 * create the contract's topics, print
 *
 *     BOOTSTRAP 127.0.0.1:p1,127.0.0.1:p2,...
 *     CONTROL 127.0.0.1:port
 *
 * on stdout and then serve a line protocol, on that TCP port and on stdin,
 * that lets a test break the cluster on purpose:
 *
 *     topic NAME PARTITIONS [RF]        create a topic
 *     down ID | up ID                   take a broker down / bring it back
 *     rtt ID MS                         delay a broker's responses
 *     error APIKEY ERRCODE COUNT        fail the next COUNT requests of APIKEY
 *     clear APIKEY                      drop the errors still queued for APIKEY
 *     leader TOPIC PARTITION ID         move a partition's leader
 *     coordinator group|transaction KEY ID
 *     bootstrap | ping | help | quit
 *
 * Every command is answered with one line, `OK ...` or `ERR reason`. APIKEY
 * and ERRCODE are numbers or names (`Produce`, `NOT_LEADER_FOR_PARTITION`,
 * `_TRANSPORT` to make the broker drop the connection).
 *
 * One thread polls the control listener, its clients, stdin and a self-pipe
 * that SIGTERM/SIGINT write to; the mock cluster runs on librdkafka's own
 * threads and its API is safe to call from ours. EOF on stdin only stops
 * reading stdin, so `kafka-mock-cluster </dev/null &` keeps running.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define KMC_MAX_CLIENTS 64
#define KMC_LINE_MAX 1024
#define KMC_MAX_ARGS 8
#define KMC_DEFAULT_TOPICS                                                                         \
    "publish.requests,publish.results,publish.alerts,publish.dlq,account.events"

/* One control connection, or stdin (fd 0, answered on stdout). */
typedef struct kmc_client_s {
    int fd_in;
    int fd_out;
    size_t len;
    char buf[KMC_LINE_MAX];
} kmc_client_t;

typedef struct kmc_opts_s {
    int brokers;
    int partitions;
    int replication;
    int control_port;
    const char *topics;
} kmc_opts_t;

typedef struct kmc_s {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    int listen_fd;
    int brokers;
    bool stdin_open;
    bool quit;
    kmc_client_t stdin_client;
    kmc_client_t *clients[KMC_MAX_CLIENTS];
} kmc_t;

static int kmc_sigpipe[2] = {-1, -1};

static const struct {
    const char *name;
    int16_t key;
} kmc_apikeys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"SaslHandshake", 17},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"DeleteTopics", 20},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

static void kmc_usage(FILE *fp)
{
    fprintf(fp, "usage: kafka-mock-cluster [--brokers N] [--partitions N] [--replication N]\n"
                "                          [--control-port P] [--topics a,b,c]\n"
                "Runs librdkafka's mock Kafka cluster on 127.0.0.1 until SIGTERM, SIGINT\n"
                "or the `quit` command. Prints BOOTSTRAP and CONTROL lines on stdout, then\n"
                "serves a line-based control protocol on the CONTROL port and on stdin\n"
                "(send `help` for the commands).\n");
}

static void kmc_die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "kafka-mock-cluster: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *kmc_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p)
        abort();
    return p;
}

/* Parses a whole decimal number within [min, max]; returns 0 or -1. */
static int kmc_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int kmc_parse_apikey(const char *s, int16_t *keyp)
{
    long v;
    size_t i;

    if (kmc_parse_int(s, 0, INT16_MAX, &v) == 0) {
        *keyp = (int16_t)v;
        return 0;
    }
    for (i = 0; i < sizeof(kmc_apikeys) / sizeof(kmc_apikeys[0]); i++) {
        if (!strcasecmp(s, kmc_apikeys[i].name)) {
            *keyp = kmc_apikeys[i].key;
            return 0;
        }
    }
    return -1;
}

/* Accepts a number, `NOT_LEADER_FOR_PARTITION` or `RD_KAFKA_RESP_ERR_...`. */
static int kmc_parse_errcode(const char *s, rd_kafka_resp_err_t *errp)
{
    const struct rd_kafka_err_desc *descs;
    size_t cnt, i;
    long v;

    if (kmc_parse_int(s, INT_MIN, INT_MAX, &v) == 0) {
        *errp = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18))
        s += 18;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (i = 0; i < cnt; i++) {
        if (descs[i].name && !strcasecmp(s, descs[i].name)) {
            *errp = descs[i].code;
            return 0;
        }
    }
    return -1;
}

static void kmc_reply(kmc_client_t *client, const char *fmt, ...)
{
    char line[KMC_LINE_MAX + 64];
    va_list ap;
    size_t off = 0;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* Replies are short: a blocking write is fine, and a vanished client
     * (EPIPE, SIGPIPE is ignored) is noticed at its next read. */
    while (off < (size_t)n) {
        ssize_t w = write(client->fd_out, line + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

/* Turns an rd_kafka_resp_err_t of a mock call into the reply. */
static void kmc_reply_err(kmc_client_t *client, rd_kafka_resp_err_t err, const char *okmsg)
{
    if (err)
        kmc_reply(client, "ERR %s: %s", rd_kafka_err2name(err), rd_kafka_err2str(err));
    else
        kmc_reply(client, "OK %s", okmsg);
}

static int kmc_parse_broker(kmc_t *kmc, const char *s, int32_t *idp)
{
    long v;

    if (kmc_parse_int(s, 1, kmc->brokers, &v) == -1)
        return -1;
    *idp = (int32_t)v;
    return 0;
}

static void kmc_cmd_topic(kmc_t *kmc, kmc_client_t *client, int argc, char **argv)
{
    long parts, rf = 1;
    rd_kafka_resp_err_t err;

    if (argc < 3 || argc > 4 || kmc_parse_int(argv[2], 1, 10000, &parts) == -1 ||
        (argc == 4 && kmc_parse_int(argv[3], 1, kmc->brokers, &rf) == -1)) {
        kmc_reply(client, "ERR usage: topic NAME PARTITIONS [REPLICATION<=%d]", kmc->brokers);
        return;
    }
    err = rd_kafka_mock_topic_create(kmc->mcluster, argv[1], (int)parts, (int)rf);
    kmc_reply_err(client, err, argv[1]);
}

static void kmc_cmd_broker(kmc_t *kmc, kmc_client_t *client, int argc, char **argv)
{
    int32_t id;
    long ms = 0;
    rd_kafka_resp_err_t err;
    bool rtt = !strcmp(argv[0], "rtt");

    if (argc != (rtt ? 3 : 2) || kmc_parse_broker(kmc, argv[1], &id) == -1 ||
        (rtt && kmc_parse_int(argv[2], 0, 3600 * 1000, &ms) == -1)) {
        kmc_reply(client, "ERR usage: %s BROKER_ID(1..%d)%s", argv[0], kmc->brokers,
                  rtt ? " MS" : "");
        return;
    }
    if (rtt)
        err = rd_kafka_mock_broker_set_rtt(kmc->mcluster, id, (int)ms);
    else if (!strcmp(argv[0], "down"))
        err = rd_kafka_mock_broker_set_down(kmc->mcluster, id);
    else
        err = rd_kafka_mock_broker_set_up(kmc->mcluster, id);
    kmc_reply_err(client, err, argv[0]);
}

static void kmc_cmd_error(kmc_t *kmc, kmc_client_t *client, int argc, char **argv)
{
    int16_t apikey;
    rd_kafka_resp_err_t err, *errs;
    long cnt, i;

    if (argc != 4 || kmc_parse_apikey(argv[1], &apikey) == -1 ||
        kmc_parse_errcode(argv[2], &err) == -1 || kmc_parse_int(argv[3], 1, 100000, &cnt) == -1) {
        kmc_reply(client, "ERR usage: error APIKEY ERRCODE COUNT (names or numbers)");
        return;
    }
    errs = kmc_calloc((size_t)cnt, sizeof(*errs));
    for (i = 0; i < cnt; i++)
        errs[i] = err;
    rd_kafka_mock_push_request_errors_array(kmc->mcluster, apikey, (size_t)cnt, errs);
    free(errs);
    kmc_reply(client, "OK %ld x %s on apikey %d", cnt, rd_kafka_err2name(err), (int)apikey);
}

static void kmc_cmd_clear(kmc_t *kmc, kmc_client_t *client, int argc, char **argv)
{
    int16_t apikey;

    if (argc != 2 || kmc_parse_apikey(argv[1], &apikey) == -1) {
        kmc_reply(client, "ERR usage: clear APIKEY");
        return;
    }
    rd_kafka_mock_clear_request_errors(kmc->mcluster, apikey);
    kmc_reply(client, "OK cleared apikey %d", (int)apikey);
}

static void kmc_cmd_leader(kmc_t *kmc, kmc_client_t *client, int argc, char **argv)
{
    long part;
    int32_t id;
    rd_kafka_resp_err_t err;

    if (argc != 4 || kmc_parse_int(argv[2], 0, INT32_MAX, &part) == -1 ||
        kmc_parse_broker(kmc, argv[3], &id) == -1) {
        kmc_reply(client, "ERR usage: leader TOPIC PARTITION BROKER_ID");
        return;
    }
    err = rd_kafka_mock_partition_set_leader(kmc->mcluster, argv[1], (int32_t)part, id);
    kmc_reply_err(client, err, "leader");
}

static void kmc_cmd_coordinator(kmc_t *kmc, kmc_client_t *client, int argc, char **argv)
{
    int32_t id;
    rd_kafka_resp_err_t err;

    if (argc != 4 || (strcmp(argv[1], "group") && strcmp(argv[1], "transaction")) ||
        kmc_parse_broker(kmc, argv[3], &id) == -1) {
        kmc_reply(client, "ERR usage: coordinator group|transaction KEY BROKER_ID");
        return;
    }
    err = rd_kafka_mock_coordinator_set(kmc->mcluster, argv[1], argv[2], id);
    kmc_reply_err(client, err, "coordinator");
}

/* Splits a line on blanks in place; returns the word count. */
static int kmc_split(char *line, char **argv, int max)
{
    int argc = 0;
    char *save = NULL, *tok;

    for (tok = strtok_r(line, " \t\r", &save); tok && argc < max;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    return tok ? -1 : argc;
}

static void kmc_command(kmc_t *kmc, kmc_client_t *client, char *line)
{
    char *argv[KMC_MAX_ARGS];
    int argc = kmc_split(line, argv, KMC_MAX_ARGS);

    if (argc == 0)
        return; /* blank lines are ignored, not answered */
    if (argc < 0)
        kmc_reply(client, "ERR too many words");
    else if (!strcmp(argv[0], "ping"))
        kmc_reply(client, "OK pong");
    else if (!strcmp(argv[0], "bootstrap"))
        kmc_reply(client, "OK %s", rd_kafka_mock_cluster_bootstraps(kmc->mcluster));
    else if (!strcmp(argv[0], "topic"))
        kmc_cmd_topic(kmc, client, argc, argv);
    else if (!strcmp(argv[0], "down") || !strcmp(argv[0], "up") || !strcmp(argv[0], "rtt"))
        kmc_cmd_broker(kmc, client, argc, argv);
    else if (!strcmp(argv[0], "error"))
        kmc_cmd_error(kmc, client, argc, argv);
    else if (!strcmp(argv[0], "clear"))
        kmc_cmd_clear(kmc, client, argc, argv);
    else if (!strcmp(argv[0], "leader"))
        kmc_cmd_leader(kmc, client, argc, argv);
    else if (!strcmp(argv[0], "coordinator"))
        kmc_cmd_coordinator(kmc, client, argc, argv);
    else if (!strcmp(argv[0], "help"))
        kmc_reply(client, "OK commands: topic NAME PARTS [RF] | down ID | up ID | rtt ID MS | "
                          "error APIKEY ERRCODE COUNT | clear APIKEY | leader TOPIC PART ID | "
                          "coordinator group|transaction KEY ID | bootstrap | ping | quit");
    else if (!strcmp(argv[0], "quit")) {
        kmc_reply(client, "OK bye");
        kmc->quit = true;
    } else
        kmc_reply(client, "ERR unknown command '%s' (try help)", argv[0]);
}

/* Reads what is available and runs every complete line.
 * @returns -1 on EOF or error: the caller closes the client. */
static int kmc_client_read(kmc_t *kmc, kmc_client_t *client)
{
    ssize_t r;
    char *nl;

    r = read(client->fd_in, client->buf + client->len, sizeof(client->buf) - client->len - 1);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (r <= 0)
        return -1;
    client->len += (size_t)r;
    client->buf[client->len] = '\0';
    while ((nl = memchr(client->buf, '\n', client->len))) {
        size_t used = (size_t)(nl - client->buf) + 1;
        *nl = '\0';
        kmc_command(kmc, client, client->buf);
        memmove(client->buf, client->buf + used, client->len - used);
        client->len -= used;
        client->buf[client->len] = '\0';
    }
    if (client->len == sizeof(client->buf) - 1) {
        kmc_reply(client, "ERR line too long");
        return -1;
    }
    return 0;
}

static void kmc_accept(kmc_t *kmc)
{
    int fd, i;

    fd = accept(kmc->listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    for (i = 0; i < KMC_MAX_CLIENTS; i++) {
        if (!kmc->clients[i]) {
            kmc->clients[i] = kmc_calloc(1, sizeof(kmc_client_t));
            kmc->clients[i]->fd_in = kmc->clients[i]->fd_out = fd;
            return;
        }
    }
    dprintf(fd, "ERR too many control connections\n");
    close(fd);
}

static int kmc_listen(int port, char *errstr, size_t errstr_size)
{
    struct sockaddr_in sin = {0};
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(fd, 16) == -1)
        goto fail;
    return fd;
fail:
    snprintf(errstr, errstr_size, "control port %d: %s", port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int kmc_local_port(int fd)
{
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);

    if (getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
        return -1;
    return ntohs(sin.sin_port);
}

static void kmc_on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    if (write(kmc_sigpipe[1], &c, 1) < 0) {
        /* the pipe is full: a signal is already pending, nothing to add */
    }
    errno = saved;
}

/* A closed stdin/stdout/stderr would hand its number to our sockets. */
static void kmc_std_fds_open(void)
{
    int fd;

    for (fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
            abort();
    }
}

static void kmc_signals_setup(void)
{
    struct sigaction sa = {0};

    if (pipe2(kmc_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1)
        kmc_die("pipe: %s", strerror(errno));
    sa.sa_handler = kmc_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The poll loop: listener, stdin (until EOF), clients, signal pipe. */
static void kmc_serve(kmc_t *kmc)
{
    struct pollfd pfds[KMC_MAX_CLIENTS + 3];
    kmc_client_t *owners[KMC_MAX_CLIENTS + 3];
    int n, i;

    while (!kmc->quit) {
        n = 0;
        pfds[n++] = (struct pollfd){.fd = kmc_sigpipe[0], .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = kmc->listen_fd, .events = POLLIN};
        if (kmc->stdin_open) {
            owners[n] = &kmc->stdin_client;
            pfds[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        }
        for (i = 0; i < KMC_MAX_CLIENTS; i++) {
            if (kmc->clients[i]) {
                owners[n] = kmc->clients[i];
                pfds[n++] = (struct pollfd){.fd = kmc->clients[i]->fd_in, .events = POLLIN};
            }
        }
        if (poll(pfds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            kmc_die("poll: %s", strerror(errno));
        }
        if (pfds[0].revents)
            return; /* SIGTERM or SIGINT */
        if (pfds[1].revents & POLLIN)
            kmc_accept(kmc);
        for (i = 2; i < n && !kmc->quit; i++) {
            kmc_client_t *client = owners[i];
            if (!pfds[i].revents || kmc_client_read(kmc, client) == 0)
                continue;
            if (client == &kmc->stdin_client) {
                kmc->stdin_open = false; /* EOF on stdin is not a reason to stop */
                continue;
            }
            for (int j = 0; j < KMC_MAX_CLIENTS; j++)
                if (kmc->clients[j] == client)
                    kmc->clients[j] = NULL;
            close(client->fd_in);
            free(client);
        }
    }
}

static void kmc_parse_args(int argc, char **argv, kmc_opts_t *opts)
{
    long v;
    int i;

    for (i = 1; i < argc; i++) {
        const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            kmc_usage(stdout);
            exit(0);
        }
        if (!val)
            kmc_die("%s needs a value (see --help)", flag);
        i++;
        if (!strcmp(flag, "--topics")) {
            opts->topics = val;
            continue;
        }
        if (kmc_parse_int(val, 0, 65535, &v) == -1)
            kmc_die("%s: '%s' is not a number in 0..65535", flag, val);
        if (!strcmp(flag, "--brokers") && v >= 1 && v <= 32)
            opts->brokers = (int)v;
        else if (!strcmp(flag, "--partitions") && v >= 1 && v <= 10000)
            opts->partitions = (int)v;
        else if (!strcmp(flag, "--replication") && v >= 1)
            opts->replication = (int)v;
        else if (!strcmp(flag, "--control-port"))
            opts->control_port = (int)v;
        else
            kmc_die("bad flag or value: %s %s (see --help)", flag, val);
    }
    if (opts->replication > opts->brokers)
        kmc_die("--replication %d exceeds --brokers %d", opts->replication, opts->brokers);
}

/* Creates the mock cluster and the start-up topics; exits on failure. */
static void kmc_cluster_start(kmc_t *kmc, const kmc_opts_t *opts)
{
    char errstr[512], *topics, *save = NULL, *name;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_resp_err_t err;

    /* The host handle only keeps the cluster alive; it never connects. */
    if (rd_kafka_conf_set(conf, "client.id", "kafka-mock-cluster", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)))
        kmc_die("%s", errstr);
    kmc->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!kmc->rk)
        kmc_die("rd_kafka_new: %s", errstr);
    conf = NULL; /* owned by rk */
    kmc->mcluster = rd_kafka_mock_cluster_new(kmc->rk, opts->brokers);
    if (!kmc->mcluster)
        kmc_die("rd_kafka_mock_cluster_new failed");
    kmc->brokers = opts->brokers;

    topics = strdup(opts->topics);
    if (!topics)
        abort();
    for (name = strtok_r(topics, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        err = rd_kafka_mock_topic_create(kmc->mcluster, name, opts->partitions, opts->replication);
        if (err)
            kmc_die("topic %s: %s", name, rd_kafka_err2str(err));
    }
    free(topics);
}

int main(int argc, char **argv)
{
    kmc_opts_t opts = {
        .brokers = 3, .partitions = 6, .replication = 1, .topics = KMC_DEFAULT_TOPICS};
    kmc_t kmc = {.listen_fd = -1, .stdin_open = true};
    char errstr[256];
    int i;

    kmc_std_fds_open();
    kmc_parse_args(argc, argv, &opts);
    kmc_signals_setup();
    kmc.listen_fd = kmc_listen(opts.control_port, errstr, sizeof(errstr));
    if (kmc.listen_fd < 0)
        kmc_die("%s", errstr);
    kmc_cluster_start(&kmc, &opts);
    kmc.stdin_client.fd_in = STDIN_FILENO;
    kmc.stdin_client.fd_out = STDOUT_FILENO;

    printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(kmc.mcluster));
    printf("CONTROL 127.0.0.1:%d\n", kmc_local_port(kmc.listen_fd));
    fflush(stdout);

    kmc_serve(&kmc);

    for (i = 0; i < KMC_MAX_CLIENTS; i++) {
        if (kmc.clients[i]) {
            close(kmc.clients[i]->fd_in);
            free(kmc.clients[i]);
        }
    }
    close(kmc.listen_fd);
    rd_kafka_mock_cluster_destroy(kmc.mcluster);
    rd_kafka_destroy(kmc.rk);
    return 0;
}
