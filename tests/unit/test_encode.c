/*
 * test_encode.c -- the encoder (codec.c): the bytes it writes, a round
 * trip through the decoder for every message type, and its limits.
 */
#include "proto_fixture.h"

/* ---- the encoder's wire bytes ---- */

static void
enc_ping_has_the_documented_wire_bytes(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	/* 4-byte BE length, map16 of 2: "t": "ping", "id": 1 */
	static const unsigned char want[] = {
	    0x00, 0x00, 0x00, 0x0e, 0xde, 0x00, 0x02, 0xa1, 0x74,
	    0xa4, 'p',  'i',  'n',  'g',  0xa2, 'i',  'd',  0x01,
	};

	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(fx->out.len, sizeof(want));
	assert_memory_equal(fx->out.data, want, sizeof(want));
}

/*
 * The encoder writes integers and strings itself, not through msgpack-c:
 * at every boundary of every form, its bytes must be msgpack-c's.
 */
/* A ping begun afresh in fx->out, fx->sb emptied: where its fields go. */
static size_t
enc_fresh(struct fx *fx, struct proto_enc *e)
{
	fx->out.len = 0;
	msgpack_sbuffer_clear(&fx->sb);
	proto_enc_begin(e, &fx->out, PROTO_PING, 1);
	return fx->out.len;
}

/* What the encoder wrote since before is what msgpack-c wrote to fx->sb. */
static void
assert_enc_is_sb(const struct fx *fx, size_t before)
{
	assert_int_equal(fx->out.len - before, fx->sb.size);
	assert_memory_equal(fx->out.data + before, fx->sb.data, fx->sb.size);
}

static void
enc_scalars_match_msgpack_c_at_every_boundary(void **state)
{
	struct fx *fx = *state;
	static const uint64_t us[] = {
	    0,          0x7f,           0x80,       0xff,
	    0x100,      0xffff,         0x10000,    0xffffffffULL,
	    1ULL << 32, UINT64_MAX - 1, UINT64_MAX,
	};
	static const int64_t is[] = {
	    -1,        -32,       -33,
	    -128,      -129,      -32768,
	    -32769,    INT32_MIN, INT32_MIN - 1LL,
	    INT64_MIN, 0,         5,
	    0x80,      INT64_MAX,
	};
	static const size_t lens[] = {0, 31, 32, 255, 256, 1024};
	struct proto_enc e;
	size_t i, before;

	for (i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
		before = enc_fresh(fx, &e);
		proto_enc_u64(&e, PF_DONE, us[i]);
		pk_str(&fx->pk, "done");
		msgpack_pack_uint64(&fx->pk, us[i]);
		assert_enc_is_sb(fx, before);
	}
	for (i = 0; i < sizeof(is) / sizeof(is[0]); i++) {
		before = enc_fresh(fx, &e);
		proto_enc_i64(&e, PF_WORKER, is[i]);
		pk_str(&fx->pk, "worker");
		msgpack_pack_int64(&fx->pk, is[i]);
		assert_enc_is_sb(fx, before);
	}
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		before = enc_fresh(fx, &e);
		proto_enc_str(&e, PF_MESSAGE, filler, lens[i]);
		proto_enc_bool(&e, PF_ALL, lens[i] % 2 == 0);
		pk_str(&fx->pk, "message");
		msgpack_pack_str_with_body(&fx->pk, filler, lens[i]);
		pk_str(&fx->pk, "all");
		if (lens[i] % 2 == 0)
			msgpack_pack_true(&fx->pk);
		else
			msgpack_pack_false(&fx->pk);
		assert_enc_is_sb(fx, before);
		assert_int_equal(proto_enc_end(&e), 0);
		assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
		assert_int_equal(fx->m.f[PF_MESSAGE].via.str.size, lens[i]);
	}
}

/* ---- round trips, one per message type ---- */

static void
round_trip_hello(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_HELLO, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	end_and_decode(fx, &e, PROTO_HELLO, 1, B(VERSION));
	assert_int_equal(proto_u64(&fx->m, PF_VERSION, 0), PROTO_VERSION);
}

static void
round_trip_ping(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PING, UINT64_MAX);
	end_and_decode(fx, &e, PROTO_PING, UINT64_MAX, 0);
}

