// The stderr capture around Dawn's adapter request (native/stderr.c, src/backends/native-stderr.ts):
// what native code writes to fd 2 during the call is held back, Dawn's known limit notices are
// dropped and every other line written on afterwards; fd 2 is back once the call returns or throws.
// Reported as skipped where the module is not built (no C compiler).
import { writeSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { stderrCaptureAvailable, withDawnNoticesHeld } from '../src/backends/native-stderr.js';

const NOTICE = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.';

describe.skipIf(!stderrCaptureAvailable())(`Dawn's notices held back${stderrCaptureAvailable() ? '' : ' (skipped: native/build/revcol-stderr.node is not built)'}`, () => {
  it('drops the known notices written to fd 2 during the call, passes the other lines on, returns the value', () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const value = withDawnNoticesHeld(() => {
        writeSync(2, `${NOTICE}\nsomething else Dawn said\n`);
        return 42;
      });
      expect(value).toBe(42);
    } finally {
      spy.mockRestore();
    }
    expect(written).toEqual(['something else Dawn said\n']);
  });

  it('gives fd 2 back when the call throws, and holds nothing back with REVCOL_DAWN_LOG=1', () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(() => withDawnNoticesHeld(() => {
        writeSync(2, `${NOTICE}\n`);
        throw new Error('the call failed');
      })).toThrow('the call failed');
      expect(spy).not.toHaveBeenCalled(); // the notice dropped, nothing else to pass on
      // a second capture can start: the first one ended
      expect(withDawnNoticesHeld(() => 'again')).toBe('again');
      const saved = process.env.REVCOL_DAWN_LOG;
      process.env.REVCOL_DAWN_LOG = '1';
      try {
        // not held: the call runs as it is (what it writes goes straight to fd 2, not through process.stderr.write)
        expect(withDawnNoticesHeld(() => 7)).toBe(7);
      } finally {
        if (saved === undefined) delete process.env.REVCOL_DAWN_LOG;
        else process.env.REVCOL_DAWN_LOG = saved;
      }
    } finally {
      spy.mockRestore();
    }
  });
});
