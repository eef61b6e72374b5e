/* publish-worker: commands, start-up and exit codes.
 *
 *   publish-worker [run]        the worker (run.c)
 *   publish-worker token ...    put, show, verify, list, rekey and delete
 *                               account tokens (cmd_token.c)
 *   publish-worker check-config validate the environment
 * Exit codes: 0 success, 2 bad usage or configuration, 1 runtime failure. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "crypto.h"
#include "env.h"
#include "log.h"
#include "redis_health.h"

extern char **environ;

static void pw_usage(FILE *out)
{
    fprintf(out, "Usage: publish-worker [run]\n"
                 "       publish-worker token SUBCOMMAND ... (below)\n"
                 "       publish-worker check-config\n"
                 "       publish-worker --version | --help\n\n"
                 "Takes publish.request.v1 events from Kafka and publishes them to Threads,\n"
                 "refreshing tokens and parking posts of accounts that must be reconnected.\n\n"
                 "Token subcommands (publish-worker token SUBCOMMAND --help for each):\n");
    pw_token_usage(out);
    fputc('\n', out);
    pw_config_print_help(out);
    fprintf(out, "\nExit codes: 0 success, 2 bad usage or configuration, 1 runtime failure.\n");
}

static const char *pw_getenv(const char *name)
{
    return getenv(name);
}

/* Redis's maxmemory-policy, when Redis answers within 2 s: an evicting one
 * not accepted by REDIS_ALLOW_EVICTION is a problem; an unreachable Redis is
 * only noted (redis_health.h). @returns 1 for a problem, else 0. */
static int pw_check_config_redis(const pw_config_t *conf)
{
    char msg[1024];
    pw_redis_verdict_t verdict = pw_redis_health_verdict(
        conf->redis_url, conf->redis_allow_eviction, 2000, msg, sizeof(msg));
    fprintf(verdict == PW_REDIS_VERDICT_SAFE || verdict == PW_REDIS_VERDICT_ACCEPTED ? stdout
                                                                                     : stderr,
            "%s\n", msg);
    return verdict == PW_REDIS_VERDICT_REFUSED;
}

/* Every problem at once: the variables, the key ring they point at, then
 * whether Redis keeps what it is given. */
static int pw_cmd_check_config(void)
{
    char errstr[4096];
    pw_config_t *conf = pw_config_load(
        pw_getenv, environ, PW_CONFIG_NEED_KAFKA | PW_CONFIG_NEED_KEYS, errstr, sizeof(errstr));
    int problems = conf ? 0 : 1;
    if (!conf)
        fprintf(stderr, "%s\n", errstr);
    /* The CA bundles and the client key are read, not only found. */
    if (conf && pw_env_init_tls(conf, errstr, sizeof(errstr)) == -1) {
        fprintf(stderr, "%s\n", errstr);
        pw_config_destroy(conf);
        conf = NULL;
        problems = 1;
    }
    const char *keys_file = getenv("TOKEN_KEYS_FILE");
    if (keys_file && *keys_file) {
        pw_keyring_t *ring = pw_keyring_load(keys_file, errstr, sizeof(errstr));
        if (!ring) {
            fprintf(stderr, "%s\n", errstr);
            problems = 1;
        }
        pw_keyring_destroy(ring);
    }
    if (conf && pw_check_config_redis(conf))
        problems = 1;
    pw_config_destroy(conf);
    if (problems)
        return 2;
    printf("configuration OK\n");
    return 0;
}

/* run and the token commands hold the key ring and decrypted access and
 * refresh tokens in memory (check-config the key ring; --help loses
 * nothing). A core dump (a crash, abort() on out of memory, SIGQUIT) would
 * write them to wherever core_pattern points, often a host directory or a
 * crash collector that outlives the pod; and a dumpable process lets any
 * other process of the same user read its memory through ptrace or
 * /proc/PID/mem. Not dumpable closes both. OPENSSL_cleanse() wipes what is
 * freed, not what is live. */
static void pw_main_no_core_dumps(void)
{
    if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) == -1)
        perror("publish-worker: prctl(PR_SET_DUMPABLE)"); /* cannot fail on Linux */
}

/* random() draws the backoff jitter, the sweep's delays and the replay lock's
 * owner: each process needs a sequence of its own, or replicas back off,
 * sweep and name their locks in lockstep. Unseeded it is the same sequence
 * everywhere; librdkafka would seed it with the current millisecond, one of
 * 1,000 sequences, shared by replicas started at the same millisecond
 * (common/kafka.c turns that off: enable.random.seed=false). Seeded here once
 * from the kernel instead. */
static void pw_main_seed_random(void)
{
    unsigned int seed;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        /* No getrandom (a kernel older than 3.17): time and pid differ anyway. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (unsigned int)ts.tv_nsec ^ (unsigned int)ts.tv_sec ^ ((unsigned int)getpid() << 16);
    }
    srandom(seed);
}

int main(int argc, char **argv)
{
    pw_main_no_core_dumps();
    pw_main_seed_random();
    /* cJSON allocates through us, so out of memory aborts there too. */
    cJSON_Hooks hooks = {.malloc_fn = pw_malloc, .free_fn = free};
    cJSON_InitHooks(&hooks);

    const char *cmd = argc > 1 ? argv[1] : "run";
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        pw_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("publish-worker %s\n", PW_VERSION);
        return 0;
    }
    bool help = argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
    if (strcmp(cmd, "check-config") == 0 || strcmp(cmd, "run") == 0) {
        if (help) {
            printf("Usage: publish-worker %s\n\n%s\n", cmd,
                   cmd[0] == 'r' ? "Runs the worker until SIGTERM or SIGINT (see --help for its "
                                   "settings)."
                                 : "Validates the environment (see --help for the settings), "
                                   "the key ring and Redis's\nmaxmemory-policy; exits 0, or "
                                   "prints each problem and exits 2.");
            return 0;
        }
        if (argc > 2) {
            fprintf(stderr, "publish-worker: %s takes no arguments\n", cmd);
            return 2;
        }
    }
    if (strcmp(cmd, "check-config") == 0)
        return pw_cmd_check_config();
    if (strcmp(cmd, "token") == 0)
        return pw_cmd_token(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return pw_cmd_run();
    fprintf(stderr, "publish-worker: unknown command '%s'\n\n", cmd);
    pw_usage(stderr);
    return 2;
}
