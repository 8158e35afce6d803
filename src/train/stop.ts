/**
 * Runs a training call with Ctrl-C as a request to stop: the first SIGINT aborts the signal
 * handed to `body` (the run finishes its step, saves a checkpoint and rejects with RunStopped,
 * which the CLI turns into the --resume command and exit code 130); a second one quits at once
 * (exit 130; files are written whole or not at all, so the last checkpoint saved stays usable).
 */
export async function stoppableByCtrlC<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => {
    if (!controller.signal.aborted) {
      process.stderr.write('\nrevcol: Ctrl-C: stopping after the current step and saving a checkpoint (Ctrl-C again quits at once)\n');
      controller.abort('Ctrl-C');
      return;
    }
    process.stderr.write('revcol: quit at once (second Ctrl-C); files are whole, and --resume continues from the last checkpoint saved, if there is one\n');
    process.exit(130);
  };
  process.on('SIGINT', onSigint);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
