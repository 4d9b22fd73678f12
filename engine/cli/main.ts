// `squall <command>`: the user-facing entry point.
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
  demo                 what \`npm run demo\` runs: selftest, then info
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
        const code = await selftestCommand(rest);
        console.log('');
        return code || infoCommand([]);
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
