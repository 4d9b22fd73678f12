// `squall <command>`: the user-facing entry point.
import { probeBackends } from '../backends/registry.js';
import { enableRelaxedSimd } from '../backends/wasm/relaxed-simd.js';
import { infoCommand } from './info.js';
import { selftestCommand } from './selftest.js';
import { UsageError } from './args.js';
import { setDeterministic } from '../backends/determinism.js';
import { convertCommand } from './convert.js';
import { predictCommand } from './predict.js';
import { clusterCommand, driverCommand, trainCommand, workerCommand } from './train.js';

const usage = `usage: squall <command> [options]

commands:
  info                 backends available here, BLAS provider and version, threads, CPU features
  selftest             check every kernel of every backend against a float64 reference
  selftest --wasi      run the WASI build of the wasm kernels (build/wasm/squall-wasi.wasm,
                       for any WASI runtime) under node:wasi and check it the same way
  train                train a model in this process, or with --workers native:2,wasm:1 as a
                       cluster job on this machine: a driver and worker processes (squall train --help)
  driver               the driver of a cluster job: squall driver --workers N --port P [train options]
  worker               a worker of a cluster job: squall worker --driver HOST:PORT --backend native|wasm
  cluster              every process of an srun / torchrun job: rank and world size from the
                       environment (SLURM_PROCID/SLURM_NTASKS, RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT);
                       rank 0 also runs the driver
  convert IN OUT       convert a model file (ONNX, Caffe prototxt + --weights, Torch7 .t7, Squall;
                       recognised by content) to a Squall model (.squall) or ONNX (.onnx) (squall convert --help)
  predict              run a model file on inputs (.npy, JSON, fashion-mnist:test[:N]) and print the
                       top classes and the accuracy (squall predict --help)
  demo                 what \`npm run demo\` runs: selftest, then one epoch of LeNet-5 on Fashion-MNIST
                       with 2 native workers and 1 wasm worker over TCP on this machine
  help                 this text

options of every command:
  --deterministic      bit-identical results across runs and processes on this machine (and across
                       thread counts where \`squall info\` says so); same as SQUALL_DETERMINISTIC=1,
                       and passed on to the worker processes a job starts. Slower: see the README`;

export async function runCli(argv: string[]): Promise<number> {
  const [command, ...given] = argv;
  // A global option: set before any backend loads, so MKL gets its reproducibility control
  // before its first call, and inherited by every process the command starts.
  const rest = given.filter((a) => a !== '--deterministic');
  if (rest.length !== given.length) setDeterministic(true);
  // The command is an application choosing its runtime: wasm workers it starts get the FMA
  // kernels on Node 20 too (relaxed-simd.ts), unless SQUALL_WASM_SIMD=plain asks otherwise.
  if (process.env.SQUALL_WASM_SIMD !== 'plain') enableRelaxedSimd();
  try {
    switch (command) {
      case 'info':
        return infoCommand(rest);
      case 'selftest':
        return await selftestCommand(rest);
      case 'train':
        return await trainCommand(rest);
      case 'driver':
        return await driverCommand(rest);
      case 'worker':
        return await workerCommand(rest);
      case 'cluster':
        return await clusterCommand(rest);
      case 'convert':
        return await convertCommand(rest);
      case 'predict':
        return await predictCommand(rest);
      case 'demo': {
        // Check the kernels, then train LeNet-5 on Fashion-MNIST for one epoch as a cluster
        // job on this machine: 2 native workers and 1 wasm worker over TCP (wasm workers
        // only where the native build is missing), with a progress bar and the test accuracy.
        const code = await selftestCommand([]);
        if (code) return code;
        console.log('');
        const native = probeBackends().available.some((b) => b.name === 'native');
        const workers = native ? 'native:2,wasm:1' : 'wasm:3';
        return await trainCommand(['--model', 'lenet5', '--dataset', 'fashion-mnist', '--epochs', '1', '--workers', workers, '--transport', 'tcp',
          '--schedule', 'group', '--group-size', '10', '--shares', native ? '2,2,1' : '1,1,1', ...rest]);
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
