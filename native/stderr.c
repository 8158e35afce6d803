/*
 * Holds back what native code writes to the process's stderr (fd 2) during one synchronous call.
 *
 * Dawn prints notices such as "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially
 * reduced ..." with fprintf(stderr) from inside requestAdapter(), straight to fd 2, where no
 * JavaScript hook sees them; Node has no dup/dup2 to point fd 2 elsewhere for a moment. begin()
 * points fd 2 at a temporary file, end() points it back and returns what was written, and the
 * caller (src/backends/native-stderr.ts) drops the known notices and passes the rest on. A file,
 * not a pipe: a pipe's buffer could fill and block the writer, which is this same thread.
 *
 * Node-API only. Built by scripts/build-native.mjs with any C compiler (no library needed);
 * where it is not built, Dawn's notices reach the terminal as before.
 */
#define NAPI_VERSION 8
#define _POSIX_C_SOURCE 200809L
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The held-back fd 2 while a capture runs (-1: none), and the file taking its place. */
static int saved = -1;
static FILE *capture = NULL;

/* Most bytes end() returns: Dawn's notices are a few lines. */
#define MAX_CAPTURE 65536

/* begin(): from now on fd 2 writes into a temporary file. Returns false (and changes nothing)
   when a capture already runs or the file or descriptors cannot be had. */
static napi_value begin(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  int ok = 0;
  if (saved < 0) {
    fflush(stderr);
    FILE *file = tmpfile();
    if (file) {
      int held = dup(2);
      if (held >= 0 && dup2(fileno(file), 2) >= 0) {
        saved = held;
        capture = file;
        ok = 1;
      } else {
        if (held >= 0) close(held);
        fclose(file);
      }
    }
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

/* end(): fd 2 back where it was; returns what was written to it since begin() ("" without one). */
static napi_value end(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  if (saved < 0) {
    napi_create_string_utf8(env, "", 0, &result);
    return result;
  }
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  saved = -1;
  char *text = malloc(MAX_CAPTURE);
  size_t length = 0;
  if (text) {
    rewind(capture);
    length = fread(text, 1, MAX_CAPTURE, capture);
  }
  fclose(capture);
  capture = NULL;
  napi_create_string_utf8(env, text ? text : "", length, &result);
  free(text);
  return result;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } methods[] = {{"begin", begin}, {"end", end}};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, methods[i].name, NAPI_AUTO_LENGTH, methods[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, methods[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
