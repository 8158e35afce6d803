/**
 * A training run's output folder (--out of fine-tune, for text or token classification, pretrain
 * and vision train), guarded:
 *
 * - a lock file (LOCK_FILE) while a run is live, so that a second run into the same folder is
 *   refused, naming the live process; a lock left by a process that is gone is taken over;
 * - a folder that holds an earlier run is not replaced unless asked (--overwrite), and then only
 *   the files a run writes are removed, at the last moment (RunFolder.begin);
 * - --resume is refused when the data, task, preset/config or tokenizer differ from what the run
 *   recorded in RUN_FILE (run.json);
 * - temporary files of an interrupted save (*.<pid>.<hex>.tmp) are removed;
 * - the folder is probed for writing before any training, so that a read-only or misplaced
 *   --out is a one-line error up front rather than after an epoch.
 *
 * withRunFolder() wraps a command's whole run; nested runs (a fine-tune's pre-training, an
 * ensemble's members) write inside the guarded folder and take no lock of their own.
 *
 * Messages name options as `optionName` says (default: as the library spells them, `out`,
 * `resume`); the CLI passes its flag naming, so that it shows `--out`, `--resume`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, promises as fs, readFileSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RevcolError, fail } from '../core/errors.js';
import { fsErrorLine, isUserFsError, TEMP_FILE_PATTERN, writeFileAtomic } from '../io/atomic.js';
import { BEST_FILE, type CheckpointInfo, LAST_FILE, readCheckpointInfo } from './checkpoint.js';
import { optionAsIs, type OptionName } from './options.js';

/** Present while a run is live; holds {pid, host, started, command}. */
export const LOCK_FILE = '.revcol.lock';
/** What the run was started on and how it ended (see RunRecord). */
export const RUN_FILE = 'run.json';
const RUN_FORMAT = 'revcol-run/1';

/**
 * Files a run writes into its folder: all that --overwrite removes (user files stay). Sub-runs
 * (a fine-tune's pretrained/, an ensemble's member-N/) are cleared the same way.
 */
const RUN_FILES = [RUN_FILE, LAST_FILE, BEST_FILE, 'metrics.jsonl', 'curves.png', 'curves.html', 'ensemble.json', 'tokenizer.json', 'tokenizer_config.json'];
const SUB_RUN = /^(pretrained|member-\d+)$/;

export type RunCommand = 'fine-tune' | 'token fine-tune' | 'pretrain' | 'vision train';

/** A data file, folder or name as a run records it: enough to tell whether it is the same data. */
export interface DataPrint {
  kind: 'file' | 'folder' | 'name' | 'inline';
  /** Absolute path (file, folder), the name (e.g. mnist), or a description (inline). */
  path: string;
  bytes?: number;
  /** Of the file's bytes, or of an inline object's JSON. */
  sha256?: string;
}

/** What a run was started on; --resume must match it. Absent fields were not given. */
export interface RunIdentity {
  data?: DataPrint | null;
  eval?: DataPrint | null;
  task?: string | null;
  preset?: string | null;
  config?: DataPrint | null;
  tokenizer?: string | null;
}

export interface RunRecord {
  format: typeof RUN_FORMAT;
  command: RunCommand;
  status: 'running' | 'finished' | 'stopped' | 'failed';
  identity: RunIdentity;
  /** Members of a fine-tune ensemble (what --resume continues when --ensemble is left out). */
  ensemble?: number;
  started: string;
  ended?: string;
  pid: number;
}

/**
 * A run stopped on request (Ctrl-C, or an AbortSignal): after the step in progress, with a
 * checkpoint when `resumable`. The CLI prints its message with the --resume command and exits 130.
 */
