/* options.c - the feed and engine options every front end shares; see
 * pareto/options.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pareto/options.h"

static const char *const names[PR_OPT_LAST - PR_OPT_DELIMITER] = {
	"delimiter", "map", "ts-format", "scale", "top-fraction", "tiers", "pareto-target",
	"key-share", "lapsed-min-days", "lapsed-gap-factor", "lapsed-min-idle-days", "customers",
};

static int bad(struct pr_error *err, int id, const char *expected, const char *value)
{
	return pr_error_set(err, -EINVAL, "--%s: expected %s, not '%s'",
			    names[id - PR_OPT_DELIMITER], expected, value);
}

/* Decimal digits, then optionally K, M or G (powers of 1024); at most max. */
static bool parse_count(const char *text, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = text;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == text)
		return false;
	unsigned shift = *p == 'K' || *p == 'k' ? 10 : *p == 'M' || *p == 'm' ? 20
		       : *p == 'G' || *p == 'g' ? 30 : 0;
	if (shift) {
		if (v > UINT64_MAX >> shift)
			return false;
		v <<= shift;
		p++;
	}
	if (*p || v > max)
		return false;
	*out = v;
	return true;
}

/* A fraction from 0 to 1; *out unchanged unless it is one. */
static bool parse_share(const char *text, struct pr_fraction *out)
{
	struct pr_fraction f;
	if (pr_fraction_parse(text, &f) < 0 || f.num > f.den)
		return false;
	*out = f;
	return true;
}

int pr_option_apply(int id, const char *value, struct pr_feed_options *feed,
		    struct pr_engine_options *engine, struct pr_error *err)
{
	static const char share[] = "a fraction from 0 to 1 like 0.2, 20% or 1/5";
	uint64_t v;
	switch (id) {
	case PR_OPT_DELIMITER: {
		static const struct { const char *name; char c; } named[] = {
			{ "comma", ',' }, { "semicolon", ';' }, { "tab", '\t' }, { "pipe", '|' },
		};
		if (strcmp(value, "whitespace") == 0) {
			feed->delimiter_kind = PR_DELIM_WHITESPACE;
			return 0;
		}
		for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
			if (strcmp(value, named[i].name) == 0) {
				feed->delimiter_kind = PR_DELIM_CHAR;
				feed->delimiter = named[i].c;
				return 0;
			}
		}
		if (strlen(value) == 1 && value[0] != '"' && value[0] != '\n' && value[0] != '\r') {
			feed->delimiter_kind = PR_DELIM_CHAR;
			feed->delimiter = value[0];
			return 0;
		}
		return bad(err, id, "comma, semicolon, tab, pipe, whitespace or one character",
			   value);
	}
	case PR_OPT_MAP: {
		static const char *const fields[PR_FIELD_COUNT] = {
			"ts", "customer", "store", "amount", "quantity", "price",
		};
		const char *eq = strchr(value, '=');
		for (int i = 0; eq && eq[1] && i < PR_FIELD_COUNT; i++) {
			if (strlen(fields[i]) == (size_t)(eq - value) &&
			    memcmp(value, fields[i], (size_t)(eq - value)) == 0) {
				feed->column[i] = eq + 1;
				return 0;
			}
		}
		return bad(err, id, "FIELD=COLUMN with FIELD one of ts, customer, store, amount, "
			   "quantity, price", value);
	}
	case PR_OPT_TS_FORMAT:
		feed->ts_format = value;
		return 0;
	case PR_OPT_SCALE:
		if (!parse_count(value, 9, &v))
			return bad(err, id, "0..9", value);
		feed->scale = (uint32_t)v;
		return 0;
	case PR_OPT_TOP_FRACTION:
		return parse_share(value, &engine->top) ? 0 : bad(err, id, share, value);
	case PR_OPT_TIERS: {
		const char *comma = strchr(value, ',');
		char a[64];
		struct pr_fraction ta, tb;
		if (comma && (size_t)(comma - value) < sizeof a) {
			memcpy(a, value, (size_t)(comma - value));
			a[comma - value] = 0;
			if (parse_share(a, &ta) && parse_share(comma + 1, &tb) &&
			    (unsigned __int128)ta.num * tb.den <= (unsigned __int128)tb.num * ta.den) {
				engine->tier_a = ta;
				engine->tier_b = tb;
				return 0;
			}
		}
		return bad(err, id, "A,B with 0 <= A <= B <= 1, like 0.2,0.5", value);
	}
	case PR_OPT_PARETO_TARGET:
		return parse_share(value, &engine->pareto_target) ? 0 : bad(err, id, share, value);
	case PR_OPT_KEY_SHARE:
		return parse_share(value, &engine->key_share) ? 0 : bad(err, id, share, value);
	case PR_OPT_LAPSED_MIN_DAYS:
		if (!parse_count(value, UINT32_MAX, &v))
			return bad(err, id, "a count of days", value);
		engine->lapsed_min_days = (uint32_t)v;
		return 0;
	case PR_OPT_LAPSED_GAP_FACTOR: {
		struct pr_fraction f;
		if (pr_fraction_parse(value, &f) < 0)
			return bad(err, id, "a number like 3 or 2.5", value);
		engine->lapsed_gap_factor = f;
		return 0;
	}
	case PR_OPT_LAPSED_MIN_IDLE_DAYS:
		if (!parse_count(value, 1000000, &v))
			return bad(err, id, "a count of days up to 1000000", value);
		engine->lapsed_min_idle_days = (uint32_t)v;
		return 0;
	case PR_OPT_CUSTOMERS:
		if (!parse_count(value, 1ull << 32, &v))
			return bad(err, id, "a count up to 2^32 (K, M, G: powers of 1024)", value);
		engine->customers_hint = v;
		return 0;
	}
	return pr_error_set(err, -EINVAL, "option %d is not a shared option", id);
}
