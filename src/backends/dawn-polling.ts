/**
 * How Dawn (the `webgpu` package, dawn.node) waits for the GPU, made to yield the CPU.
 *
 * While any of its promises is pending (a buffer mapped for a read, `onSubmittedWorkDone`, an
 * error scope), dawn.node polls the device from a `setImmediate` callback that schedules the next
 * one: the main thread runs at 100% for as long as the GPU works. Measured on lavapipe here (two
 * cores, a 1,024² product chain read back): event-loop utilisation 1.00, ~130,000 polls a second,
 * and the wait 1,070–1,220 ms, because the polling thread takes a core from the driver's own
 * threads; each poll also allocates, so the young generation fills and the next training step's
 * recording pays for the collections. On a GPU machine the wait does not take longer, but a core
 * spins and the collections come all the same.
 *
 * Here dawn.node's polls (each is a new native function with no name, scheduled through the
 * global `setImmediate`) run at once for the first SPIN_POLLS of a wait, so that short waits end
 * as soon as they would, and after that on a 1 ms timer: the same wait took 677–682 ms at an
 * event-loop utilisation of 0.02. A wait thus ends at most about 1 ms after the GPU is done.
 * Every other `setImmediate` is passed through untouched: JavaScript callbacks (their source is
 * not native code), bound functions and named native ones (they have names). (Another native
 * module's anonymous callbacks would be taken for polls too: delayed only past 64 in a row.) `setGpuWaitYielding(false)` or REVCOL_GPU_WAIT=spin keeps Dawn's
 * own polling.
 */

/** Polls of one wait that run at once before the rest go on a timer. */
export const SPIN_POLLS = 64;

/**
 * A poll asked for longer than this (ms) after the last poll ran starts a new wait. Measured from
 * when the last poll ran, not from when it was asked for: within a wait each poll asks for the
 * next as it runs (a gap of microseconds), whatever the timer's lateness on a busy machine.
 */
const NEW_WAIT_MS = 2;

let yielding = process.env.REVCOL_GPU_WAIT !== 'spin';
let installed = false;
let burst = 0;
let lastPollRan = -Infinity;
let timedPolls = 0;

/** Turns the yielding on or off (off: dawn.node's own setImmediate polling); returns the old setting. */
export function setGpuWaitYielding(on: boolean): boolean {
  const old = yielding;
  yielding = on;
  return old;
}

/** Whether the waits yield (REVCOL_GPU_WAIT, else setGpuWaitYielding; on by default). */
export function gpuWaitYielding(): boolean {
  return yielding;
}

/** Polls that went on the timer since the process started (for tests and benches). */
export function gpuWaitTimedPolls(): number {
  return timedPolls;
}

/** dawn.node's poll: a native function without a name (JavaScript functions and bound ones have source or a name). */
function isDawnPoll(callback: unknown): boolean {
  return typeof callback === 'function' && callback.name === '' && Function.prototype.toString.call(callback) === 'function () { [native code] }';
}

/** Wraps the global setImmediate once (idempotent); call when Dawn is loaded. */
export function installGpuWaitYielding(): void {
  if (installed) return;
  installed = true;
  const immediate = globalThis.setImmediate as unknown as (this: unknown, callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;
  const wrapped = function (this: unknown, callback: (...args: unknown[]) => void, ...args: unknown[]) {
    if (!yielding || args.length > 0 || !isDawnPoll(callback)) return immediate.call(this, callback, ...args);
    if (performance.now() - lastPollRan > NEW_WAIT_MS) burst = 0;
    const poll = function (this: unknown) {
      lastPollRan = performance.now();
      return callback.call(this);
    };
    if (++burst <= SPIN_POLLS) return immediate.call(this, poll);
    timedPolls++;
    return setTimeout(poll, 1);
  };
  // keep what Node hangs on setImmediate (util.promisify's custom form)
  Object.defineProperties(wrapped, Object.getOwnPropertyDescriptors(immediate));
  globalThis.setImmediate = wrapped as unknown as typeof setImmediate;
}
