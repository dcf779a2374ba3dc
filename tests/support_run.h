/*
 * support_run.h - helpers for end-to-end tests: run a command, capture its
 * output and exit code; temporary files; flatten JSON into "path=value"
 * lines so a test can look up any field of a report.
 */
#ifndef PARETO_SUPPORT_RUN_H
#define PARETO_SUPPORT_RUN_H

#include <stddef.h>

struct run_result {
	int exit_code;
	char *out; /* malloc'ed, NUL-terminated */
	char *err;
};

/* Runs argv[0] with argv (NULL-terminated), feeding `input` (may be NULL)
 * on stdin. */
void run_command(char *const argv[], const char *input, struct run_result *r);
void run_result_free(struct run_result *r);

/* Writes content to a new temporary file; returns its path (static storage
 * per call slot 0..7). */
const char *temp_path(int slot, const char *suffix);
void write_file(const char *path, const char *content, size_t len);
/* A whole file's bytes (malloc'ed, *len of them); aborts if unreadable. */
char *read_file(const char *path, size_t *len);

/*
 * Flattens a JSON document into lines "path=value": objects as a.b,
 * arrays as a[0]; strings keep their quotes out and escapes decoded for
 * \" and \\ only. Returns malloc'ed text, or NULL if the JSON is malformed.
 */
char *json_flatten(const char *json);

/* The value at `path` in flattened text, copied into buf; NULL if absent. */
const char *json_get(const char *flat, const char *path, char *buf, size_t size);

#endif
