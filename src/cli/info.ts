import type { Command } from 'commander';
// Types only at the top: the backends (tfjs, wasm, Dawn) load when the command runs, not for --help.
import type { BackendStatus, ConcreteBackendName } from '../backends/index.js';
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
    .description('List the compute backends: usable or not (and why), and which one auto picks; --backend NAME reports that one alone.')
    .option('--json', 'print one JSON object');
  addBackendOption(cmd).action(async (opts: InfoOptions) => {
    const { autoBackend, isBackendName, probeBackend, probeBackends, useBackend } = await import('../backends/index.js');
    // What runs the wasm backend's matrix products: OpenBLAS where built, else revcol's kernels.
    const { nativeBlasStatus } = await import('../backends/native-blas.js');
    const out = (line: string) => process.stdout.write(`${line}\n`);
    if (opts.backend !== 'auto') {
      // The one backend asked for, usable or not (and why); an unknown name is a one-line error.
      if (!isBackendName(opts.backend)) await useBackend(opts.backend);
      const name = opts.backend as ConcreteBackendName;
      let status = await probeBackend(name);
      if (status.usable) {
        // Usable by its probe: start it, to be sure.
        const started = await useBackend(name).then(() => null, (err: Error) => err.message);
        if (started) status = { ...status, usable: false, reason: started };
      }
      const products = name === 'wasm' ? nativeBlasStatus() : undefined;
      if (opts.json) {
        out(JSON.stringify({ backends: [status], ...(status.adapter ? { adapter: status.adapter } : {}), ...(products ? { wasmProducts: products } : {}) }));
      } else {
        out(statusLine(status, undefined));
        if (status.adapter) out(`GPU adapter: ${status.adapter}`);
        if (products) out(`wasm products: ${products}`);
      }
      return;
    }
    const backends = await probeBackends();
    const auto = await autoBackend();
    const adapter = backends.find((b) => b.adapter !== undefined)?.adapter;
    if (opts.json) {
      out(JSON.stringify({ backends, auto: auto?.name ?? null, ...(adapter ? { adapter } : {}), wasmProducts: nativeBlasStatus() }));
      return;
    }
    for (const status of backends) out(statusLine(status, auto?.name));
    out(`auto picks: ${auto?.name ?? 'none (no backend is usable)'}`);
    out(`GPU adapter: ${adapter ?? 'none found'}`);
    out(`wasm products: ${nativeBlasStatus()}`);
  });
}
