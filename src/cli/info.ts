import type { Command } from 'commander';
import {
  type BackendStatus,
  autoBackend,
  probeBackend,
  probeBackends,
  useBackend,
} from '../backends/index.js';
import { addBackendOption } from './common.js';

interface InfoOptions {
  json?: boolean;
  backend: string;
}

function statusLine(status: BackendStatus, auto: string | undefined): string {
  const mark = status.usable ? 'usable    ' : 'not usable';
  const picked = status.name === auto ? '  <- auto' : '';
  return `${status.name.padEnd(15)}${mark}  ${status.reason}${picked}`;
}

export function registerInfoCommand(program: Command): void {
  const cmd = program
    .command('info')
    .description('List the compute backends: usable or not (and why), and which one auto picks.')
    .option('--json', 'print one JSON object');
  addBackendOption(cmd).action(async (opts: InfoOptions) => {
    const out = (line: string) => process.stdout.write(`${line}\n`);
    if (opts.backend !== 'auto') {
      // validate the one backend asked for: unknown or unusable is a one-line error, exit 1
      const active = await useBackend(opts.backend);
      const status = await probeBackend(active.name);
      if (opts.json) {
        out(JSON.stringify({ backends: [status], ...(status.adapter ? { adapter: status.adapter } : {}) }));
      } else {
        out(statusLine(status, undefined));
        if (status.adapter) out(`GPU adapter: ${status.adapter}`);
      }
      return;
    }
    const backends = await probeBackends();
    const auto = await autoBackend();
    const adapter = backends.find((b) => b.adapter !== undefined)?.adapter;
    if (opts.json) {
      out(JSON.stringify({ backends, auto: auto?.name ?? null, ...(adapter ? { adapter } : {}) }));
      return;
    }
    for (const status of backends) out(statusLine(status, auto?.name));
    out(`auto picks: ${auto?.name ?? 'none (no backend is usable)'}`);
    out(`GPU adapter: ${adapter ?? 'none found'}`);
  });
}
