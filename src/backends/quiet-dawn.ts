/**
 * What Dawn (the `webgpu` package) prints by itself, and what revcol lets through.
 *
 * - Dawn's notices on opening a Vulkan adapter ("Warning: maxDynamic…BuffersPerPipelineLayout
 *   artificially reduced …") are written from C++ to fd 2. The webgpu probe runs in a child
 *   process and drops them from its stderr (see probeAdapterInChild in ./index.ts).
 * - GPU errors nobody captured (validation, out of memory, internal): dawn.node prints each as
 *   a multi-line message on **stdout**, where it would break a command's own output (`--json`).
 *   watchGpuDevice takes them over: one `revcol:` line each on stderr instead.
 * - A lost device (other than by its own destroy()) is one `revcol:` line on stderr.
 *
 * REVCOL_DAWN_LOG=1 shows everything as Dawn prints it: the probe's stderr unfiltered and Dawn's
 * own error messages, for debugging a driver or a kernel.
 */
import { reportDeviceFailure } from '../core/reads.js';

/** Set to 1 to see Dawn's own output again (probe notices, full GPU error messages). */
export const DAWN_LOG_ENV = 'REVCOL_DAWN_LOG';

export function dawnLogWanted(): boolean {
  return process.env[DAWN_LOG_ENV] === '1';
}

/** Dawn's notice that it lowered a driver's limit to its own: expected, not an error. */
export const DAWN_LIMIT_NOTICE = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+/;

/** The lines Dawn wrote to stderr that are worth a user's attention: no known notices, no stack frames. */
export function dawnStderrNotes(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !DAWN_LIMIT_NOTICE.test(line) && !line.startsWith('at '))
    .map((line) => line.replace(/^Warning: /, ''));
}

/** A Dawn message as one line: its lines (the error, then " - While calling …" context) joined. */
export function oneLine(message: string): string {
  return message
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' ');
}

/** Distinct GPU errors reported per device before the rest are only counted (a broken kernel in a training loop repeats). */
const MAX_REPORTED_ERRORS = 10;

const KIND: Record<string, string> = {
  GPUValidationError: 'GPU validation error',
  GPUOutOfMemoryError: 'GPU out of memory',
  GPUInternalError: 'GPU internal error',
};

interface UncapturedErrorEvent extends Event {
  error: { message: string; constructor: { name: string } };
}

const watched = new WeakSet<object>();

/**
 * Reports a device's uncaptured errors and its loss on stderr, one `revcol:` line each, and stops
 * dawn.node printing them on stdout (the event's default action). A device destroyed on purpose
 * (releaseGpuBackend) says nothing. Idempotent per device.
 */
export function watchGpuDevice(device: GPUDevice, write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): void {
  if (watched.has(device)) return;
  watched.add(device);
  const seen = new Set<string>();
  let cutShort = false;
  const onError = (event: Event) => {
    const e = event as UncapturedErrorEvent;
    if (!dawnLogWanted()) e.preventDefault(); // dawn.node's own print goes to stdout
    const line = `${KIND[e.error?.constructor?.name] ?? 'GPU error'}: ${oneLine(e.error?.message ?? String(e.error))}`;
    reportDeviceFailure(line);
    if (seen.has(line)) return;
    if (seen.size >= MAX_REPORTED_ERRORS) {
      if (!cutShort) write(`revcol: further GPU errors are not shown (${DAWN_LOG_ENV}=1 shows Dawn's own messages)`);
      cutShort = true;
      return;
    }
    seen.add(line);
    write(`revcol: ${line}`);
  };
  // a Dawn build from DAWN_NODE may lack EventTarget on the device: the handler property then
  if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
  else device.onuncapturederror = onError as (event: GPUUncapturedErrorEvent) => void;
  void device.lost?.then(
    (info) => {
      if (info.reason === 'destroyed') return;
      const line = `the GPU device was lost: ${oneLine(info.message) || 'no reason given'}`;
      reportDeviceFailure(line);
      write(`revcol: ${line}`);
    },
    () => {},
  );
}
