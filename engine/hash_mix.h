/*
 * hash_mix.h - spreading integer keys over a power-of-two table.
 *
 * Keys made of small dense indexes and day numbers are alike in their low
 * bits; murmur3's 64-bit finaliser mixes every input bit into every output
 * bit, so the slot (the low bits) depends on all of the key.
 */
#ifndef PARETO_HASH_MIX_H
#define PARETO_HASH_MIX_H

#include <stdint.h>

static inline uint64_t pr_hash_mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	return k ^ (k >> 33);
}

#endif
