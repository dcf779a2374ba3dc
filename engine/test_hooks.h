/*
 * test_hooks.h - pauses a test asks for through the environment, to make a
 * slow moment last (a checkpoint's write, the build of a first ranking) and
 * see what the daemon does meanwhile. Unset, a hook costs a getenv at
 * moments that are rare anyway (never per record or per request).
 */
#ifndef PARETO_TEST_HOOKS_H
#define PARETO_TEST_HOOKS_H

#include <stdlib.h>
#include <time.h>

/* Sleeps the milliseconds the environment variable says (at most a minute). */
static inline void pr_test_hook_pause(const char *variable)
{
	const char *hook = getenv(variable);
	long ms = hook && *hook ? strtol(hook, NULL, 10) : 0;
	if (ms > 0 && ms <= 60000)
		nanosleep(&(struct timespec){ ms / 1000, ms % 1000 * 1000000 }, NULL);
}

#endif
