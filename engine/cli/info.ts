// `squall info`: what this machine gives the engine.
import os from 'node:os';
import { probeBackends } from '../backends/registry.js';
import { crc32Implementation } from '../io/checkpoint/crc32.js';

export function infoCommand(args: string[]): number {
  const json = args.includes('--json');
  const { available, unavailable } = probeBackends();
  const report = {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null,
    crc32: crc32Implementation,
    backends: available.map((b) => b.info()),
    unavailable,
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return available.length ? 0 : 1;
  }
  console.log(`squall ${process.env.npm_package_version ?? ''}`.trim());
  console.log(`node      ${report.node}`);
  console.log(`cpu       ${report.cpu} (${report.cores} cores)`);
  console.log(`OPENBLAS_CORETYPE ${report.openblasCoretype ?? '(not set)'}`);
  console.log(`crc32     ${report.crc32}`);
  for (const info of report.backends) {
    console.log(`\nbackend ${info.name}: available`);
    console.log(`  blas      ${info.blas}`);
    console.log(`  threads   ${info.threads}`);
    console.log(`  cpu       ${info.cpuFeatures.join(' ')}`);
    for (const [k, v] of Object.entries(info.details)) console.log(`  ${k.padEnd(9)} ${v}`);
  }
  for (const u of unavailable) console.log(`\nbackend ${u.name}: unavailable (${u.reason})`);
  return available.length ? 0 : 1;
}
