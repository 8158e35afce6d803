import { randomBytes } from 'node:crypto';
import { promises as fs, closeSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
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

/** The one-line error for a file the user named that cannot be opened or read. */
function failToRead(file: string, err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EISDIR') fail(`${file} is a folder, not a file`);
  if (code === 'ERR_FS_FILE_TOO_LARGE') fail(`${file} is larger than 2 GiB, more than Node reads at once; split it into smaller files`);
  fail(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'unreadable')}; check the path`);
}

/**
 * Opens a file the user named for reading; a missing or unreadable one, or a folder, is a
 * one-line RevcolError. The caller closes the handle.
 */
export async function openUserFile(file: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    failToRead(file, err);
  }
  // Opening a folder succeeds on Linux; reading it would not.
  if ((await handle.stat()).isDirectory()) {
    await handle.close();
    fail(`${file} is a folder, not a file`);
  }
  return handle;
}

/** Reads a whole file the user named (up to 2 GiB); problems are one-line RevcolErrors. */
export async function readUserFile(file: string): Promise<Uint8Array> {
  const handle = await openUserFile(file);
  try {
    return await handle.readFile();
  } catch (err) {
    failToRead(file, err);
  } finally {
    await handle.close();
  }
}
