/*
 * membw.c - the memory-bandwidth baseline bench/run measures beside the
 * engine: how fast this machine reads a buffer larger than its caches
 * (sum of 64-bit words, one thread), in GB/s. Median of 5 passes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	size_t words = (size_t)1 << 27; /* 1 GiB */
	uint64_t *a = malloc(words * sizeof *a);
	for (size_t i = 0; i < words; i++)
		a[i] = i;
	double rates[5];
	uint64_t sum = 0;
	for (int pass = 0; pass < 5; pass++) {
		double t0 = now();
		for (size_t i = 0; i < words; i++)
			sum += a[i];
		rates[pass] = (double)(words * sizeof *a) / (now() - t0) / 1e9;
	}
	qsort(rates, 5, sizeof rates[0], by_value);
	printf("{\"read_gb_per_s\":%.2f,\"checksum\":%llu}\n", rates[2], (unsigned long long)sum);
	return 0;
}
