#!/usr/bin/env node
// The `squall` command: loads the compiled CLI (npm run build, or any README command, compiles it).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join, dirname } from 'node:path';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'engine', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error('squall: the TypeScript build is missing (dist/). Run `npm run build` (or `npm test` / `npm run demo`, which build first).');
  process.exit(1);
}
const { runCli } = await import(pathToFileURL(main).href);
process.exitCode = await runCli(process.argv.slice(2));