static void
round_trip_submit_with_args(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	const msgpack_object *args;

	proto_enc_begin(&e, &fx->out, PROTO_SUBMIT, 2);
	proto_enc_cstr(&e, PF_TASK, "primes");
	proto_enc_key(&e, PF_ARGS);
	proto_enc_map_open(&e);
	proto_enc_u64(&e, PF_LIMIT, 2000000);
	proto_enc_cstr(&e, PF_NAME, "first");
	proto_enc_close(&e);
	proto_enc_cstr(&e, PF_EXEC, "thread");
	proto_enc_bool(&e, PF_WATCH, true);
	proto_enc_bool(&e, PF_DAEMON, false);
	proto_enc_u64(&e, PF_TIMEOUT, 30000);
	end_and_decode(fx, &e, PROTO_SUBMIT, 2,
	               B(TASK) | B(ARGS) | B(EXEC) | B(WATCH) | B(DAEMON) |
	                   B(TIMEOUT));
	assert_str_field(&fx->m, PF_TASK, "primes");
	assert_str_field(&fx->m, PF_EXEC, "thread");
	assert_true(proto_bool(&fx->m, PF_WATCH, false));
	assert_false(proto_bool(&fx->m, PF_DAEMON, true));
	assert_int_equal(proto_u64(&fx->m, PF_TIMEOUT, 0), 30000);
	args = &fx->m.f[PF_ARGS];
	assert_int_equal(args->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(args->via.map.size, 2);
	assert_str_obj(&args->via.map.ptr[0].key, "limit");
	assert_int_equal(args->via.map.ptr[0].val.type,
	                 MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(args->via.map.ptr[0].val.via.u64, 2000000);
	assert_str_obj(&args->via.map.ptr[1].key, "name");
	assert_str_obj(&args->via.map.ptr[1].val, "first");
}

static void
round_trip_watch(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_WATCH, 4);
	proto_enc_u64(&e, PF_JOB, 77);
	proto_enc_bool(&e, PF_FRESH, true);
	end_and_decode(fx, &e, PROTO_WATCH, 4, B(JOB) | B(FRESH));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 77);
	assert_true(proto_bool(&fx->m, PF_FRESH, false));
}

static void
round_trip_status(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_STATUS, 5);
	proto_enc_u64(&e, PF_JOB, UINT64_C(1) << 40);
	end_and_decode(fx, &e, PROTO_STATUS, 5, B(JOB));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), UINT64_C(1) << 40);
}

static void
round_trip_ps(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PS, 6);
	proto_enc_bool(&e, PF_ALL, true);
	proto_enc_u64(&e, PF_LIMIT, 50);
	end_and_decode(fx, &e, PROTO_PS, 6, B(ALL) | B(LIMIT));
	assert_true(proto_bool(&fx->m, PF_ALL, false));
	assert_int_equal(proto_u64(&fx->m, PF_LIMIT, 0), 50);
}

static void
round_trip_cancel(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_CANCEL, 7);
	proto_enc_u64(&e, PF_JOB, 9);
	end_and_decode(fx, &e, PROTO_CANCEL, 7, B(JOB));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 9);
}

static void
round_trip_result(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_RESULT, 8);
	proto_enc_u64(&e, PF_JOB, 10);
	end_and_decode(fx, &e, PROTO_RESULT, 8, B(JOB));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 10);
}

static void
round_trip_tasks(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_TASKS, 9);
	end_and_decode(fx, &e, PROTO_TASKS, 9, 0);
}

static void
round_trip_shutdown(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_SHUTDOWN, 10);
	end_and_decode(fx, &e, PROTO_SHUTDOWN, 10, 0);
}

static void
round_trip_welcome(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_WELCOME, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_SERVER, "concd 0.1.0");
	proto_enc_u64(&e, PF_PID, 4242);
	end_and_decode(fx, &e, PROTO_WELCOME, 1,
	               B(VERSION) | B(SERVER) | B(PID));
	assert_int_equal(proto_u64(&fx->m, PF_VERSION, 0), PROTO_VERSION);
	assert_str_field(&fx->m, PF_SERVER, "concd 0.1.0");
	assert_int_equal(proto_u64(&fx->m, PF_PID, 0), 4242);
}

static void
round_trip_pong(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PONG, 11);
	end_and_decode(fx, &e, PROTO_PONG, 11, 0);
}

static void
pong_with_id_zero_carries_no_id(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PONG, 0);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_PONG);
	assert_int_equal(fx->m.id, 0);
	assert_int_equal(fx->m.present, B(T));
}

