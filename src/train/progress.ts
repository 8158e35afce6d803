import cliProgress from 'cli-progress';

export interface ProgressBarOptions {
  /** Total epochs of the run (shown as epoch e/E). */
  epochs: number;
  /** Samples per epoch (the bar's length). */
  total: number;
  /** False turns the bar off; it is also off when the stream is not a terminal. */
  enabled?: boolean;
  /** Where the bar and the per-epoch lines go (stderr: stdout is kept for --json output). */
  stream?: NodeJS.WriteStream;
  /** Receives the per-epoch lines instead of the stream (e.g. to silence them). */
  log?: (line: string) => void;
}

/**
 * A per-epoch progress bar with the running loss, samples/s and ETA, on a terminal;
 * elsewhere (logs, CI, pipes) only one plain line per epoch.
 */
export class ProgressBar {
  readonly enabled: boolean;
  private readonly stream: NodeJS.WriteStream;
  private readonly log: (line: string) => void;
  private bar: cliProgress.SingleBar | null = null;
  private epochStart = 0;

  constructor(private readonly options: ProgressBarOptions) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = (options.enabled ?? true) && this.stream.isTTY === true;
    this.log = options.log ?? ((line) => this.stream.write(`${line}\n`));
  }

  /** `epoch` counts from 1. */
  startEpoch(epoch: number, done = 0): void {
    this.epochStart = performance.now();
    if (!this.enabled) return;
    this.bar?.stop();
    this.bar = new cliProgress.SingleBar(
      {
        stream: this.stream,
        format: 'epoch {epoch}/{epochs} {bar} {percentage}% | {value}/{total} | loss {loss} | {speed} samples/s | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(this.options.total, done, { epoch, epochs: this.options.epochs, loss: '-', speed: '-' });
  }

  /** `done`: samples seen this epoch; `loss`: the running mean loss. */
  update(done: number, loss: number): void {
    if (!this.bar) return;
    const seconds = (performance.now() - this.epochStart) / 1000;
    const speed = seconds > 0 ? (done / seconds).toFixed(1) : '-';
    this.bar.update(Math.min(done, this.options.total), { loss: loss.toFixed(4), speed });
  }

  /** Ends the epoch's bar and prints its summary line. */
  endEpoch(line: string): void {
    this.stop();
    this.log(line);
  }

  /** Prints a line outside the bar. */
  note(line: string): void {
    if (this.bar) this.stream.write('\n');
    this.log(line);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