export class RunStopped extends RevcolError {
  /** The guarded folder of the command (set by withRunFolder; nested runs stop inside it). */
  runDir?: string;
  constructor(message: string, readonly resumable: boolean) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Fingerprints

/** A file's SHA-256, streamed. */
async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * How a run records a file or folder the user named: a file by its contents (so that a moved
 * copy is the same data and an edited file is not), a folder by its path. Unreadable: by path
 * (the command's own reader then says what is wrong).
 */
export async function dataPrint(spec: string | null | undefined): Promise<DataPrint | null> {
  if (spec === undefined || spec === null) return null;
  const full = path.resolve(spec);
  const stat = await fs.stat(full).catch(() => null);
  if (stat?.isDirectory()) return { kind: 'folder', path: full };
  if (!stat?.isFile()) return { kind: 'file', path: full };
  try {
    return { kind: 'file', path: full, bytes: stat.size, sha256: await sha256File(full) };
  } catch {
    return { kind: 'file', path: full };
  }
}

/** A named data source (e.g. mnist). */
export function namePrint(name: string): DataPrint {
  return { kind: 'name', path: name };
}

/** A config given as an object (API), by the hash of its JSON. */
export function inlinePrint(value: unknown, what = 'a config object'): DataPrint {
  return { kind: 'inline', path: what, sha256: createHash('sha256').update(JSON.stringify(value)).digest('hex') };
}

function sameData(a: DataPrint, b: DataPrint): boolean {
  if (a.sha256 && b.sha256) return a.sha256 === b.sha256;
  return a.kind === b.kind && a.path === b.path;
}

/** A tokenizer flag as TextTokenizer.load resolves it: a folder by its absolute path, a name as is. */
function tokenizerKey(spec: string): string {
  if (spec.startsWith('builtin:')) return spec;
  const looksLikePath = spec.startsWith('.') || spec.startsWith('~') || path.isAbsolute(spec) || spec.includes('\\');
  if (existsSync(spec) || looksLikePath) return path.resolve(spec.startsWith('~') ? path.join(os.homedir(), spec.slice(1)) : spec);
  return spec;
}

// ---------------------------------------------------------------------------------------------
// File-system problems with the folder

/** One line for a folder that cannot be created or written in. */
function folderProblem(dir: string, err: unknown, name: OptionName): never {
  if (err instanceof RevcolError) throw err;
  const e = err as NodeJS.ErrnoException;
  const out = name('out');
  if (e.code === 'EEXIST') fail(`the output folder ${dir} is a file: choose another ${out}`);
  if (e.code === 'ENOTDIR') fail(`cannot create the output folder ${dir}: a part of its path is a file, not a folder (ENOTDIR); choose another ${out}`);
  if (isUserFsError(e)) fail(fsErrorLine(Object.assign(e, { syscall: 'write' }), `in the output folder ${dir}`, `choose another ${out}, or make it writable`));
  fail(`cannot use the output folder ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): choose another ${out}`);
}

/**
 * Creates `dir` (and its parents) if needed; returns the first folder it created (undefined
 * when `dir` was there). A file in the way is a one-line error.
 */
async function makeFolder(dir: string, name: OptionName): Promise<string | undefined> {
  const stat = await fs.stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    folderProblem(dir, err, name);
  });
  if (stat) {
    if (!stat.isDirectory()) fail(`the output folder ${dir} is a file: choose another ${name('out')}`);
    return undefined;
  }
  return fs.mkdir(dir, { recursive: true }).catch((err) => folderProblem(dir, err, name));
}

/** Removes the folders makeFolder created (from `dir` up to `created`), as long as they are empty. */
async function unmakeFolder(dir: string, created: string | undefined): Promise<void> {
  if (!created) return;
  const top = path.resolve(created);
  for (let at = path.resolve(dir); at.startsWith(top); at = path.dirname(at)) {
    if (!(await fs.rmdir(at).then(() => true, () => false))) return;
    if (at === top) return;
  }
}

/**
 * Writes and removes a small file in `dir`: a folder that cannot take a file (read-only,
 * no permission, full) is a one-line error now, not after an epoch of training.
 */
