/*
 * fuzz_decimal.c - amounts as any text (decimal.h), against a reference
 * written apart from it: digits kept as strings of any length, products by
 * long multiplication, rounding half to even by comparing the dropped
 * digits with "5000...". Both must agree on every input: not a decimal,
 * out of range, or the same minor units and the same "rounded" answer.
 * The one difference decimal.h allows: a product whose digits pass 128 bits
 * (or a factor of more than 38 significant digits) may be refused with
 * -ERANGE even where its value would round into range.
 *
 * Byte [0]: the scale (mod 10); bit 4, a product: quantity and price are
 * the text before and after the first '*'.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "decimal.h"
#include "fuzz.h"

#define MAX_TEXT 400

struct number {
	bool negative;
	char digits[2 * MAX_TEXT + 16]; /* no leading zeros; "" is zero */
	size_t frac;                    /* digits x 10^-frac */
};

/* Drops leading zeros. */
static void normalize(struct number *n)
{
	size_t len = strlen(n->digits), lead = 0;
	while (lead < len && n->digits[lead] == '0')
		lead++;
	memmove(n->digits, n->digits + lead, len - lead + 1);
}

/* The grammar decimal.h states, read the obvious way. */
static bool ref_parse(const char *s, size_t len, struct number *n)
{
	const char *p = s, *end = s + len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	memset(n, 0, sizeof *n);
	if (p < end && (*p == '+' || *p == '-'))
		n->negative = *p++ == '-';
	size_t count = 0, at = 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++, count++)
		n->digits[at++] = *p;
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++, count++, n->frac++)
			n->digits[at++] = *p;
	n->digits[at] = 0;
	normalize(n);
	return count > 0 && p == end;
}

/* Significant digits as decimal.c keeps them: trailing fraction zeros
 * do not count. */
static size_t significant(const struct number *n)
{
	size_t len = strlen(n->digits), frac = n->frac;
	while (frac && len && n->digits[len - 1] == '0')
		len--, frac--;
	return len;
}

static void multiply(const struct number *a, const struct number *b, struct number *out)
{
	size_t la = strlen(a->digits), lb = strlen(b->digits);
	unsigned acc[2 * MAX_TEXT + 16] = { 0 };
	for (size_t i = 0; i < la; i++)
		for (size_t j = 0; j < lb; j++)
			acc[i + j + 1] += (unsigned)(a->digits[i] - '0') * (unsigned)(b->digits[j] - '0');
	for (size_t k = la + lb; k-- > 1;) {
		acc[k - 1] += acc[k] / 10;
		acc[k] %= 10;
	}
	for (size_t k = 0; k < la + lb; k++)
		out->digits[k] = (char)('0' + acc[k]);
	out->digits[la + lb] = 0;
	out->negative = a->negative != b->negative;
	out->frac = a->frac + b->frac;
	normalize(out);
}

/* Compares digit strings without leading zeros as numbers. */
static int compare(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(a, b);
}

/* n to the scale, half to even: 0 exact, 1 rounded, -ERANGE. */
static int ref_minor(const struct number *n, unsigned scale, int64_t *out)
{
	char kept[sizeof n->digits + 16];
	size_t len = strlen(n->digits);
	int rounded = 0;
	if (n->frac <= scale) {
		memcpy(kept, n->digits, len);
		memset(kept + len, '0', scale - n->frac);
		kept[len + scale - n->frac] = 0;
	} else {
		size_t drop = n->frac - scale, keep = len > drop ? len - drop : 0;
		/* The dropped digits, with the leading zeros the string lost. */
		char dropped[sizeof n->digits + 16];
		size_t pad = drop - (len - keep);
		memset(dropped, '0', pad);
		memcpy(dropped + pad, n->digits + keep, len - keep);
		dropped[drop] = 0;
		memcpy(kept, n->digits, keep);
		kept[keep] = 0;
		int vs_half = 0; /* dropped against 5000... */
		if (dropped[0] != '5')
			vs_half = dropped[0] < '5' ? -1 : 1;
		else
			for (size_t i = 1; i < drop; i++)
				if (dropped[i] != '0')
					vs_half = 1;
		rounded = strspn(dropped, "0") != drop;
		bool odd = keep && (kept[keep - 1] - '0') % 2;
		if (vs_half > 0 || (vs_half == 0 && odd)) { /* add one */
			size_t i = keep;
			while (i && kept[i - 1] == '9')
				kept[--i] = '0';
			if (i) {
				kept[i - 1]++;
			} else {
				memmove(kept + 1, kept, keep + 1);
				kept[0] = '1';
			}
		}
	}
	size_t lead = strspn(kept, "0");
	const char *v = kept + lead;
	if (compare(v, n->negative ? "9223372036854775808" : "9223372036854775807") > 0)
		return -ERANGE;
	uint64_t u = 0;
	for (; *v; v++)
		u = u * 10 + (uint64_t)(*v - '0');
	*out = n->negative ? (int64_t)(0 - u) : (int64_t)u;
	return rounded;
}

int fuzz_decimal(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MAX_TEXT)
		return 0;
	unsigned scale = data[0] % 10;
	bool product = data[0] & 16;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	int64_t got = 0, want = 0;
	int rc, ref;
	bool may_refuse = false;
	if (!product) {
		rc = pr_decimal_parse(text, len, scale, &got);
		struct number n;
		ref = ref_parse(text, len, &n) ? ref_minor(&n, scale, &want) : -EINVAL;
	} else {
		const char *star = memchr(text, '*', len);
		size_t ql = star ? (size_t)(star - text) : len / 2;
		const char *price = text + ql + (star != NULL);
		size_t pl = len - ql - (star != NULL);
		rc = pr_decimal_product(text, ql, price, pl, scale, &got);
		struct number q, p, qp;
		if (!ref_parse(text, ql, &q) || !ref_parse(price, pl, &p)) {
			ref = -EINVAL;
		} else {
			multiply(&q, &p, &qp);
			ref = ref_minor(&qp, scale, &want);
			/* decimal.c holds each factor's significant digits and
			 * their product in 128 bits. */
			struct number sq = q, sp = p, sqp;
			sq.digits[significant(&q)] = 0;
			sp.digits[significant(&p)] = 0;
			multiply(&sq, &sp, &sqp);
			may_refuse = significant(&q) > 38 || significant(&p) > 38 ||
				     compare(sqp.digits, "340282366920938463463374607431768211455") > 0;
		}
	}
	if (rc == -ERANGE && ref >= 0 && may_refuse)
		return 0;
	FUZZ_CHECK(rc == ref, "rc %d, the reference %d, scale %u: '%.*s'", rc, ref, scale,
		   (int)len, text);
	if (rc >= 0)
		FUZZ_CHECK(got == want, "%lld, the reference %lld, scale %u: '%.*s'",
			   (long long)got, (long long)want, scale, (int)len, text);
	return 0;
}

FUZZ_ENTRY(fuzz_decimal)
