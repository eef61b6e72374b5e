/* The commands of the publish-worker binary; each returns its exit code. */
#ifndef PW_COMMANDS_H
#define PW_COMMANDS_H

int pw_cmd_run(void);
int pw_cmd_token(int argc, char **argv);

#endif
