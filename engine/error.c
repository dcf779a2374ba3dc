/* error.c - formatting of struct pr_error. */
#include <stdarg.h>
#include <stdio.h>

#include "pareto/error.h"

int pr_error_set(struct pr_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}
