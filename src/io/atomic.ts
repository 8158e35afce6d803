import { randomBytes } from 'node:crypto';
import { promises as fs, closeSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';

/** Appends bytes to the file being written. */
export type ChunkWriter = (chunk: Uint8Array) => Promise<void>;

/**
 * Writes a file so that readers see either the old content or the new, never a half-written
 * one: `body` writes a temporary file beside it chunk by chunk, which is flushed to disk and
 * then renamed over the target. If anything fails, the temporary file is removed.
 */
export async function writeAtomically(file: string, body: (write: ChunkWriter) => Promise<void>): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await fs.open(tmp, 'w');
  const write: ChunkWriter = async (chunk) => {
    let done = 0;
    while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
  };
  try {
    await body(write);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** writeAtomically for content already in memory. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  await writeAtomically(file, (write) => write(typeof data === 'string' ? Buffer.from(data) : data));
}

/** Synchronous twin of writeFileAtomic, for exit paths. */
export function writeFileAtomicSync(file: string, data: Uint8Array | string): void {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/** Reads a file the user named; a missing or unreadable one is a one-line RevcolError. */
export async function readUserFile(file: string): Promise<Uint8Array> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') fail(`${file} is a folder, not a file`);
    if (code === 'ERR_FS_FILE_TOO_LARGE') fail(`${file} is larger than 2 GiB, more than Node reads at once; split it into smaller files`);
    fail(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'unreadable')}; check the path`);
  }
}
