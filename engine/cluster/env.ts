// Rank, world size and the driver's address from the environment that cluster managers set
// (DESIGN.md §7), so `srun squall cluster ...` or a Kubernetes training operator / torchrun
// can start every process of a job with one command line:
//
//   RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK)   torchrun, Kubernetes operators
//   SLURM_PROCID, SLURM_NTASKS (SLURM_LOCALID)                Slurm's srun; the driver's host is
//       MASTER_ADDR when set, else the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST
//       (rank 0 runs there under srun's default block distribution); its port MASTER_PORT, else
//       SQUALL_DRIVER_PORT, else DEFAULT_DRIVER_PORT.
//
// RANK/WORLD_SIZE win when both are set (torchrun inside a Slurm allocation sets both, and
// its RANK is the process's own). Process rank r is worker r; rank 0's host also runs the
// driver ("rank 0 = driver host").

export const DEFAULT_DRIVER_PORT = 29500;

export interface ClusterEnv {
  source: 'torchrun' | 'slurm';
  /** This process's worker rank. */
  rank: number;
  /** Number of workers. */
  worldSize: number;
  localRank?: number;
  /** The driver's address (rank 0's host), when the environment names it. */
  driver?: { host: string; port: number };
}

export class ClusterEnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterEnvError';
  }
}

type Env = Record<string, string | undefined>;

function has(env: Env, name: string): boolean {
  return env[name] !== undefined && env[name] !== '';
}

function int(env: Env, name: string, min: number): number {
  const raw = env[name]!.trim();
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    throw new ClusterEnvError(`${name}=${JSON.stringify(env[name])} must be an integer >= ${min}`);
  }
  return Number(raw);
}

function port(env: Env, name: string): number {
  const p = int(env, name, 1);
  if (p > 65535) throw new ClusterEnvError(`${name}=${p} is not a TCP port (1-65535)`);
  return p;
}

/**
 * The first host of a Slurm host list: "node[01-04,07],gpu5" -> "node01",
 * "rack[1-2]-n[3-4]" -> "rack1-n3", "a,b" -> "a". Zero padding is kept.
 */
export function firstSlurmHost(list: string): string {
  const s = list.trim();
  let depth = 0;
  let end = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === ',' && depth === 0) {
      end = i;
      break;
    }
  }
  const first = s.slice(0, end);
  const host = first.replace(/\[([^\]]*)\]/g, (_, inner: string) => inner.split(',')[0]!.split('-')[0]!);
  if (!host || /[[\]]/.test(host)) throw new ClusterEnvError(`cannot read the first host of the Slurm host list ${JSON.stringify(list)}`);
  return host;
}

/** Rank and world size from the environment, or null when neither convention is present. */
export function clusterEnv(env: Env = process.env): ClusterEnv | null {
  let out: ClusterEnv;
  if (has(env, 'RANK') || has(env, 'WORLD_SIZE')) {
    if (!has(env, 'RANK') || !has(env, 'WORLD_SIZE')) throw new ClusterEnvError('RANK and WORLD_SIZE must be set together');
    out = { source: 'torchrun', rank: int(env, 'RANK', 0), worldSize: int(env, 'WORLD_SIZE', 1) };
    if (has(env, 'LOCAL_RANK')) out.localRank = int(env, 'LOCAL_RANK', 0);
    if (has(env, 'MASTER_ADDR') || has(env, 'MASTER_PORT')) {
      if (!has(env, 'MASTER_ADDR')) throw new ClusterEnvError('MASTER_PORT is set but MASTER_ADDR is not');
      out.driver = { host: env.MASTER_ADDR!.trim(), port: has(env, 'MASTER_PORT') ? port(env, 'MASTER_PORT') : DEFAULT_DRIVER_PORT };
    }
  } else if (has(env, 'SLURM_PROCID') || has(env, 'SLURM_NTASKS')) {
    if (!has(env, 'SLURM_PROCID') || !has(env, 'SLURM_NTASKS')) throw new ClusterEnvError('SLURM_PROCID and SLURM_NTASKS must be set together (run under srun)');
    out = { source: 'slurm', rank: int(env, 'SLURM_PROCID', 0), worldSize: int(env, 'SLURM_NTASKS', 1) };
    if (has(env, 'SLURM_LOCALID')) out.localRank = int(env, 'SLURM_LOCALID', 0);
    const list = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
    const host = has(env, 'MASTER_ADDR') ? env.MASTER_ADDR!.trim() : list ? firstSlurmHost(list) : undefined;
    const p = has(env, 'MASTER_PORT') ? port(env, 'MASTER_PORT') : has(env, 'SQUALL_DRIVER_PORT') ? port(env, 'SQUALL_DRIVER_PORT') : DEFAULT_DRIVER_PORT;
    if (host) out.driver = { host, port: p };
  } else {
    return null;
  }
  if (out.rank >= out.worldSize) {
    throw new ClusterEnvError(`${out.source === 'slurm' ? 'SLURM_PROCID' : 'RANK'}=${out.rank} is not below ${out.source === 'slurm' ? 'SLURM_NTASKS' : 'WORLD_SIZE'}=${out.worldSize}`);
  }
  return out;
}
