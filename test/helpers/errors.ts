import { expect } from 'vitest';
import { RevcolError } from '../../src/core/errors.js';

/** Runs `run`, which must fail with a one-line RevcolError, and returns its message. */
export async function oneLineError(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(RevcolError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a RevcolError');
}
