/* support_run.c - see support_run.h. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_run.h"

extern char **environ;

struct buffer {
	char *p;
	size_t len, cap;
};

static void append(struct buffer *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static char *slurp(const char *path)
{
	struct buffer b = { 0 };
	append(&b, "", 0);
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;
	while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		append(&b, chunk, n);
	if (f)
		fclose(f);
	return b.p;
}

/* Plain files for stdin, stdout and stderr: no pipe can fill up and block. */
void run_command(char *const argv[], const char *input, struct run_result *r)
{
	char in_path[64], out_path[64], err_path[64];
	snprintf(in_path, sizeof in_path, "/tmp/pareto-run-%d-in", (int)getpid());
	snprintf(out_path, sizeof out_path, "/tmp/pareto-run-%d-out", (int)getpid());
	snprintf(err_path, sizeof err_path, "/tmp/pareto-run-%d-err", (int)getpid());
	write_file(in_path, input ? input : "", input ? strlen(input) : 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		abort();
	posix_spawn_file_actions_destroy(&fa);
	int status;
	waitpid(pid, &status, 0);
	r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r->out = slurp(out_path);
	r->err = slurp(err_path);
	unlink(in_path);
	unlink(out_path);
	unlink(err_path);
}

void run_result_free(struct run_result *r)
{
	free(r->out);
	free(r->err);
}

const char *temp_path(int slot, const char *suffix)
{
	static char paths[8][96];
	snprintf(paths[slot], sizeof paths[slot], "/tmp/pareto-test-%d-%d%s", (int)getpid(), slot,
		 suffix);
	return paths[slot];
}

void write_file(const char *path, const char *content, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(content, 1, len, f) != len || fclose(f) != 0)
		abort();
}

char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0)
		abort();
	long size = ftell(f);
	char *bytes = malloc(size > 0 ? (size_t)size : 1);
	if (size < 0 || !bytes || fseek(f, 0, SEEK_SET) != 0 ||
	    fread(bytes, 1, (size_t)size, f) != (size_t)size)
		abort();
	fclose(f);
	*len = (size_t)size;
	return bytes;
}

/* ---- JSON flattening ------------------------------------------------------ */

struct flat {
	const char *p;
	struct buffer out;
	char path[512];
};

static void skip_ws(struct flat *f)
{
	while (*f->p == ' ' || *f->p == '\n' || *f->p == '\t' || *f->p == '\r')
		f->p++;
}

static int string(struct flat *f, struct buffer *into)
{
	if (*f->p != '"')
		return -1;
	for (f->p++; *f->p != '"'; f->p++) {
		if (!*f->p)
			return -1;
		if (*f->p == '\\') {
			f->p++;
			if (!*f->p)
				return -1;
		}
		append(into, f->p, 1);
	}
	f->p++;
	return 0;
}

static int value(struct flat *f, size_t path_len)
{
	skip_ws(f);
	if (*f->p == '{' || *f->p == '[') {
		char close = *f->p == '{' ? '}' : ']';
		bool object = close == '}';
		f->p++;
		skip_ws(f);
		if (*f->p == close) {
			f->p++;
			append(&f->out, f->path, path_len);
			append(&f->out, object ? "={}\n" : "=[]\n", 4);
			return 0;
		}
		for (int i = 0;; i++) {
			size_t len = path_len;
			skip_ws(f);
			if (object) {
				struct buffer key = { 0 };
				if (string(f, &key) < 0)
					return -1;
				len += (size_t)snprintf(f->path + len, sizeof f->path - len, "%s%s",
							path_len ? "." : "", key.p ? key.p : "");
				free(key.p);
				skip_ws(f);
				if (*f->p++ != ':')
					return -1;
			} else {
				len += (size_t)snprintf(f->path + len, sizeof f->path - len, "[%d]", i);
			}
			if (value(f, len) < 0)
				return -1;
			skip_ws(f);
			if (*f->p == ',') {
				f->p++;
				continue;
			}
			if (*f->p++ != close)
				return -1;
			return 0;
		}
	}
	append(&f->out, f->path, path_len);
	append(&f->out, "=", 1);
	if (*f->p == '"') {
		if (string(f, &f->out) < 0)
			return -1;
	} else {
		const char *start = f->p;
		while (*f->p && !strchr(",]} \n\t\r", *f->p))
			f->p++;
		if (f->p == start)
			return -1;
		append(&f->out, start, (size_t)(f->p - start));
	}
	append(&f->out, "\n", 1);
	return 0;
}

char *json_flatten(const char *json)
{
	struct flat f = { .p = json };
	append(&f.out, "", 0);
	if (value(&f, 0) < 0) {
		free(f.out.p);
		return NULL;
	}
	skip_ws(&f);
	if (*f.p) {
		free(f.out.p);
		return NULL;
	}
	return f.out.p;
}

const char *json_get(const char *flat, const char *path, char *buf, size_t size)
{
	size_t n = strlen(path);
	for (const char *line = flat; *line;) {
		const char *eol = strchr(line, '\n');
		if (!eol)
			eol = line + strlen(line);
		if ((size_t)(eol - line) > n && memcmp(line, path, n) == 0 && line[n] == '=') {
			size_t len = (size_t)(eol - line) - n - 1;
			if (len >= size)
				len = size - 1;
			memcpy(buf, line + n + 1, len);
			buf[len] = 0;
			return buf;
		}
		line = *eol ? eol + 1 : eol;
	}
	return NULL;
}