static void
round_trip_accepted(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_ACCEPTED, 2);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_cstr(&e, PF_STATE, proto_states[PS_QUEUED]);
	proto_enc_cstr(&e, PF_EXEC, proto_execs[PX_THREAD]);
	proto_enc_cstr(&e, PF_REQUESTED, proto_execs[PX_AUTO]);
	end_and_decode(fx, &e, PROTO_ACCEPTED, 2,
	               B(JOB) | B(STATE) | B(EXEC) | B(REQUESTED));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 1);
	assert_str_field(&fx->m, PF_STATE, "queued");
	assert_str_field(&fx->m, PF_EXEC, "thread");
	assert_str_field(&fx->m, PF_REQUESTED, "auto");
}

static void
round_trip_progress(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PROGRESS, 2);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_u64(&e, PF_DONE, 3);
	proto_enc_u64(&e, PF_TOTAL, 8);
	proto_enc_cstr(&e, PF_MSG, "sieving 3/8");
	end_and_decode(fx, &e, PROTO_PROGRESS, 2,
	               B(JOB) | B(DONE) | B(TOTAL) | B(MSG));
	assert_int_equal(proto_u64(&fx->m, PF_DONE, 0), 3);
	assert_int_equal(proto_u64(&fx->m, PF_TOTAL, 0), 8);
	assert_str_field(&fx->m, PF_MSG, "sieving 3/8");
}

static void
round_trip_end_with_raw_result(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	msgpack_object want;
	msgpack_zone z;
	size_t off = 0;

	/* a stored result, already msgpack */
	msgpack_pack_map(&fx->pk, 2);
	pk_str(&fx->pk, "count");
	msgpack_pack_uint32(&fx->pk, 148933);
	pk_str(&fx->pk, "first");
	msgpack_pack_array(&fx->pk, 3);
	msgpack_pack_int8(&fx->pk, 2);
	msgpack_pack_double(&fx->pk, 3.5);
	msgpack_pack_nil(&fx->pk);

	proto_enc_begin(&e, &fx->out, PROTO_END, 2);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_cstr(&e, PF_STATE, proto_states[PS_SUCCEEDED]);
	proto_enc_raw(&e, PF_RESULT, fx->sb.data, fx->sb.size);
	proto_enc_i64(&e, PF_WORKER, -1);
	end_and_decode(fx, &e, PROTO_END, 2,
	               B(JOB) | B(STATE) | B(RESULT) | B(WORKER));
	assert_str_field(&fx->m, PF_STATE, "succeeded");
	assert_int_equal(proto_i64(&fx->m, PF_WORKER, 0), -1);

	assert_true(msgpack_zone_init(&z, 1024));
	assert_int_equal(
	    msgpack_unpack(fx->sb.data, fx->sb.size, &off, &z, &want),
	    MSGPACK_UNPACK_SUCCESS);
	assert_true(msgpack_object_equal(want, fx->m.f[PF_RESULT]));
	msgpack_zone_destroy(&z);
}

static void
round_trip_end_of_a_failed_job(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_END, 3);
	proto_enc_u64(&e, PF_JOB, 4);
	proto_enc_cstr(&e, PF_STATE, proto_states[PS_FAILED]);
	proto_enc_cstr(&e, PF_ERROR, proto_errors[PE_TASK_FAILED].name);
	proto_enc_cstr(&e, PF_MESSAGE, "checksum: no such file");
	end_and_decode(fx, &e, PROTO_END, 3,
	               B(JOB) | B(STATE) | B(ERROR) | B(MESSAGE));
	assert_str_field(&fx->m, PF_STATE, "failed");
	assert_str_field(&fx->m, PF_ERROR, "task_failed");
	assert_str_field(&fx->m, PF_MESSAGE, "checksum: no such file");
}