export async function probeWritable(dir: string, name: OptionName = optionAsIs): Promise<void> {
  await makeFolder(dir, name);
  const probe = path.join(dir, `.revcol-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(probe, 'revcol write probe\n');
  } catch (err) {
    folderProblem(dir, err, name);
  } finally {
    await fs.rm(probe, { force: true }).catch(() => undefined);
  }
}

/** Removes temporary files of interrupted saves in `dir` and its sub-runs; returns how many. */
async function removeTempFiles(dir: string): Promise<number> {
  let removed = 0;
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isFile() && TEMP_FILE_PATTERN.test(e.name)) {
      await fs.rm(full, { force: true });
      removed += 1;
    } else if (e.isDirectory() && SUB_RUN.test(e.name)) {
      removed += await removeTempFiles(full);
    }
  }
  return removed;
}

/** Removes the files a run writes (RUN_FILES) from `dir` and its sub-runs; empty sub-runs go too. */
async function removeRunFiles(dir: string): Promise<void> {
  for (const name of RUN_FILES) await fs.rm(path.join(dir, name), { force: true });
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory() || !SUB_RUN.test(e.name)) continue;
    const sub = path.join(dir, e.name);
    await removeRunFiles(sub);
    await fs.rmdir(sub).catch(() => undefined); // kept when something else is in it
  }
}

// ---------------------------------------------------------------------------------------------
// The lock

interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
  /** The process's start time in clock ticks (Linux), to tell a reused pid from the run's. */
  since?: string;
}

function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote a lock still runs: true, false, or null when it cannot be told (another host). */
function lockHolderAlive(lock: LockInfo): boolean | null {
  if (lock.host !== os.hostname()) return null;
  try {
    process.kill(lock.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const since = processStart(lock.pid);
  return !(lock.since && since && since !== lock.since);
}

async function readLock(file: string): Promise<LockInfo | 'gone' | 'unreadable'> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'unreadable';
  }
  try {
    const lock = JSON.parse(text) as LockInfo;
    return Number.isInteger(lock.pid) && typeof lock.host === 'string' ? lock : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

/** Locks this process holds: removed on any exit, even process.exit() (a second Ctrl-C). */
const heldLocks = new Set<string>();
let exitHookInstalled = false;
function releaseOnExit(file: string): void {
  heldLocks.add(file);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const held of heldLocks) releaseLockSync(held);
  });
}

function releaseLockSync(file: string): void {
  heldLocks.delete(file);
  try {
    const lock = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
    if (lock.pid === process.pid && lock.host === os.hostname()) unlinkSync(file);
  } catch {
    // gone already, or not ours
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Takes the folder's lock (which also shows it takes files); a live holder is a one-line refusal. */
async function acquireLock(dir: string, command: string, log: (line: string) => void, name: OptionName): Promise<string> {
  const file = path.join(dir, LOCK_FILE);
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command, ...(processStart(process.pid) ? { since: processStart(process.pid) } : {}) };
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await fs.writeFile(file, `${JSON.stringify(mine)}\n`, { flag: 'wx' });
      releaseOnExit(file);
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') folderProblem(dir, err, name);
    }
    const held = await readLock(file);
    if (held === 'gone') continue;
    if (held === 'unreadable') {
      // Being written this instant, or left empty by a crash: look again shortly, then take it over.
      if (attempt < 5) {
        await sleep(50);
        continue;
      }
    } else {
      const alive = lockHolderAlive(held);
      if (alive === true) {
        const who = held.pid === process.pid ? 'this process' : `process ${held.pid}`;
        fail(`${dir} is in use by a live run (${held.command}, ${who}, started ${held.started}): wait for it to end, stop it, or choose another ${name('out')}`);
      }
      if (alive === null) {
        fail(`${dir} is locked by a run on host ${held.host} (process ${held.pid}, started ${held.started}): if that run has ended, delete ${file}; or choose another ${name('out')}`);
      }
    }
    // The holder is gone: move its lock aside (only one taker can), check it is the one judged stale, drop it.
    const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
    const moved = await fs.rename(file, aside).then(() => true, () => false);
    if (!moved) continue;
    const taken = await readLock(aside);
    const same = held === 'unreadable' ? taken === 'unreadable' : typeof taken === 'object' && taken.pid === held.pid && taken.started === held.started;
    if (!same) {
      // Someone else's fresh lock: put it back (if it cannot go back, the next look decides).
      await fs.rename(aside, file).catch(() => undefined);
      continue;
    }
    await fs.rm(aside, { force: true });
    log(`note: ${dir} was locked by a run that is no longer running (${held === 'unreadable' ? 'an unreadable lock' : `process ${held.pid}, started ${held.started}`}); taking the folder over`);
  }
  fail(`could not lock ${dir}: other runs keep taking it; choose another ${name('out')}`);
}

// ---------------------------------------------------------------------------------------------
// The run record

export async function readRunRecord(dir: string): Promise<RunRecord | null> {
  try {
    const rec = JSON.parse(await fs.readFile(path.join(dir, RUN_FILE), 'utf8')) as RunRecord;
    return rec && rec.format === RUN_FORMAT && typeof rec.identity === 'object' ? rec : null;
  } catch {
    return null;
  }
}

/** Whether `dir` or one of its sub-runs holds a model, a checkpoint or an ensemble manifest. */
async function holdsModel(dir: string): Promise<boolean> {
  if ([BEST_FILE, LAST_FILE, 'ensemble.json'].some((name) => existsSync(path.join(dir, name)))) return true;
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory() && SUB_RUN.test(e.name) && (await holdsModel(path.join(dir, e.name)))) return true;
  return false;
}

/** What an earlier run left in `dir`, in words, and whether it finished; null when there is none. */
async function earlierRun(dir: string, rec: RunRecord | null, info: CheckpointInfo | null): Promise<{ words: string; finished: boolean } | null> {
  const has = (name: string) => existsSync(path.join(dir, name));
  // A record alone (a run that failed before saving anything) leaves nothing to lose.
  if (!(await holdsModel(dir))) return null;
  const members = has('ensemble.json') ? (rec?.ensemble ?? 0) : 0;
  const epochs = info ? `${info.epoch} epoch${info.epoch === 1 ? '' : 's'}` : '';
  if (rec?.status === 'finished') {
    const what = members > 1 ? `an ensemble of ${members}` : epochs;
    return { words: `a finished ${rec.command} run${what ? ` (${what})` : ''}`, finished: true };
  }
  const where = info?.partial ? `stopped in epoch ${info.epoch + 1}, at step ${info.step}` : info ? `stopped after epoch ${info.epoch}` : '';
  if (rec) return { words: `an unfinished ${rec.command} run${where ? ` (${where})` : ''}`, finished: false };
  return { words: `an earlier run${epochs ? ` (${epochs})` : ''}`, finished: false };
}

function describeSource(task: string | null | undefined, data: DataPrint | null | undefined): string {
  if (task) return `task ${task}`;
  return data ? data.path : 'other data';
}

/** One-line refusal when --resume would continue the run on other data or another model than it was started with. */
function checkResumeMatches(out: string, rec: RunRecord | null, info: CheckpointInfo | null, now: RunIdentity, name: OptionName): void {
  const meta = info?.meta ?? {};
  const anew = `or start a new run with ${name('overwrite')} (or another ${name('out')})`;
  // The CLI's naming writes flags (--out); the library's, options.
  const leftOut = name('out').startsWith('--') ? 'flags' : 'options';
  const refuse: (why: string, fix?: string) => never = (why, fix = `resume with the run's own settings (${leftOut} left out are taken from the run)`) => fail(`cannot resume ${out}: ${why}; ${fix}, ${anew}`);
  const sameDataPlease = 'resume with the data the run started on';
  const was = rec?.identity;
  // Task or data file.
  const wasTask = was ? (was.task ?? null) : typeof meta.task === 'string' ? meta.task : null;
  if ((was || meta.family === 'text') && (wasTask ?? null) !== (now.task ?? null)) {
    refuse(`its run trained on ${describeSource(wasTask, was?.data)}, not on ${describeSource(now.task, now.data)}`, sameDataPlease);
  }
  for (const key of ['data', 'eval'] as const) {
    const a = was?.[key] ?? null;
    const b = now[key] ?? null;
    if (!was || (a === null && b === null)) continue;
    const what = key === 'data' ? 'training data' : 'evaluation file';
    if (a === null || b === null) {
      refuse(a === null ? `its run had no ${what} (${key === 'eval' ? 'it held out part of the training data' : 'it used a task'}), and this command gives ${b!.path}` : `its run's ${what} was ${a.path}, and this command gives none`, sameDataPlease);
    }
    if (!sameData(a, b)) {
      refuse(a.path === b.path ? `${b.path} has changed since the run started (its contents differ from the ${what} the run trained on)` : `its run's ${what} was ${a.path}, not ${b.path}`, sameDataPlease);
    }
  }
  // Model: preset or config file.
  if (now.preset) {
    const wasPreset = was ? (was.config ? null : (was.preset ?? (typeof meta.preset === 'string' ? meta.preset : null))) : typeof meta.preset === 'string' ? meta.preset : undefined;
    if (wasPreset !== undefined && wasPreset !== now.preset) {
      refuse(wasPreset === null ? `its run was started with ${name('config')} ${was?.config?.path ?? '(a config)'}, not ${name('preset')} ${now.preset}` : `its run was started with preset ${wasPreset}, not ${now.preset}`);
    }
  }
  if (now.config && was) {
    if (!was.config) refuse(`its run was started with ${was.preset ? `${name('preset')} ${was.preset}` : `no ${name('config')}`}, not ${name('config')} ${now.config.path}`);
    if (!sameData(was.config, now.config)) {
      refuse(was.config.path === now.config.path ? `the config ${now.config.path} has changed since the run started` : `its run was started with ${name('config')} ${was.config.path}, not ${now.config.path}`);
    }
  }
  // Tokenizer.
  if (now.tokenizer) {
    const wasTok = was?.tokenizer ?? (typeof meta.tokenizer === 'string' ? meta.tokenizer : null);
    if (wasTok !== null && tokenizerKey(wasTok) !== tokenizerKey(now.tokenizer)) refuse(`its run was started with tokenizer ${wasTok}, not ${now.tokenizer}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The folder

export interface OpenRunOptions {
  out: string;
  command: RunCommand;
  resume?: boolean;
  overwrite?: boolean;
  /** What this run is started on (see dataPrint, namePrint, inlinePrint). */
  identity: RunIdentity;
  log: (line: string) => void;
  /** How messages name options (default: as written here, `out`; the CLI passes its flags' names, `--out`). */
  optionName?: OptionName;
}

/** A guarded run folder: locked, checked, cleaned. `begin()` before the first write, then `end()` and `close()`. */
export class RunFolder {
  private begun = false;
  private closed = false;

  constructor(
    readonly dir: string,
    private readonly options: OpenRunOptions,
    /** The run's record as found (resume: the run being continued). */
    readonly record: RunRecord | null,
    private readonly lockFile: string,
    /** The first folder openRunFolder created for `dir` (removed again if the run never wrote). */
    private readonly created: string | undefined,
    /** What --overwrite will replace, in words (null: nothing to replace). */
    private readonly replacing: string | null,
  ) {}

  /**
   * Called once the run has checked its input, right before it first writes into the folder:
   * an earlier run's files go now (--overwrite), and the run record is written. Idempotent.
   */
  async begin(extra: { ensemble?: number } = {}): Promise<void> {
    if (this.begun) return;
    this.begun = true;
    if (this.replacing) {
      await removeRunFiles(this.dir);
      this.options.log(`note: ${(this.options.optionName ?? optionAsIs)('overwrite')}: ${this.replacing} in ${this.dir} is replaced by this run`);
    }
    const kept = this.options.resume ? this.record : null;
    const ensemble = extra.ensemble ?? kept?.ensemble;
    await this.write({
      format: RUN_FORMAT,
      command: this.options.command,
      status: 'running',
      // A resumed run keeps what it was started on (flags left out on --resume are the run's).
      identity: kept?.identity ?? this.options.identity,
      ...(ensemble && ensemble > 1 ? { ensemble } : {}),
      started: kept?.started ?? new Date().toISOString(),
      pid: process.pid,
    });
  }

  /** Records how the run ended (only once it began). */
  async end(status: RunRecord['status']): Promise<void> {
    if (!this.begun) return;
    const rec = await readRunRecord(this.dir);
    if (rec) await this.write({ ...rec, status, ended: new Date().toISOString() });
  }

  /** Releases the lock; a folder this run created and never wrote into is removed again. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    releaseLockSync(this.lockFile);
    if (!this.begun) await unmakeFolder(this.dir, this.created);
  }

  private async write(rec: RunRecord): Promise<void> {
    try {
      await writeFileAtomic(path.join(this.dir, RUN_FILE), `${JSON.stringify(rec, null, 2)}\n`);
    } catch (err) {
      if (isUserFsError(err)) fail(fsErrorLine(Object.assign(err, { syscall: 'write' }), path.join(this.dir, RUN_FILE)));
      throw err;
    }
  }
}

/**
 * Opens `out` for a run: creates it, takes its lock (a live run there is a one-line refusal; a
 * dead one's lock is taken over with a note), removes temporary files of an interrupted save,
 * and checks the run in it: with --resume, that this command matches what the run recorded;
 * without, that there is no earlier run unless --overwrite.
 */
export async function openRunFolder(options: OpenRunOptions): Promise<RunFolder> {
  const { out, log } = options;
  const name = options.optionName ?? optionAsIs;
  const [resume, overwrite] = [name('resume'), name('overwrite')];
  if (options.resume && options.overwrite) fail(`give ${resume} or ${overwrite}, not both: ${resume} continues the run in ${out}, ${overwrite} replaces it`);
  const created = await makeFolder(out, name);
  let lockFile: string;
  try {
    lockFile = await acquireLock(out, options.command, log, name);
  } catch (err) {
    await unmakeFolder(out, created);
    throw err;
  }
  try {
    const removed = await removeTempFiles(out);
    if (removed) log(`note: removed ${removed} temporary file${removed === 1 ? '' : 's'} left in ${out} by an interrupted save`);
    const record = await readRunRecord(out);
    const info = await readCheckpointInfo(path.join(out, LAST_FILE));
    let replacing: string | null = null;
    if (options.resume) {
      if (!record && info) log(`note: ${out} has no ${RUN_FILE} (a run from an older revcol): its data cannot be checked against this command's`);
      checkResumeMatches(out, record, info, options.identity, name);
    } else {
      const earlier = await earlierRun(out, record, info);
      if (earlier && !options.overwrite) {
        fail(`${out} already holds ${earlier.words}: add ${resume} to continue it${earlier.finished ? ` (with more ${name('epochs')} to train longer)` : ''}, ${overwrite} to replace it, or choose another ${name('out')}`);
      }
      replacing = earlier?.words ?? null;
    }
    return new RunFolder(out, options, record, lockFile, created, replacing);
  } catch (err) {
    releaseLockSync(lockFile);
    await unmakeFolder(out, created);
    throw err;
  }
}

/**
 * Runs `body` in the guarded folder: opens it, records how the run ended (finished, stopped,
 * failed) and always releases the lock. `body` calls folder.begin() before its first write.
 */
export async function withRunFolder<T>(options: OpenRunOptions, body: (folder: RunFolder) => Promise<T>): Promise<T> {
  const folder = await openRunFolder(options);
  try {
    const result = await body(folder);
    await folder.end('finished');
    return result;
  } catch (err) {
    if (err instanceof RunStopped) err.runDir ??= folder.dir;
    await folder.end(err instanceof RunStopped ? 'stopped' : 'failed').catch(() => undefined);
    throw err;
  } finally {
    await folder.close();
  }
}
