// `squall <command>`: the user-facing entry point.
import { probeBackends } from '../backends/registry.js';
import { infoCommand } from './info.js';
import { selftestCommand } from './selftest.js';
import { UsageError } from './args.js';
import { trainCommand } from './train.js';

const usage = `usage: squall <command> [options]

commands:
  info                 backends available here, BLAS provider and version, threads, CPU features
  selftest             check every kernel of every backend against a float64 reference
  selftest --wasi      run the WASI build of the wasm kernels (build/wasm/squall-wasi.wasm,
                       for any WASI runtime) under node:wasi and check it the same way
  train                train a model in this process (squall train --help)
  demo                 what \`npm run demo\` runs: selftest, then one epoch of LeNet-5 on Fashion-MNIST
  help                 this text`;

export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'info':
        return infoCommand(rest);
      case 'selftest':
        return await selftestCommand(rest);
      case 'train':
        return await trainCommand(rest);
      case 'demo': {
        // Until the cluster lands: check the kernels, then train LeNet-5 on Fashion-MNIST for
        // one epoch in this process on the best backend here.
        const code = await selftestCommand([]);
        if (code) return code;
        console.log('');
        const backend = probeBackends().available[0]?.name ?? 'wasm';
        return await trainCommand(['--model', 'lenet5', '--dataset', 'fashion-mnist', '--epochs', '1', '--backend', backend, ...rest]);
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(usage);
        return 0;
      default:
        console.error(`squall: unknown command '${command}'\n\n${usage}`);
        return 2;
    }
  } catch (err) {
    console.error(err instanceof UsageError ? err.message : `squall ${command}: ${(err as Error).message}`);
    return err instanceof UsageError ? 2 : 1;
  }
}