static void
round_trip_job(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_JOB, 12);
	proto_enc_u64(&e, PF_JOB, 5);
	proto_enc_cstr(&e, PF_TASK, "sleep");
	proto_enc_cstr(&e, PF_STATE, "running");
	proto_enc_cstr(&e, PF_EXEC, "process");
	proto_enc_cstr(&e, PF_REQUESTED, "process");
	proto_enc_u64(&e, PF_UID, 1000);
	proto_enc_i64(&e, PF_WORKER, 3);
	proto_enc_u64(&e, PF_TID, 9876);
	proto_enc_u64(&e, PF_SUBMITTED, 1700000000000);
	proto_enc_u64(&e, PF_STARTED, 1700000000100);
	proto_enc_u64(&e, PF_DONE, 1);
	proto_enc_u64(&e, PF_TOTAL, 2);
	proto_enc_bool(&e, PF_CANCEL_PENDING, true);
	end_and_decode(fx, &e, PROTO_JOB, 12,
	               B(JOB) | B(TASK) | B(STATE) | B(EXEC) | B(REQUESTED) |
	                   B(UID) | B(WORKER) | B(TID) | B(SUBMITTED) |
	                   B(STARTED) | B(DONE) | B(TOTAL) | B(CANCEL_PENDING));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 5);
	assert_str_field(&fx->m, PF_TASK, "sleep");
	assert_str_field(&fx->m, PF_STATE, "running");
	assert_str_field(&fx->m, PF_EXEC, "process");
	assert_str_field(&fx->m, PF_REQUESTED, "process");
	assert_int_equal(proto_u64(&fx->m, PF_UID, 0), 1000);
	assert_int_equal(proto_i64(&fx->m, PF_WORKER, -1), 3);
	assert_int_equal(proto_u64(&fx->m, PF_TID, 0), 9876);
	assert_int_equal(proto_u64(&fx->m, PF_SUBMITTED, 0), 1700000000000);
	assert_int_equal(proto_u64(&fx->m, PF_STARTED, 0), 1700000000100);
	assert_int_equal(proto_u64(&fx->m, PF_DONE, 0), 1);
	assert_int_equal(proto_u64(&fx->m, PF_TOTAL, 0), 2);
	assert_true(proto_bool(&fx->m, PF_CANCEL_PENDING, false));
}

