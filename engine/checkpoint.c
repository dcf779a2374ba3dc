/* checkpoint.c - the engine's state to a file and back; see checkpoint.h. */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "checkpoint.h"
#include "engine_internal.h"
#include "varint.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "checkpoints are written in the machine's order: little-endian");

static const char magic[8] = { 'P', 'R', 'C', 'K', 'P', 'T', '\r', '\n' };
static const char probe_text[] = "pareto checkpoint hash probe";

#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_ENGINE TAG('E', 'N', 'G', 'N')
#define TAG_BLOB TAG('B', 'L', 'O', 'B')
#define TAG_STORES TAG('S', 'T', 'O', 'R')
#define TAG_SHARD TAG('S', 'H', 'R', 'D')
#define TAG_END TAG('E', 'N', 'D', '!')

#define KEEP_PERIODS 1u
#define KEEP_STORES 2u
#define KEEP_DAYS 4u

#define WRITE_BUFFER_BYTES ((size_t)4 << 20)
/* Spans this long (a shard's aggregates) go to the kernel without a copy. */
#define DIRECT_WRITE_BYTES ((size_t)256 << 10)

/* The raw structs' sizes: a build that lays them out otherwise refuses the file. */
static uint64_t layout_signature(void)
{
	return (uint64_t)sizeof(struct customer_aggregate) << 48 |
	       (uint64_t)sizeof(struct pair_aggregate) << 32 |
	       (uint64_t)sizeof(struct pr_period_sums) << 16 | sizeof(struct pr_recent_days);
}

/*
 * Pairs and purchase days are most of the state (at 1M customers, 1.8M
 * pairs of 72 bytes and 9M days of 8) and mostly small numbers: they are
 * written as LEB128 varints (signed ones zigzagged; varint.h), about a
 * third of their size, so that the write and the read move less. Customers
 * stay raw: their fields are half of them wide (times, day maps).
 */

/* The most bytes one pair or one day takes encoded. */
#define PAIR_MAX_BYTES (10 * 10)
#define DAY_MAX_BYTES (2 * 10)

struct header {
	char magic[8];
	uint32_t version;
	uint32_t header_bytes;
	uint64_t payload_bytes;
	uint64_t payload_hash;
	uint64_t layout;
	int64_t written_ms;
	uint64_t reserved;
	uint64_t header_hash; /* of the 56 bytes before it */
};
_Static_assert(sizeof(struct header) == PR_CHECKPOINT_HEADER_BYTES, "the header is 64 bytes");

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- writing -------------------------------------------------------------- */

/* Sequential writes of the payload through a buffer; long spans (the
 * aggregates' chunks) go to the kernel as they are. */
struct writer {
	int fd;
	unsigned char *buf;
	size_t len;
	uint64_t payload; /* bytes handed to the kernel */
	XXH3_state_t *hash;
	int error;        /* the first write's errno */
	unsigned char *scratch; /* a section encoded before its length is written; owned */
	size_t scratch_len, scratch_cap;
};

/* Room for n more bytes in the scratch buffer; false when out of memory. */
static bool scratch_room(struct writer *w, size_t n)
{
	if (w->scratch_len + n <= w->scratch_cap)
		return true;
	size_t cap = w->scratch_cap ? w->scratch_cap : 1 << 16;
	while (cap < w->scratch_len + n)
		cap *= 2;
	unsigned char *bigger = realloc(w->scratch, cap);
	if (!bigger) {
		w->error = ENOMEM;
		return false;
	}
	w->scratch = bigger;
	w->scratch_cap = cap;
	return true;
}

static void write_all(struct writer *w, const void *p, size_t n)
{
	const unsigned char *at = p;
	while (n && !w->error) {
		ssize_t k = write(w->fd, at, n);
		if (k < 0) {
			if (errno != EINTR)
				w->error = errno;
			continue;
		}
		at += k;
		n -= (size_t)k;
	}
}

static void w_flush(struct writer *w)
{
	if (!w->len)
		return;
	XXH3_64bits_update(w->hash, w->buf, w->len);
	write_all(w, w->buf, w->len);
	w->payload += w->len;
	w->len = 0;
}

