/*
 * revcol's native products: single-precision matrix products of the wasm backend run by the
 * system's OpenBLAS (cblas_sgemm), on tensors in place in the wasm heap. wasm's SIMD is 128 bits
 * wide and has no fused multiply-add; OpenBLAS's kernels use the CPU's full vector width and FMA
 * (the products of the training steps measured in docs/backends.md ran 1.7-2.4x faster).
 *
 * Node-API only (no V8 or libuv headers), so the module loads in every Node >= 18 and in worker
 * threads. Built by scripts/build-native.mjs; where it is not built, revcol uses its wasm kernels.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* The CBLAS entry points used, declared here so that only the runtime library is needed. */
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
extern void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);
extern void openblas_set_num_threads(int threads);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) return NULL;                                                                                \
  } while (0)

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/*
 * sgemm(heap, aOffset, bOffset, outOffset, batch, m, n, k, transA, transB, aStride, bStride, outStride)
 * For each i < batch: out_i (m x n, row-major) = op(a_i) . op(b_i), where a_i starts at byte
 * aOffset + 4 i aStride of `heap` (a Uint8Array over the wasm memory) and is k x m if transA
 * else m x k; b_i likewise (n x k if transB else k x n). A stride of 0 repeats one matrix.
 */
static napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 13) return fail(env, "sgemm takes 13 arguments");
  napi_typedarray_type type;
  size_t length, byteOffset;
  void *data;
  napi_value buffer;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &buffer, &byteOffset) != napi_ok || type != napi_uint8_array) {
    return fail(env, "sgemm: the heap must be a Uint8Array");
  }
  int64_t v[12];
  for (int i = 0; i < 12; i++) {
    if (napi_get_value_int64(env, argv[i + 1], &v[i]) != napi_ok || v[i] < 0) return fail(env, "sgemm: offsets and sizes are whole numbers >= 0");
  }
  const int64_t aOffset = v[0], bOffset = v[1], outOffset = v[2], batch = v[3], m = v[4], n = v[5], k = v[6];
  const int transA = v[7] != 0, transB = v[8] != 0;
  const int64_t aStride = v[9], bStride = v[10], outStride = v[11];
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) return fail(env, "sgemm: a dimension is too large");
  if ((aOffset | bOffset | outOffset) & 3) return fail(env, "sgemm: offsets must be multiples of 4 bytes");
  /* Every matrix touched lies inside the heap. */
  const int64_t last = batch > 0 ? batch - 1 : 0;
  const int64_t ends[3] = {aOffset + 4 * (last * aStride + m * k), bOffset + 4 * (last * bStride + k * n), outOffset + 4 * (last * outStride + m * n)};
  for (int i = 0; i < 3; i++) {
    if (ends[i] > (int64_t)length) return fail(env, "sgemm: a matrix lies outside the heap");
  }
  if (batch == 0 || m == 0 || n == 0) return NULL;
  uint8_t *heap = (uint8_t *)data;
  for (int64_t i = 0; i < batch; i++) {
    const float *a = (const float *)(heap + aOffset) + i * aStride;
    const float *b = (const float *)(heap + bOffset) + i * bStride;
    float *out = (float *)(heap + outOffset) + i * outStride;
    /* k = 0: beta 0 writes zeros, as an empty sum is. */
    cblas_sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, (int)m, (int)n, (int)k, 1.0f, a,
                transA ? (int)m : (int)(k > 0 ? k : 1), b, transB ? (int)(k > 0 ? k : 1) : (int)n, 0.0f, out, (int)n);
  }
  return NULL;
}

/* setThreads(n): OpenBLAS's threads for later products. */
static napi_value setThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t threads;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1) return fail(env, "setThreads takes a whole number >= 1");
  openblas_set_num_threads(threads);
  return NULL;
}

/* describe(): { config, core, threads } of the OpenBLAS loaded. */
static napi_value describe(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, config, core, threads;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &config));
  CHECK(napi_create_string_utf8(env, openblas_get_corename(), NAPI_AUTO_LENGTH, &core));
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &threads));
  CHECK(napi_set_named_property(env, out, "config", config));
  CHECK(napi_set_named_property(env, out, "core", core));
  CHECK(napi_set_named_property(env, out, "threads", threads));
  return out;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } methods[] = {{"sgemm", sgemm}, {"setThreads", setThreads}, {"describe", describe}};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, methods[i].name, NAPI_AUTO_LENGTH, methods[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, methods[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
