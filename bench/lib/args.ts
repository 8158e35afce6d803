/** The benchmark's own arguments (after `npx tsx bench/NAME.ts` or `npm run bench -- NAME`). */
export const args = process.argv.slice(2);

/** The value after `--name`, or `dflt` when the flag (or its value) is not there. */
export function flag(name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
}
