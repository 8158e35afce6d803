import { randomBytes } from 'node:crypto';
import { promises as fs, closeSync, fsyncSync, openSync, renameSync, writeSync, mkdirSync, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fail } from '../core/errors.js';

/** Appends bytes to the file being written. */
export type ChunkWriter = (chunk: Uint8Array) => Promise<void>;

/** The temporary file an atomic write of `file` goes to first: FILE.<pid>.<8 hex digits>.tmp. */
function tempName(file: string): string {
  return `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

/** Matches the names of writeAtomically's temporary files (what an interrupted save leaves behind). */
export const TEMP_FILE_PATTERN = /\.\d+\.[0-9a-f]{8}\.tmp$/;

/**
 * Writes a file so that readers see either the old content or the new, never a half-written
 * one: `body` writes a temporary file beside it chunk by chunk, which is flushed to disk and
 * then renamed over the target. If anything fails, the temporary file is removed.
 */
export async function writeAtomically(file: string, body: (write: ChunkWriter) => Promise<void>): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = tempName(file);
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
  const tmp = tempName(file);
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
  if (code === 'ENOENT') fail(`cannot read ${file}: no such file; check the path`);
  if (isUserFsError(err)) fail(fsErrorLine(Object.assign(err, { syscall: 'read' }), file, code === 'EACCES' || code === 'EPERM' ? 'check its permissions' : undefined));
  fail(`cannot read ${file}: ${code ?? 'unreadable'}; check the path`);
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

/** File-system errors caused by where the user pointed revcol (not by revcol): one line each. */
const FS_PROBLEMS: Record<string, { what: string; advice: string }> = {
  EACCES: { what: 'permission denied', advice: 'fix its permissions or choose another place' },
  EPERM: { what: 'operation not permitted', advice: 'fix its permissions or choose another place' },
  EROFS: { what: 'the file system is read-only', advice: 'choose a writable place' },
  ENOSPC: { what: 'no space left on the device', advice: 'free some space or choose another place' },
  EDQUOT: { what: 'disk quota exceeded', advice: 'free some space or choose another place' },
  EFBIG: { what: 'file too large for the file system', advice: 'choose another place' },
  EISDIR: { what: 'it is a folder, not a file', advice: 'give a file' },
  ENOTDIR: { what: 'a part of the path is a file, not a folder', advice: 'check the path' },
  EEXIST: { what: 'a file of that name is in the way', advice: 'check the path' },
  ENAMETOOLONG: { what: 'the name is too long', advice: 'use a shorter path' },
  ELOOP: { what: 'too many symbolic links', advice: 'check the path' },
  EMFILE: { what: 'too many open files', advice: 'raise the open-file limit (ulimit -n)' },
  ENFILE: { what: 'too many open files in the system', advice: 'close other programs and try again' },
  EIO: { what: 'input/output error', advice: 'check the disk' },
  EBUSY: { what: 'the file is busy', advice: 'try again once it is free' },
};

/** Whether `err` is a file-system error that a user's path or disk causes (see FS_PROBLEMS). */
export function isUserFsError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return err instanceof Error && typeof code === 'string' && code in FS_PROBLEMS;
}

const VERBS: Record<string, string> = {
  open: 'open', read: 'read', write: 'write', mkdir: 'create the folder', rmdir: 'remove', unlink: 'remove',
  rename: 'write', scandir: 'list', stat: 'read', lstat: 'read', copyfile: 'copy', fsync: 'write', close: 'write', access: 'open',
};

/**
 * One line for a file-system error: what could not be done to which path, why, and what to do,
 * e.g. "cannot write runs/x/metrics.jsonl: no space left on the device (ENOSPC); free some space or choose another place".
 * `file` names the path when the error carries none; `then` replaces the advice; `more` follows it.
 */
export function fsErrorLine(err: NodeJS.ErrnoException, file?: string, then?: string, more?: string): string {
  const code = err.code ?? 'EIO';
  const problem = FS_PROBLEMS[code] ?? { what: err.message.split('\n')[0]!, advice: 'check the path' };
  const where = file ?? err.path ?? 'a file';
  // A rename's path is the temporary file: name the file being written instead.
  const shown = String(where).replace(TEMP_FILE_PATTERN, '');
  const verb = VERBS[err.syscall ?? ''] ?? 'use';
  return `cannot ${verb} ${shown}: ${problem.what} (${code}); ${then ?? problem.advice}${more ? `; ${more}` : ''}`;
}
