/**
 * An error caused by what the user asked for (bad input, bad config, a missing file).
 * The CLI prints its message as one line and exits non-zero, without a stack trace;
 * every other error is a bug and keeps its stack.
 */
export class RevcolError extends Error {
  override readonly name = 'RevcolError';
  constructor(message: string) {
    super(message);
  }
}

export function fail(message: string): never {
  throw new RevcolError(message);
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