static void w_bytes(struct writer *w, const void *p, size_t n)
{
	if (!n)
		return; /* p may be NULL: an empty section */
	if (n >= DIRECT_WRITE_BYTES) {
		w_flush(w);
		XXH3_64bits_update(w->hash, p, n);
		write_all(w, p, n);
		w->payload += n;
		return;
	}
	if (w->len + n > WRITE_BUFFER_BYTES)
		w_flush(w);
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void w_u32(struct writer *w, uint32_t v)
{
	w_bytes(w, &v, sizeof v);
}

static void w_u64(struct writer *w, uint64_t v)
{
	w_bytes(w, &v, sizeof v);
}

static void w_pad(struct writer *w)
{
	static const unsigned char zeros[8];
	size_t at = (size_t)((w->payload + w->len) & 7);
	if (at)
		w_bytes(w, zeros, 8 - at);
}

/* count, value bytes, hashes, id lengths, id bytes, values. */
static void w_id_table(struct writer *w, const struct pr_id_table *t)
{
	w_u64(w, t->count);
	w_u32(w, t->value_bytes);
	w_u32(w, 0);
	for (uint32_t i = 0; i < t->count; i++) {
		const struct pr_id_entry *id = pr_id_table_entry(t, i);
		w_u64(w, pr_id_hash(t, pr_id_entry_bytes(id), id->len));
	}
	for (uint32_t i = 0; i < t->count; i++)
		w_u32(w, pr_id_table_entry(t, i)->len);
	w_pad(w);
	for (uint32_t i = 0; i < t->count; i++) {
		const struct pr_id_entry *id = pr_id_table_entry(t, i);
		w_bytes(w, pr_id_entry_bytes(id), id->len);
	}
	w_pad(w);
	const uint32_t chunk = 1u << PR_ID_CHUNK_SHIFT;
	for (uint32_t at = 0; at < t->count; at += chunk) {
		uint32_t n = t->count - at < chunk ? t->count - at : chunk;
		w_bytes(w, pr_id_table_value(t, at), (size_t)n * t->value_bytes);
	}
	w_pad(w);
}

/* The scratch buffer as a section's bytes: their count, them, padding. */
static void w_scratch(struct writer *w)
{
	w_u64(w, w->scratch_len);
	w_bytes(w, w->scratch, w->scratch_len);
	w_pad(w);
	w->scratch_len = 0;
}

static unsigned char *put_sums(unsigned char *p, const struct pr_period_sums *sums)
{
	p = put_varint(p, zigzag(sums->all_minor));
	for (int g = 0; g < PR_GRAN_COUNT; g++)
		p = put_varint(p, zigzag(sums->current_minor[g]));
	for (int g = 0; g < PR_GRAN_COUNT; g++)
		p = put_varint(p, zigzag(sums->previous_minor[g]));
	return put_varint(p, zigzag(sums->month));
}

/* A shard's pairs: customer (its local index), store, sums. */
static void w_pairs(struct writer *w, const struct shard *sh)
{
	w_u64(w, sh->pairs.count);
	for (uint32_t i = 0; i < sh->pairs.count; i++) {
		const struct pair_aggregate *pa = pr_stable_array_at(&sh->pairs, i);
		if (!scratch_room(w, PAIR_MAX_BYTES))
			return;
		unsigned char *p = w->scratch + w->scratch_len;
		p = put_varint(p, pa->customer >> PR_SHARD_BITS);
		p = put_varint(p, pa->store);
		p = put_sums(p, &pa->sums);
		w->scratch_len = (size_t)(p - w->scratch);
	}
	w_scratch(w);
}

/* Days: the customer, and the day as a difference from the one before (the
 * log is in arrival order, so mostly 0 or 1). */
struct day_encoder {
	struct writer *w;
	int64_t day;
};

static void w_day_keys(void *ctx, const uint64_t *keys, size_t count)
{
	struct day_encoder *d = ctx;
	struct writer *w = d->w;
	if (!scratch_room(w, count * DAY_MAX_BYTES))
		return;
	unsigned char *p = w->scratch + w->scratch_len;
	for (size_t i = 0; i < count; i++) {
		int64_t day = (int32_t)(uint32_t)keys[i];
		p = put_varint(p, keys[i] >> 32);
		p = put_varint(p, zigzag(day - d->day));
		d->day = day;
	}
	w->scratch_len = (size_t)(p - w->scratch);
}

static void w_engine(struct writer *w, const struct pr_engine *e, const void *blob,
		     size_t blob_len)
{
	const struct pr_engine_options *o = &e->opt;
	assert(engine_applied(e));
	uint64_t pairs = 0;
	for (uint32_t s = 0; s < PR_SHARDS; s++)
		pairs += e->shards[s].pairs.count;
	w_u32(w, TAG_ENGINE);
	w_u32(w, PR_SHARDS);
	w_u32(w, (o->keep_periods ? KEEP_PERIODS : 0) | (o->keep_stores ? KEEP_STORES : 0) |
			 (o->keep_days ? KEEP_DAYS : 0));
	w_u32(w, 0);
	w_u64(w, pr_id_hash(&e->shards[0].customers, probe_text, sizeof probe_text - 1));
	w_u64(w, e->records);
	w_u64(w, e->volume_minor);
	w_u64(w, (uint64_t)e->watermark_ms);
	w_u64(w, e->has_watermark);
	w_u64(w, e->changes_epoch);
	w_u64(w, engine_customer_count(e));
	w_u64(w, pairs);

	w_u32(w, TAG_BLOB);
	w_u32(w, 0);
	w_u64(w, blob_len);
	if (blob_len)
		w_bytes(w, blob, blob_len);
	w_pad(w);

	w_u32(w, TAG_STORES);
	w_u32(w, 0);
	w_id_table(w, &e->stores);

	for (uint32_t s = 0; s < PR_SHARDS; s++) {
		const struct shard *sh = &e->shards[s];
		w_u32(w, TAG_SHARD);
		w_u32(w, s);
		w_id_table(w, &sh->customers);
		w_pairs(w, sh);
		w_u32(w, sh->days.as_set);
		w_u32(w, 0);
		w_u64(w, pr_day_history_count(&sh->days));
		struct day_encoder d = { w, 0 };
		pr_day_history_each(&sh->days, w_day_keys, &d);
		w_scratch(w);
	}
	w_u32(w, TAG_END);
	w_u32(w, 0);
}

static int sync_directory(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* Tells the caller of pr_checkpoint_write_releasing (if any) that the
 * engine is its writer's again. */
static void release(_Atomic bool *released)
{
	if (released)
		atomic_store_explicit(released, true, memory_order_release);
}

static int write_releasing(struct pr_engine *e, const char *path, const void *blob,
			   size_t blob_len, struct pr_checkpoint_stats *st, struct pr_error *err,
			   _Atomic bool *released)
{
	int64_t start = mono_us();
	if (e->bulk)
		return pr_error_set(err, -EBUSY, "%s: not written: a bulk load is in progress", path);
	if (pr_engine_drain(e) < 0)
		return pr_error_set(err, -ENOMEM, "%s: not written: out of memory applying "
				    "queued records", path);
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return pr_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
	struct writer w = { .fd = -1 };
	w.buf = malloc(WRITE_BUFFER_BYTES);
	w.hash = XXH3_createState();
	if (!w.buf || !w.hash) {
		free(w.buf);
		XXH3_freeState(w.hash);
		return pr_error_set(err, -ENOMEM, "%s: out of memory", path);
	}
	XXH3_64bits_reset(w.hash);
	int rc = 0;
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w.fd < 0) {
		rc = pr_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	struct header h = { .version = PR_CHECKPOINT_VERSION };
	/* The header goes in last, once the payload's size and hash are known. */
	if (lseek(w.fd, sizeof h, SEEK_SET) < 0) {
		rc = pr_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	w_engine(&w, e, blob, blob_len);
	release(released); /* the rest is the file's */
	w_flush(&w);
	if (w.error) {
		rc = pr_error_set(err, -w.error, "%s: write: %s", tmp, strerror(w.error));
		goto out;
	}
	memcpy(h.magic, magic, sizeof magic);
	h.header_bytes = sizeof h;
	h.payload_bytes = w.payload;
	h.payload_hash = XXH3_64bits_digest(w.hash);
	h.layout = layout_signature();
	h.written_ms = wall_ms();
	h.header_hash = XXH3_64bits(&h, offsetof(struct header, header_hash));
	if (pwrite(w.fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
		rc = pr_error_set(err, errno ? -errno : -EIO, "%s: write: %s", tmp,
				  strerror(errno ? errno : EIO));
		goto out;
	}
	int64_t sync_start = mono_us();
	if (fsync(w.fd) < 0) {
		rc = pr_error_set(err, -errno, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	int64_t sync_us = mono_us() - sync_start;
	if (close(w.fd) < 0) {
		w.fd = -1;
		rc = pr_error_set(err, -errno, "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	w.fd = -1;
	if (rename(tmp, path) < 0) {
		rc = pr_error_set(err, -errno, "%s: rename to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	sync_start = mono_us();
	int drc = sync_directory(path);
	sync_us += mono_us() - sync_start;
	if (drc < 0) {
		/* The file is in place; only its name's durability is in doubt. */
		rc = pr_error_set(err, drc, "%s: fsync of its directory: %s", path, strerror(-drc));
		goto out_done;
	}
	if (st) {
		st->bytes = sizeof h + w.payload;
		st->write_us = mono_us() - start;
		st->sync_us = sync_us;
		st->written_ms = h.written_ms;
	}
	goto out_done;
out:
	if (w.fd >= 0)
		close(w.fd);
	unlink(tmp);
out_done:
	free(w.buf);
	free(w.scratch);
	XXH3_freeState(w.hash);
	return rc;
}

int pr_checkpoint_write(struct pr_engine *e, const char *path, const void *blob,
			size_t blob_len, struct pr_checkpoint_stats *st, struct pr_error *err)
{
	return pr_checkpoint_write_releasing(e, path, blob, blob_len, st, err, NULL);
}

int pr_checkpoint_write_releasing(struct pr_engine *e, const char *path, const void *blob,
				  size_t blob_len, struct pr_checkpoint_stats *st,
				  struct pr_error *err, _Atomic bool *released)
{
	int rc = write_releasing(e, path, blob, blob_len, st, err, released);
	release(released);
	return rc;
}

/* ---- reading -------------------------------------------------------------- */

struct reader {
	const unsigned char *p, *start, *end;
	const char *path;
	struct pr_error *err;
	int rc; /* the first fault */
};

static int corrupt(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* In a reading step: note the fault and leave the step. */
#define FAIL(...)                          \
	do {                               \
		corrupt(r, __VA_ARGS__);   \
		return;                    \
	} while (0)

static int corrupt(struct reader *r, const char *fmt, ...)
{
	if (r->rc)
		return r->rc;
	char what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	r->rc = pr_error_set(r->err, -EINVAL, "%s: corrupt checkpoint: %s (at byte %llu)", r->path,
			     what, (unsigned long long)(r->p - r->start));
	return r->rc;
}

/* n bytes at the cursor, or NULL (and a fault) past the end. */
static const void *r_bytes(struct reader *r, uint64_t n, const char *what)
{
	if (r->rc)
		return NULL;
	if (n > (uint64_t)(r->end - r->p)) {
		corrupt(r, "%s runs past the end of the payload", what);
		return NULL;
	}
	const void *at = r->p;
	r->p += n;
	return at;
}

static uint32_t r_u32(struct reader *r, const char *what)
{
	uint32_t v = 0;
	const void *p = r_bytes(r, sizeof v, what);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t r_u64(struct reader *r, const char *what)
{
	uint64_t v = 0;
	const void *p = r_bytes(r, sizeof v, what);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}

static void r_pad(struct reader *r)
{
	size_t at = (size_t)((r->p - r->start) & 7);
	if (at)
		r_bytes(r, 8 - at, "padding");
}

static void r_tag(struct reader *r, uint32_t tag, const char *name)
{
	uint32_t got = r_u32(r, name);
	if (!r->rc && got != tag)
		corrupt(r, "expected the %s section", name);
}

/*
 * Reads an id table into t (initialised, empty) sized for its count.
 * Refuses a count over `max`, a value size other than value_bytes, a
 * duplicate id, and, for customers (shard >= 0), an id of another shard.
 */
static void r_id_table(struct reader *r, struct pr_id_table *t, uint32_t value_bytes,
		       uint64_t max, int shard, const char *what)
{
	uint64_t n = r_u64(r, what);
	uint32_t vb = r_u32(r, what);
	r_u32(r, what);
	if (r->rc)
		return;
	if (n > max)
		FAIL("%s: %llu ids, more than %llu", what, (unsigned long long)n,
				     (unsigned long long)max);
	if (vb != value_bytes)
		FAIL("%s: values of %u bytes, expected %u", what, vb, value_bytes);
	/* Sized by what the payload can hold before anything is allocated. */
	const unsigned char *hashes = r_bytes(r, n * 8, what);
	const unsigned char *lens = r_bytes(r, n * 4, what);
	r_pad(r);
	if (r->rc)
		return;
	uint64_t id_bytes = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint32_t len;
		memcpy(&len, lens + i * 4, 4);
		id_bytes += len;
	}
	const char *ids = r_bytes(r, id_bytes, what);
	r_pad(r);
	const unsigned char *values = r_bytes(r, n * value_bytes, what);
	r_pad(r);
	if (r->rc)
		return;
	if (n > 16) {
		if (pr_id_table_reset(t, n) < 0) {
			r->rc = pr_error_set(r->err, -ENOMEM, "%s: out of memory loading %s", r->path, what);
			return;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t h;
		uint32_t len;
		memcpy(&h, hashes + i * 8, 8);
		memcpy(&len, lens + i * 4, 4);
		/* Tables keep no hashes: growth hashes the ids again, so one
		 * stored under another hash would be lost from its slot. */
		if (pr_id_hash(t, ids, len) != h)
			FAIL("%s: id %llu is not stored under its hash", what, (unsigned long long)i);
		if (shard >= 0 && shard_of_hash(h) != (uint32_t)shard)
			FAIL("%s: id %llu hashes to another shard", what,
					     (unsigned long long)i);
		bool created;
		uint32_t at = pr_id_table_upsert(t, ids, len, h, &created);
		if (at == PR_ID_NONE) {
			r->rc = pr_error_set(r->err, -ENOMEM, "%s: out of memory loading %s", r->path, what);
			return;
		}
		if (!created)
			FAIL("%s: id %llu appears twice", what, (unsigned long long)i);
		ids += len;
	}
	const uint32_t chunk = 1u << PR_ID_CHUNK_SHIFT;
	for (uint64_t at = 0; at < n; at += chunk) {
		uint64_t k = n - at < chunk ? n - at : chunk;
		memcpy(pr_id_table_value(t, (uint32_t)at), values + at * value_bytes, k * value_bytes);
	}
}

/* The shard's pairs, checked against its customers and the stores, and
 * the pair index rebuilt from them. */
static void r_pairs(struct reader *r, struct pr_engine *e, uint32_t s)
{
	struct shard *sh = &e->shards[s];
	uint64_t n = r_u64(r, "pairs"), bytes = r_u64(r, "pairs");
	const unsigned char *p = r_bytes(r, bytes, "pairs");
	r_pad(r);
	if (r->rc)
		return; /* p is NULL */
	const unsigned char *end = p + bytes;
	if (n && !e->opt.keep_stores)
		FAIL("shard %u: pairs in an engine that keeps no stores", s);
	if (n > bytes) /* each takes a byte at least */
		FAIL("shard %u: %llu pairs in %llu bytes", s, (unsigned long long)n,
		     (unsigned long long)bytes);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t at = pr_stable_array_push(&sh->pairs);
		if (at == PR_STABLE_NONE) {
			r->rc = pr_error_set(r->err, -ENOMEM, "%s: out of memory loading pairs", r->path);
			return;
		}
		struct pair_aggregate *pa = pr_stable_array_at(&sh->pairs, at);
		uint64_t v[10];
		for (int k = 0; k < 10; k++)
			if (!get_varint(&p, end, &v[k]))
				FAIL("shard %u: pair %llu is cut short", s, (unsigned long long)i);
		int64_t month = unzigzag(v[9]);
		if (v[0] >= PR_SHARD_LOCAL_MAX || v[1] > UINT32_MAX || month < INT32_MIN ||
		    month > INT32_MAX)
			FAIL("shard %u: pair %llu is out of range", s, (unsigned long long)i);
		pa->customer = customer_ref(s, (uint32_t)v[0]);
		pa->store = (uint32_t)v[1];
		pa->sums.all_minor = unzigzag(v[2]);
		for (int g = 0; g < PR_GRAN_COUNT; g++) {
			pa->sums.current_minor[g] = unzigzag(v[3 + g]);
			pa->sums.previous_minor[g] = unzigzag(v[6 + g]);
		}
		pa->sums.month = (int32_t)month;
	}
	if (p != end)
		FAIL("shard %u: %llu bytes after the pairs", s, (unsigned long long)(end - p));
	if (e->lean)
		return; /* no pairs (keeps no stores), and its customers name none */
	/* Every customer's inline pairs name pairs of its own. */
	uint32_t customers = sh->customers.count, stores = e->stores.count;
	uint64_t named = 0, indexed = 0;
	for (uint32_t local = 0; local < customers; local++) {
		const struct customer_aggregate *c = pr_id_table_value(&sh->customers, local);
		named += c->stores;
		indexed += c->stores > PR_PAIR_INLINE ? c->stores - PR_PAIR_INLINE : 0;
		for (uint32_t i = 0; i < PR_PAIR_INLINE && i < c->stores; i++) {
			const struct pair_aggregate *pa;
			if (c->pair_at[i] >= n ||
			    (pa = pr_stable_array_at(&sh->pairs, c->pair_at[i]))->customer !=
				    customer_ref(s, local) ||
			    pa->store != c->pair_store[i])
				FAIL("shard %u: customer %u names a pair not its own",
						     s, local);
			for (uint32_t j = 0; j < i; j++)
				if (c->pair_store[j] == c->pair_store[i] ||
				    c->pair_at[j] == c->pair_at[i])
					FAIL("shard %u: customer %u names one store twice", s,
					     local);
		}
	}
	if (named != n)
		FAIL("shard %u: customers name %llu pairs, the shard has %llu", s,
				     (unsigned long long)named, (unsigned long long)n);
	/* The rest are found through the pair index. */
	if (indexed && pr_pair_index_reserve(&sh->pair_index, indexed) < 0) {
		r->rc = pr_error_set(r->err, -ENOMEM, "%s: out of memory loading pairs", r->path);
		return;
	}
	for (uint32_t at = 0; at < n; at++) {
		const struct pair_aggregate *pa = pr_stable_array_at(&sh->pairs, at);
		uint32_t local = pa->customer >> PR_SHARD_BITS;
		if (local >= customers || pa->store >= stores)
			FAIL("shard %u: pair %u names customer %u or store %u, which are not there",
			     s, at, local, pa->store);
		const struct customer_aggregate *c = pr_id_table_value(&sh->customers, local);
		bool inline_pair = false, inline_store = false;
		for (uint32_t i = 0; i < PR_PAIR_INLINE && i < c->stores; i++) {
			inline_pair |= c->pair_at[i] == at;
			inline_store |= c->pair_store[i] == pa->store;
		}
		if (inline_pair)
			continue;
		/* A (store, customer) twice would put him twice in the store's
		 * ranking (found by the checkpoint fuzz target). */
		uint64_t key = pr_pair_index_key(pa->store, local);
		if (inline_store || pr_pair_index_find(&sh->pair_index, key) != PR_PAIR_INDEX_NONE)
			FAIL("shard %u: customer %u has two pairs for store %u", s,
					     local, pa->store);
		if (sh->pair_index.count == indexed)
			FAIL("shard %u: more pairs than its customers name", s);
		pr_pair_index_insert(&sh->pair_index, key, at);
	}
}

static void r_days(struct reader *r, struct pr_engine *e, uint32_t s)
{
	struct shard *sh = &e->shards[s];
	uint32_t as_set = r_u32(r, "days");
	r_u32(r, "days");
	uint64_t n = r_u64(r, "days"), bytes = r_u64(r, "days");
	const unsigned char *p = r_bytes(r, bytes, "days");
	r_pad(r);
	if (r->rc)
		return; /* p is NULL */
	const unsigned char *end = p + bytes;
	if (as_set > 1 || (n && !e->opt.keep_days))
		FAIL("shard %u: purchase days the engine does not keep", s);
	if (n > bytes / 2) /* each takes two bytes at least */
		FAIL("shard %u: %llu days in %llu bytes", s, (unsigned long long)n,
		     (unsigned long long)bytes);
	uint64_t *keys = malloc((n ? n : 1) * sizeof *keys);
	if (!keys) {
		r->rc = pr_error_set(r->err, -ENOMEM, "%s: out of memory loading purchase days",
				     r->path);
		return;
	}
	int64_t day = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t customer, delta;
		if (!get_varint(&p, end, &customer) || !get_varint(&p, end, &delta)) {
			corrupt(r, "shard %u: purchase day %llu is cut short", s, (unsigned long long)i);
			break;
		}
		day += unzigzag(delta);
		if (customer >= sh->customers.count || day < INT32_MIN || day > INT32_MAX) {
			corrupt(r, "shard %u: a purchase day of customer %llu, who is not there", s,
				(unsigned long long)customer);
			break;
		}
		keys[i] = customer << 32 | (uint32_t)(int32_t)day;
	}
	if (!r->rc && p != end)
		corrupt(r, "shard %u: %llu bytes after the purchase days", s,
			(unsigned long long)(end - p));
	if (!r->rc && pr_day_history_restore(&sh->days, as_set, keys, n) < 0)
		r->rc = pr_error_set(r->err, -ENOMEM, "%s: out of memory loading purchase days",
				     r->path);
	free(keys);
}

/*
 * The engine's exactness rests on sums bounded by the volume of all records
 * (engine.c): a file that passes its checksum but breaks that bound (written
 * by anything but this code) would overflow int64 in rankings. So, summed
 * over every customer and every pair: |all| <= volume, and per granularity
 * |current| + |previous| <= volume (a window reads one of the two per
 * customer); times lie in years 0..9999 with first <= last.
 */
struct sum_bound {
	uint64_t volume;
	unsigned __int128 all, periods[PR_GRAN_COUNT];
	bool broken;
};

static uint64_t magnitude(int64_t v)
{
	return v < 0 ? -(uint64_t)v : (uint64_t)v;
}

static void bound_add(struct sum_bound *b, const struct pr_period_sums *sums)
{
	b->all += magnitude(sums->all_minor);
	b->broken |= b->all > b->volume;
	for (int g = 0; g < PR_GRAN_COUNT; g++) {
		b->periods[g] += magnitude(sums->current_minor[g]);
		b->periods[g] += magnitude(sums->previous_minor[g]);
		b->broken |= b->periods[g] > b->volume;
	}
}

#define TIME_MIN_MS (-62167219200000LL) /* 0000-01-01, as engine.c */
#define TIME_MAX_MS (253402300799999LL) /* 9999-12-31T23:59:59.999 */

static void check_customers(struct reader *r, const struct pr_engine *e, uint32_t s,
			    struct sum_bound *b)
{
	const struct shard *sh = &e->shards[s];
	for (uint32_t local = 0; e->lean && local < sh->customers.count; local++) {
		const struct customer_total *t = pr_id_table_value(&sh->customers, local);
		b->all += magnitude(t->all_minor);
		b->broken |= b->all > b->volume;
	}
	for (uint32_t local = 0; !e->lean && local < sh->customers.count; local++) {
		const struct customer_aggregate *c = pr_id_table_value(&sh->customers, local);
		if (c->first_ms < TIME_MIN_MS || c->last_ms > TIME_MAX_MS || c->first_ms > c->last_ms)
			FAIL("shard %u: customer %u's first and last purchase times", s, local);
		bound_add(b, &c->sums);
	}
	if (b->broken)
		FAIL("shard %u: customer sums beyond the volume of all records", s);
}

/* Checks the header, the size and the checksum: nothing is built before. */
static int check_file(const char *path, const unsigned char *map, size_t size,
		      const struct header **out, struct pr_error *err)
{
	struct header h;
	if (size < sizeof h)
		return pr_error_set(err, -EINVAL, "%s: not a checkpoint: %zu bytes, shorter than "
				    "its %zu-byte header (truncated?)", path, size, sizeof h);
	memcpy(&h, map, sizeof h);
	if (memcmp(h.magic, magic, sizeof magic) != 0)
		return pr_error_set(err, -EINVAL, "%s: not a paretod checkpoint (bad magic)", path);
	if (XXH3_64bits(&h, offsetof(struct header, header_hash)) != h.header_hash)
		return pr_error_set(err, -EINVAL, "%s: corrupt checkpoint: the header's checksum "
				    "does not match", path);
	if (h.version != PR_CHECKPOINT_VERSION || h.header_bytes != sizeof h)
		return pr_error_set(err, -EINVAL, "%s: checkpoint format version %u, this build "
				    "reads version %u", path, h.version, PR_CHECKPOINT_VERSION);
	if (h.layout != layout_signature())
		return pr_error_set(err, -EINVAL, "%s: checkpoint written by a build with another "
				    "memory layout (%016llx, this build %016llx)", path,
				    (unsigned long long)h.layout, (unsigned long long)layout_signature());
	if (size - sizeof h != h.payload_bytes)
		return pr_error_set(err, -EINVAL, "%s: truncated checkpoint: %zu bytes, the header "
				    "says %llu", path, size,
				    (unsigned long long)(h.payload_bytes + sizeof h));
	if (XXH3_64bits(map + sizeof h, h.payload_bytes) != h.payload_hash)
		return pr_error_set(err, -EINVAL, "%s: corrupt checkpoint: the payload's checksum "
				    "does not match", path);
	*out = (const struct header *)(const void *)map;
	return 0;
}

static int load(struct reader *r, const struct pr_engine_options *opt, struct pr_engine **out,
		void **blob_out, size_t *blob_len)
{
	r_tag(r, TAG_ENGINE, "engine");
	uint32_t shards = r_u32(r, "engine");
	uint32_t keep = r_u32(r, "engine");
	r_u32(r, "engine");
	uint64_t probe = r_u64(r, "engine");
	uint64_t records = r_u64(r, "engine"), volume = r_u64(r, "engine");
	int64_t watermark = (int64_t)r_u64(r, "engine");
	uint64_t has_watermark = r_u64(r, "engine"), epoch = r_u64(r, "engine");
	uint64_t customers = r_u64(r, "engine");
	r_u64(r, "engine"); /* pairs: for readers of the file, checked per shard */
	if (r->rc)
		return r->rc;
	if (shards != PR_SHARDS || keep > 7 || has_watermark > 1 || volume > INT64_MAX ||
	    (has_watermark && (watermark < TIME_MIN_MS || watermark > TIME_MAX_MS)))
		return corrupt(r, "engine: %u shards, keeps %#x, volume %llu, watermark %lld", shards,
			       keep, (unsigned long long)volume, (long long)watermark);

	r_tag(r, TAG_BLOB, "blob");
	r_u32(r, "blob");
	uint64_t blob_bytes = r_u64(r, "blob");
	const void *blob = r_bytes(r, blob_bytes, "blob");
	r_pad(r);
	if (r->rc)
		return r->rc;

	struct pr_engine_options o = *opt;
	o.keep_periods = keep & KEEP_PERIODS;
	o.keep_stores = keep & KEEP_STORES;
	o.keep_days = keep & KEEP_DAYS;
	o.customers_hint = 0; /* each shard is sized from its count below */
	struct pr_engine *e;
	int rc = pr_engine_create(&e, &o, r->err);
	if (rc < 0)
		return rc;
	e->opt.customers_hint = customers > opt->customers_hint ? customers : opt->customers_hint;
	uint64_t expect = pr_id_hash(&e->shards[0].customers, probe_text, sizeof probe_text - 1);
	if (probe != expect) {
		pr_engine_destroy(e);
		return pr_error_set(r->err, -EINVAL, "%s: checkpoint written with another customer "
				    "id hash", r->path);
	}
	r_tag(r, TAG_STORES, "stores");
	r_u32(r, "stores");
	r_id_table(r, &e->stores, e->stores.value_bytes, PR_ID_MAX, -1, "stores");
	uint64_t total = 0;
	struct sum_bound customer_bound = { .volume = volume }, pair_bound = { .volume = volume };
	for (uint32_t s = 0; s < PR_SHARDS && !r->rc; s++) {
		struct shard *sh = &e->shards[s];
		r_tag(r, TAG_SHARD, "shard");
		if (r_u32(r, "shard") != s && !r->rc)
			corrupt(r, "expected shard %u", s);
		char what[32];
		snprintf(what, sizeof what, "shard %u customers", s);
		r_id_table(r, &sh->customers, sh->customers.value_bytes,
			   PR_SHARD_LOCAL_MAX - 1, (int)s, what);
		total += sh->customers.count;
		if (!r->rc)
			check_customers(r, e, s, &customer_bound);
		r_pairs(r, e, s);
		for (uint32_t at = 0; !r->rc && at < sh->pairs.count; at++)
			bound_add(&pair_bound, &((const struct pair_aggregate *)
						 pr_stable_array_at(&sh->pairs, at))->sums);
		if (!r->rc && pair_bound.broken)
			corrupt(r, "shard %u: pair sums beyond the volume of all records", s);
		r_days(r, e, s);
	}
	r_tag(r, TAG_END, "end");
	r_u32(r, "end");
	if (!r->rc && total != customers)
		corrupt(r, "%llu customers in the shards, the engine says %llu",
			(unsigned long long)total, (unsigned long long)customers);
	if (!r->rc && r->p != r->end)
		corrupt(r, "%llu bytes after the end", (unsigned long long)(r->end - r->p));
	if (r->rc) {
		pr_engine_destroy(e);
		return r->rc;
	}
	e->records = records;
	e->volume_minor = volume;
	e->watermark_ms = watermark;
	e->has_watermark = has_watermark;
	if (has_watermark)
		pr_periods_of(watermark, &e->watermark_periods);
	/* The journal starts empty in a new epoch: rankings are built whole. */
	e->changes_epoch = epoch + 1;
	*blob_out = NULL;
	*blob_len = blob_bytes;
	if (blob_bytes) {
		if (!(*blob_out = malloc(blob_bytes))) {
			pr_engine_destroy(e);
			return pr_error_set(r->err, -ENOMEM, "%s: out of memory", r->path);
		}
		memcpy(*blob_out, blob, blob_bytes);
	}
	*out = e;
	return 0;
}

int pr_checkpoint_read(const char *path, const struct pr_engine_options *opt,
		       struct pr_engine **out, void **blob, size_t *blob_len,
		       struct pr_checkpoint_stats *st, struct pr_error *err)
{
	int64_t start = mono_us();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_error_set(err, -errno, "%s: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int code = S_ISREG(sb.st_mode) ? -errno : -EINVAL;
		close(fd);
		return pr_error_set(err, code, "%s: %s", path,
				    code == -EINVAL ? "not a regular file" : strerror(-code));
	}
	size_t size = (size_t)sb.st_size;
	unsigned char *map = NULL;
	if (size) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (map == MAP_FAILED) {
			int e = errno;
			close(fd);
			return pr_error_set(err, -e, "%s: mmap: %s", path, strerror(e));
		}
		madvise(map, size, MADV_SEQUENTIAL);
	}
	close(fd);
	const struct header *h = NULL;
	int rc = check_file(path, map ? map : (const unsigned char *)"", size, &h, err);
	if (rc == 0) {
		struct reader r = { .p = map + sizeof *h, .start = map + sizeof *h,
				    .end = map + size, .path = path, .err = err };
		rc = load(&r, opt, out, blob, blob_len);
		if (rc == 0 && st) {
			st->bytes = size;
			st->written_ms = h->written_ms;
			st->sync_us = 0;
			st->write_us = mono_us() - start;
		}
	}
	if (map)
		munmap(map, size);
	return rc;
}
