/* fraction.c - exact fractions for cut points ("0.2", "20%", "1/5"). */
#include <errno.h>
#include <stdlib.h>

#include "pareto/engine.h"

static int parse_uint(const char **p, uint64_t *out, int *digits)
{
	uint64_t v = 0;
	*digits = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++, (*digits)++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(**p - '0');
	}
	*out = v;
	return 0;
}

int pr_fraction_parse(const char *text, struct pr_fraction *out)
{
	const char *p = text;
	uint64_t whole, part = 0, den = 1;
	int digits, part_digits = 0;
	if (parse_uint(&p, &whole, &digits) < 0)
		return -EINVAL;
	if (*p == '/') {
		p++;
		int den_digits;
		if (!digits || parse_uint(&p, &den, &den_digits) < 0 || !den_digits || !den || *p)
			return -EINVAL;
		*out = (struct pr_fraction){ whole, den };
	} else {
		if (*p == '.') {
			p++;
			if (parse_uint(&p, &part, &part_digits) < 0 || part_digits > 15)
				return -EINVAL;
		}
		if (!digits && !part_digits)
			return -EINVAL;
		for (int i = 0; i < part_digits; i++)
			den *= 10;
		if (whole > UINT64_MAX / den / 100)
			return -EINVAL;
		uint64_t num = whole * den + part;
		if (*p == '%') {
			p++;
			den *= 100;
		}
		if (*p)
			return -EINVAL;
		*out = (struct pr_fraction){ num, den };
	}
	return 0;
}

double pr_fraction_value(struct pr_fraction f)
{
	return (double)f.num / (double)f.den;
}
