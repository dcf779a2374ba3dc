/*
 * baseline.c - the plain single-thread C program a developer would write
 * for the batch report: read() the CSV, split lines, parse the amount,
 * hash the customer id into an open-addressing table, sort, sum. No
 * io_uring, no shards, no windows, no stores: the floor of the work, for
 * bench/run to measure Pareto against.
 *
 *   baseline FILE   (columns ts,customer_id,store_id,amount; 2 decimals)
 *
 * Prints the window-`all` figures as JSON with the report's key names.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

struct customer {
	uint64_t hash;
	char *id;
	uint32_t len;
	int64_t revenue;
};

static struct customer *table;
static uint64_t mask, count;

static void grow(void)
{
	uint64_t n = mask ? (mask + 1) * 2 : 1u << 20;
	struct customer *t = calloc(n, sizeof *t);
	for (uint64_t i = 0; mask && i <= mask; i++) {
		if (!table[i].id)
			continue;
		uint64_t s = table[i].hash & (n - 1);
		while (t[s].id)
			s = (s + 1) & (n - 1);
		t[s] = table[i];
	}
	free(table);
	table = t;
	mask = n - 1;
}

static void add(const char *id, uint32_t len, int64_t amount)
{
	uint64_t h = XXH3_64bits(id, len), s = h & mask;
	for (; table[s].id; s = (s + 1) & mask) {
		if (table[s].hash == h && table[s].len == len && memcmp(table[s].id, id, len) == 0) {
			table[s].revenue += amount;
			return;
		}
	}
	char *copy = malloc(len);
	memcpy(copy, id, len);
	table[s] = (struct customer){ h, copy, len, amount };
	if (++count * 2 > mask + 1)
		grow();
}

/* "-12.34" -> -1234; the feed has exactly two decimals or none. */
static int64_t cents(const char *p, const char *end)
{
	int neg = p < end && *p == '-';
	p += neg;
	int64_t v = 0;
	int frac = -1;
	for (; p < end; p++) {
		if (*p == '.') {
			frac = 0;
			continue;
		}
		v = v * 10 + (*p - '0');
		frac += frac >= 0;
	}
	for (; frac < 2; frac = frac < 0 ? 1 : frac + 1)
		v *= 10;
	return neg ? -v : v;
}

static void line(const char *p, const char *end)
{
	const char *f[4];
	int n = 0;
	f[n++] = p;
	for (const char *q = p; q < end && n < 4; q++)
		if (*q == ',')
			f[n++] = q + 1;
	if (n < 4)
		return;
	if (end > p && end[-1] == '\r')
		end--;
	add(f[1], (uint32_t)(f[2] - f[1] - 1), cents(f[3], end));
}

static int by_revenue(const void *a, const void *b)
{
	const struct customer *x = a, *y = b;
	if (x->revenue != y->revenue)
		return x->revenue > y->revenue ? -1 : 1;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->id, y->id, n);
	return c ? c : (int)x->len - (int)y->len;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fputs("usage: baseline FILE\n", stderr);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	grow();
	static char buf[(1 << 20) + 4096];
	size_t have = 0;
	int header = 1;
	uint64_t records = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		char *p = buf, *end = buf + have, *nl;
		while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
			if (!header) {
				line(p, nl);
				records++;
			}
			header = 0;
			p = nl + 1;
		}
		have = (size_t)(end - p);
		memmove(buf, p, have);
	}
	close(fd);

	struct customer *pos = malloc((count + 1) * sizeof *pos);
	uint64_t n = 0;
	__int128 total = 0;
	for (uint64_t i = 0; i <= mask; i++)
		if (table[i].id && table[i].revenue > 0) {
			pos[n++] = table[i];
			total += table[i].revenue;
		}
	qsort(pos, n, sizeof *pos, by_revenue);
	uint64_t top = (n * 2 + 9) / 10, pareto = 0;
	__int128 acc = 0, top_rev = 0, squares = 0, weighted = 0;
	for (uint64_t i = 0; i < n; i++) {
		acc += pos[i].revenue;
		if (i < top)
			top_rev = acc;
		if (!pareto && acc * 5 >= total * 4)
			pareto = i + 1;
		squares += (__int128)pos[i].revenue * pos[i].revenue;
		weighted += (__int128)(n - i) * pos[i].revenue;
	}
	double t = (double)total;
	printf("{\"records\":%llu,\"customers\":%llu,\"revenue_minor\":%lld,"
	       "\"top_tier\":{\"customers\":%llu,\"revenue_minor\":%lld,\"share\":%.15g},"
	       "\"pareto_point\":%.15g,\"hhi\":%.15g,\"gini\":%.15g,\"top\":[",
	       (unsigned long long)records, (unsigned long long)n, (long long)total,
	       (unsigned long long)top, (long long)top_rev, n ? (double)top_rev / t : 0,
	       n ? (double)pareto / (double)n : 0, n ? (double)squares * 1e4 / (t * t) : 0,
	       n ? 2 * (double)weighted / ((double)n * t) - (double)(n + 1) / (double)n : 0);
	for (uint64_t i = 0; i < n && i < 10; i++)
		printf("%s{\"rank\":%llu,\"customer\":\"%.*s\",\"revenue_minor\":%lld}", i ? "," : "",
		       (unsigned long long)i + 1, (int)pos[i].len, pos[i].id,
		       (long long)pos[i].revenue);
	puts("]}");
	return 0;
}
