import { promises as fs } from 'node:fs';
import { fail } from '../core/errors.js';

/**
 * A JSON file a folder may hold (an ensemble's manifest, a model's baseline blend): its parsed
 * value, or undefined when there is no such file (or the path is not readable as one). A file that
 * is there but not JSON is a one-line error: "FILE is not valid JSON: " + `remedy`.
 */
export async function readOptionalJson(file: string, remedy: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    fail(`${file} is not valid JSON: ${remedy}`);
  }
}