static void
round_trip_jobs_with_rows_and_counts(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	struct proto_msg row;
	struct proto_fault f;
	const msgpack_object *jobs, *counts;
	uint32_t i;

	proto_enc_begin(&e, &fx->out, PROTO_JOBS, 13);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (i = 0; i < 3; i++) {
		proto_enc_map_open(&e);
		proto_enc_u64(&e, PF_JOB, 100 + i);
		proto_enc_cstr(&e, PF_TASK, i == 1 ? "sleep" : "noop");
		proto_enc_cstr(&e, PF_STATE, proto_states[i]);
		proto_enc_u64(&e, PF_UID, 1000 + i);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_key(&e, PF_COUNTS);
	proto_enc_map_open(&e);
	for (i = 0; i < PS_COUNT; i++) {
		pk_str(&e.pk, proto_states[i]);
		msgpack_pack_uint32(&e.pk, 10 * i);
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	end_and_decode(fx, &e, PROTO_JOBS, 13, B(JOBS) | B(COUNTS));

	jobs = &fx->m.f[PF_JOBS];
	assert_int_equal(jobs->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(jobs->via.array.size, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(
		    proto_decode_fields(&jobs->via.array.ptr[i], &row, &f), 0);
		assert_int_equal(row.present,
		                 B(JOB) | B(TASK) | B(STATE) | B(UID));
		assert_int_equal(proto_u64(&row, PF_JOB, 0), 100 + i);
		assert_str_field(&row, PF_TASK, i == 1 ? "sleep" : "noop");
		assert_str_field(&row, PF_STATE, proto_states[i]);
		assert_int_equal(proto_u64(&row, PF_UID, 0), 1000 + i);
	}
	counts = &fx->m.f[PF_COUNTS];
	assert_int_equal(counts->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(counts->via.map.size, PS_COUNT);
	for (i = 0; i < PS_COUNT; i++) {
		const msgpack_object_kv *kv = &counts->via.map.ptr[i];

		assert_int_equal(proto_state_lookup(kv->key.via.str.ptr,
		                                    kv->key.via.str.size),
		                 i);
		assert_int_equal(kv->val.via.u64, 10 * i);
	}
}

static void
round_trip_tasklist_with_nested_arrays(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	struct proto_msg row;
	struct proto_fault f;
	const msgpack_object *tasks, *ex;
	uint32_t i;

	proto_enc_begin(&e, &fx->out, PROTO_TASKLIST, 14);
	proto_enc_key(&e, PF_TASKS);
	proto_enc_array_open(&e);
	for (i = 0; i < 2; i++) {
		proto_enc_map_open(&e);
		proto_enc_cstr(&e, PF_NAME, i ? "primes" : "noop");
		proto_enc_cstr(&e, PF_SUMMARY, "does a thing");
		proto_enc_cstr(&e, PF_USAGE, "n=<count>");
		proto_enc_key(&e, PF_TRAITS);
		proto_enc_array_open(&e);
		pk_str(&e.pk, "cpu");
		proto_enc_elem(&e);
		proto_enc_close(&e);
		proto_enc_key(&e, PF_EXECUTORS);
		proto_enc_array_open(&e);
		pk_str(&e.pk, "thread");
		proto_enc_elem(&e);
		pk_str(&e.pk, "process");
		proto_enc_elem(&e);
		proto_enc_close(&e);
		proto_enc_cstr(&e, PF_DEFAULT, "thread");
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	end_and_decode(fx, &e, PROTO_TASKLIST, 14, B(TASKS));

	tasks = &fx->m.f[PF_TASKS];
	assert_int_equal(tasks->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(tasks->via.array.size, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(
		    proto_decode_fields(&tasks->via.array.ptr[i], &row, &f), 0);
		assert_int_equal(row.present, B(NAME) | B(SUMMARY) | B(USAGE) |
		                                  B(TRAITS) | B(EXECUTORS) |
		                                  B(DEFAULT));
		assert_str_field(&row, PF_NAME, i ? "primes" : "noop");
		assert_str_field(&row, PF_SUMMARY, "does a thing");
		assert_str_field(&row, PF_USAGE, "n=<count>");
		assert_str_field(&row, PF_DEFAULT, "thread");
		assert_int_equal(row.f[PF_TRAITS].via.array.size, 1);
		assert_str_obj(&row.f[PF_TRAITS].via.array.ptr[0], "cpu");
		ex = &row.f[PF_EXECUTORS];
		assert_int_equal(ex->via.array.size, 2);
		assert_str_obj(&ex->via.array.ptr[0], "thread");
		assert_str_obj(&ex->via.array.ptr[1], "process");
	}
}

/*
 * Every row of the type table, including rows added after these tests
 * were written: the envelope and each required field, with a value of
 * the field's table type, survive the round trip.
 */
static void
round_trip_every_type_with_its_required_fields(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	int t, k;

	for (t = 0; t < PROTO_TYPE_COUNT; t++) {
		uint64_t req = proto_types[t].required & ~(B(T) | B(ID));
		uint64_t id = 1000 + (uint64_t)t;

		fx->out.len = 0;
		proto_enc_begin(&e, &fx->out, (enum proto_type)t, id);
		for (k = 0; k < PF_FIELD_COUNT; k++) {
			const struct proto_field_info *fi = &proto_fields[k];

			if (!(req & PF_BIT(k)))
				continue;
			switch (fi->type) {
			case PV_UINT:
				proto_enc_u64(&e, k, 3 * (uint64_t)k + 1);
				break;
			case PV_INT:
				proto_enc_i64(&e, k, -k);
				break;
			case PV_BOOL:
				proto_enc_bool(&e, k, true);
				break;
			case PV_STR:
				proto_enc_str(&e, k, fi->name,
				              fi->max &&
				                      strlen(fi->name) > fi->max
				                  ? fi->max
				                  : strlen(fi->name));
				break;
			case PV_MAP:
				proto_enc_key(&e, k);
				proto_enc_map_open(&e);
				proto_enc_close(&e);
				break;
			case PV_ARRAY:
				proto_enc_key(&e, k);
				proto_enc_array_open(&e);
				proto_enc_close(&e);
				break;
			case PV_ANY:
				proto_enc_key(&e, k);
				msgpack_pack_nil(&e.pk);
				break;
			}
		}
		end_and_decode(fx, &e, (enum proto_type)t, id, req);
		for (k = 0; k < PF_FIELD_COUNT; k++) {
			const struct proto_field_info *fi = &proto_fields[k];
			const msgpack_object *o = &fx->m.f[k];

			if (!(req & PF_BIT(k)))
				continue;
			switch (fi->type) {
			case PV_UINT:
				assert_int_equal(proto_u64(&fx->m, k, 0),
				                 3 * (uint64_t)k + 1);
				break;
			case PV_INT:
				assert_int_equal(proto_i64(&fx->m, k, 0), -k);
				break;
			case PV_BOOL:
				assert_true(proto_bool(&fx->m, k, false));
				break;
			case PV_STR:
				assert_int_equal(strncmp(o->via.str.ptr,
				                         fi->name,
				                         o->via.str.size),
				                 0);
				break;
			case PV_MAP:
				assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
				assert_int_equal(o->via.map.size, 0);
				break;
			case PV_ARRAY:
				assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
				assert_int_equal(o->via.array.size, 0);
				break;
			case PV_ANY:
				assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
				break;
			}
		}
	}
}

static void
round_trip_ok(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_OK, 15);
	end_and_decode(fx, &e, PROTO_OK, 15, 0);
}

static void
round_trip_error_for_every_code(void **state)
{
	struct fx *fx = *state;
	int i;

	for (i = 0; i < PE_COUNT; i++) {
		fx->out.len = 0;
		proto_enc_error(&fx->out, 100 + (uint64_t)i,
		                (enum proto_error)i, "something went wrong");
		assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
		assert_int_equal(fx->m.type, PROTO_ERROR);
		assert_int_equal(fx->m.id, 100 + (uint64_t)i);
		assert_int_equal(fx->m.present,
		                 B(T) | B(ID) | B(ERROR) | B(MESSAGE));
		assert_str_field(&fx->m, PF_ERROR, proto_errors[i].name);
		assert_str_field(&fx->m, PF_MESSAGE, "something went wrong");
	}
}

static void
enc_error_uses_the_table_text_without_a_message(void **state)
{
	struct fx *fx = *state;

	proto_enc_error(&fx->out, 1, PE_QUEUE_FULL, NULL);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_str_field(&fx->m, PF_ERROR, "queue_full");
	assert_str_field(&fx->m, PF_MESSAGE, "queue is full");
}

/*
 * The daemon builds messages from what a user sent (a task's argument
 * error, a path): an error reply must stay decodable by the client
 * whatever the message's length.
 */
static void
enc_error_with_a_long_message_still_decodes(void **state)
{
	struct fx *fx = *state;
	size_t len;
	const char *s;

	filler[2000] = '\0';
	proto_enc_error(&fx->out, 1, PE_BAD_ARGS, filler);
	filler[2000] = 'a';
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_ERROR);
	assert_str_field(&fx->m, PF_ERROR, "bad_args");
	s = proto_str(&fx->m, PF_MESSAGE, &len);
	assert_non_null(s);
	assert_int_equal(len, proto_fields[PF_MESSAGE].max);
	assert_memory_equal(s, filler, len - 3);
	assert_memory_equal(s + len - 3, "...", 3);
}

/*
 * A string is never cut to its field's limit: cut, "aaa...a-other"
 * names the group "aaa...a", and a request would act on it.  It goes
 * out whole, and its peer refuses it.
 */
static void
enc_str_sends_a_string_over_its_limit_whole(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	char name[71];

	memset(name, 'a', 64);
	strcpy(name + 64, "-other");
	proto_enc_begin(&e, &fx->out, PROTO_GROUP, 1);
	proto_enc_cstr(&e, PF_OP, "remove");
	proto_enc_cstr(&e, PF_NAME, name);
	assert_int_equal(proto_enc_end(&e), 0);
	/* its last field, whole: a str 8 header of 70, then the 70 bytes */
	assert_memory_equal(fx->out.data + fx->out.len - 72, "\xd9\x46", 2);
	assert_memory_equal(fx->out.data + fx->out.len - 70, name, 70);
	assert_int_equal(decode_out(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"name\" must be a string (within its size "
	             "limit)");
}

/*
 * Text for people over its field's limit is cut between characters and
 * ends in "...": its reader sees the cut.  At the limit it is whole.
 */
static void
enc_text_cuts_between_characters_and_shows_the_cut(void **state)
{
	struct fx *fx = *state;
	size_t max = proto_fields[PF_MESSAGE].max, len, n;
	struct proto_enc e;
	char text[2 * 600 + 1];
	const char *s;
	int i;

	for (i = 0; i < 600; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2); /* U+00E9 */
	text[2 * 600] = '\0';
	proto_enc_begin(&e, &fx->out, PROTO_ERROR, 1);
	proto_enc_cstr(&e, PF_ERROR, "task_failed");
	proto_enc_ctext(&e, PF_MESSAGE, text);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	s = proto_str(&fx->m, PF_MESSAGE, &len);
	/* 1021 bytes would split a character: 510 of them, then "..." */
	assert_int_equal(len, 2 * 510 + 3);
	assert_memory_equal(s, text, 2 * 510);
	assert_memory_equal(s + 2 * 510, "...", 3);

	/* exactly at the limit: whole; one byte over: cut, with "..." */
	for (n = max; n <= max + 1; n++) {
		fx->out.len = 0;
		proto_enc_begin(&e, &fx->out, PROTO_ERROR, 1);
		proto_enc_cstr(&e, PF_ERROR, "task_failed");
		proto_enc_text(&e, PF_MESSAGE, filler, n);
		assert_int_equal(proto_enc_end(&e), 0);
		assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
		s = proto_str(&fx->m, PF_MESSAGE, &len);
		assert_int_equal(len, max);
		assert_memory_equal(s, filler, n == max ? max : max - 3);
		if (n > max)
			assert_memory_equal(s + max - 3, "...", 3);
	}
}

/* ---- the encoder's limits ---- */

static int
enc_big_end(struct fx *fx, size_t last)
{
	struct proto_enc e;
	int i;

	proto_enc_begin(&e, &fx->out, PROTO_END, 1);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_cstr(&e, PF_STATE, "succeeded");
	proto_enc_key(&e, PF_RESULT);
	proto_enc_array_open(&e);
	for (i = 0; i < 4; i++) {
		msgpack_pack_str_with_body(&e.pk, filler, 200000);
		proto_enc_elem(&e);
	}
	msgpack_pack_str_with_body(&e.pk, filler, last);
	proto_enc_elem(&e);
	proto_enc_close(&e);
	return proto_enc_end(&e);
}

static void
enc_end_accepts_a_frame_of_exactly_max_frame(void **state)
{
	struct fx *fx = *state;
	size_t last;

	assert_int_equal(enc_big_end(fx, 65536), 0);
	last = 65536 + (PROTO_MAX_FRAME - (fx->out.len - PROTO_HEADER_LEN));
	assert_true(last <= PROTO_MAX_STR);
	fx->out.len = 0;
	assert_int_equal(enc_big_end(fx, last), 0);
	assert_int_equal(fx->out.len, PROTO_HEADER_LEN + PROTO_MAX_FRAME);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_END);
	assert_int_equal(fx->m.f[PF_RESULT].via.array.size, 5);
	assert_int_equal(fx->m.f[PF_RESULT].via.array.ptr[4].via.str.size,
	                 last);
}

static void
enc_end_refuses_a_frame_over_max_frame_leaving_the_pbuf_as_it_was(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	struct pbuf copy = {0};
	size_t last;

	assert_int_equal(enc_big_end(fx, 65536), 0);
	last = 65536 + (PROTO_MAX_FRAME - (fx->out.len - PROTO_HEADER_LEN));
	/* one queued frame that must survive */
	fx->out.len = 0;
	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	assert_int_equal(proto_enc_end(&e), 0);
	pbuf_append(&copy, fx->out.data, fx->out.len);

	assert_int_equal(enc_big_end(fx, last + 1), -1);
	assert_int_equal(fx->out.len, copy.len);
	assert_memory_equal(fx->out.data, copy.data, copy.len);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_PING);

	/* and the next frame goes right after it */
	proto_enc_begin(&e, &fx->out, PROTO_PING, 2);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(fx->out.len, 2 * copy.len);
	pbuf_free(&copy);
}

/* An end's fields: rlen bytes of nils as its result, or without them. */
struct big_end {
	const char *result;
	size_t rlen;
	bool never_fits; /* the fields without the result do not fit either */
};

static void
big_end_fields(struct proto_enc *e, void *arg, bool result)
{
	const struct big_end *a = arg;

	proto_enc_u64(e, PF_JOB, 7);
	if (result) {
		proto_enc_cstr(e, PF_STATE, "succeeded");
		proto_enc_raw(e, PF_RESULT, a->result, a->rlen);
	} else if (a->never_fits) {
		proto_enc_raw(e, PF_RESULT, a->result, PROTO_MAX_FRAME + 1);
	} else {
		proto_enc_result_too_large(e, a->rlen);
	}
}

static void
enc_result_frame_leaves_out_a_result_too_large_and_says_why(void **state)
{
	struct fx *fx = *state;
	char *nils = malloc(PROTO_MAX_FRAME + 1);
	struct big_end a = {.result = nils, .rlen = 1};
	struct pbuf copy = {0};
	char want[128];

	assert_non_null(nils);
	memset(nils, 0xc0, PROTO_MAX_FRAME + 1);
	/* a result that fits goes with the frame */
	assert_int_equal(
	    proto_enc_result_frame(&fx->out, PROTO_END, 3, big_end_fields, &a),
	    0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.present,
	                 B(T) | B(ID) | B(JOB) | B(STATE) | B(RESULT));
	assert_str_field(&fx->m, PF_STATE, "succeeded");
	assert_int_equal(fx->m.f[PF_RESULT].type, MSGPACK_OBJECT_NIL);

	/* one too large for a frame is left out: the end says so */
	fx->out.len = 0;
	a.rlen = PROTO_MAX_FRAME;
	assert_int_equal(
	    proto_enc_result_frame(&fx->out, PROTO_END, 3, big_end_fields, &a),
	    1);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_END);
	assert_int_equal(fx->m.present, B(T) | B(ID) | B(JOB) | B(STATE) |
	                                    B(ERROR) | B(MESSAGE) |
	                                    B(RESULT_OMITTED));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 7);
	assert_str_field(&fx->m, PF_STATE, "failed");
	assert_str_field(&fx->m, PF_ERROR, "internal");
	snprintf(want, sizeof(want),
	         "result too large to send: %d bytes, and a frame holds %d",
	         PROTO_MAX_FRAME, PROTO_MAX_FRAME);
	assert_str_field(&fx->m, PF_MESSAGE, want);
	assert_int_equal(proto_u64(&fx->m, PF_RESULT_OMITTED, 0),
	                 PROTO_MAX_FRAME);

	/* neither fits: nothing is written after what was queued */
	pbuf_append(&copy, fx->out.data, fx->out.len);
	a.never_fits = true;
	assert_int_equal(
	    proto_enc_result_frame(&fx->out, PROTO_END, 3, big_end_fields, &a),
	    -1);
	assert_int_equal(fx->out.len, copy.len);
	assert_memory_equal(fx->out.data, copy.data, copy.len);
	pbuf_free(&copy);
	free(nils);
}

static void
enc_end_refuses_nesting_beyond_enc_depth(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	int i;

	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	proto_enc_key(&e, PF_RESULT);
	for (i = 1; i < PROTO_ENC_DEPTH; i++)
		proto_enc_array_open(&e);
	/* one level too many */
	proto_enc_array_open(&e);
	assert_int_equal(proto_enc_end(&e), -1);
	assert_int_equal(fx->out.len, 0);

	/* PROTO_ENC_DEPTH levels, the top map included, are fine */
	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	proto_enc_key(&e, PF_RESULT);
	for (i = 1; i < PROTO_ENC_DEPTH; i++)
		proto_enc_array_open(&e);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
}

static void
enc_end_refuses_a_close_without_an_open(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	proto_enc_close(&e); /* the top map */
	proto_enc_close(&e); /* nothing left */
	assert_int_equal(proto_enc_end(&e), -1);
	assert_int_equal(fx->out.len, 0);
}

static void
enc_end_refuses_more_than_65535_elements(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	uint32_t i, n;

	for (n = 65535; n <= 65536; n++) {
		fx->out.len = 0;
		proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
		proto_enc_key(&e, PF_RESULT);
		proto_enc_array_open(&e);
		for (i = 0; i < n; i++) {
			msgpack_pack_uint8(&e.pk, 1);
			proto_enc_elem(&e);
		}
		proto_enc_close(&e);
		if (n == 65535) {
			assert_int_equal(proto_enc_end(&e), 0);
			assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
			assert_int_equal(fx->m.f[PF_RESULT].via.array.size,
			                 65535);
		} else {
			assert_int_equal(proto_enc_end(&e), -1);
			assert_int_equal(fx->out.len, 0);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        enc_ping_has_the_documented_wire_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_scalars_match_msgpack_c_at_every_boundary, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_hello, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_ping, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_submit_with_args, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_watch, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_ps, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_tasks, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_shutdown, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_welcome, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_pong, setup, teardown),
	    cmocka_unit_test_setup_teardown(pong_with_id_zero_carries_no_id,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_accepted, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_progress, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_end_with_raw_result,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_end_of_a_failed_job,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_job, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        round_trip_jobs_with_rows_and_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        round_trip_tasklist_with_nested_arrays, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        round_trip_every_type_with_its_required_fields, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(round_trip_error_for_every_code,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_error_uses_the_table_text_without_a_message, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_error_with_a_long_message_still_decodes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_str_sends_a_string_over_its_limit_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_text_cuts_between_characters_and_shows_the_cut, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_accepts_a_frame_of_exactly_max_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_a_frame_over_max_frame_leaving_the_pbuf_as_it_was,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_result_frame_leaves_out_a_result_too_large_and_says_why,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_nesting_beyond_enc_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_a_close_without_an_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_more_than_65535_elements, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
