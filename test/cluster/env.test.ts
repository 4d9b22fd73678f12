// Rank, world size and driver address from Slurm's srun environment and from the
// RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT convention (engine/cluster/env).
import t from 'tap';
import { ClusterEnvError, DEFAULT_DRIVER_PORT, clusterEnv, firstSlurmHost } from '../../engine/cluster/env.js';

t.test('no cluster environment', async (t) => {
  t.equal(clusterEnv({}), null);
  t.equal(clusterEnv({ HOME: '/root', SLURM_JOB_ID: '12' }), null, 'a Slurm allocation without srun is not a task');
});

t.test('torchrun / Kubernetes: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT', async (t) => {
  t.same(clusterEnv({ RANK: '2', WORLD_SIZE: '4', MASTER_ADDR: 'trainer-0.svc', MASTER_PORT: '23456', LOCAL_RANK: '0' }),
    { source: 'torchrun', rank: 2, worldSize: 4, localRank: 0, driver: { host: 'trainer-0.svc', port: 23456 } });
  t.same(clusterEnv({ RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: '10.0.0.5' }),
    { source: 'torchrun', rank: 0, worldSize: 1, driver: { host: '10.0.0.5', port: DEFAULT_DRIVER_PORT } }, 'default port');
  t.same(clusterEnv({ RANK: '1', WORLD_SIZE: '2' }), { source: 'torchrun', rank: 1, worldSize: 2 }, 'no driver address: --driver must give it');
  t.same(clusterEnv({ RANK: '1', WORLD_SIZE: '3', SLURM_PROCID: '0', SLURM_NTASKS: '1', MASTER_ADDR: 'h' })?.rank, 1, 'RANK wins over SLURM_PROCID');
});

t.test('Slurm: SLURM_PROCID, SLURM_NTASKS, the first node of the step', async (t) => {
  t.same(clusterEnv({ SLURM_PROCID: '3', SLURM_NTASKS: '4', SLURM_LOCALID: '1', SLURM_STEP_NODELIST: 'node[07-08]', SLURM_JOB_NODELIST: 'node[01-08]' }),
    { source: 'slurm', rank: 3, worldSize: 4, localRank: 1, driver: { host: 'node07', port: DEFAULT_DRIVER_PORT } });
  t.same(clusterEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'gpu5,gpu6', SQUALL_DRIVER_PORT: '4000' })?.driver,
    { host: 'gpu5', port: 4000 }, 'the job node list and SQUALL_DRIVER_PORT');
  t.same(clusterEnv({ SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_NODELIST: 'x', MASTER_ADDR: 'head', MASTER_PORT: '5000' })?.driver,
    { host: 'head', port: 5000 }, 'MASTER_ADDR / MASTER_PORT override');
  t.same(clusterEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '1' }), { source: 'slurm', rank: 0, worldSize: 1 }, 'no node list, no driver address');
});

t.test('Slurm host lists', async (t) => {
  t.equal(firstSlurmHost('node[01-04,07],gpu5'), 'node01');
  t.equal(firstSlurmHost('node[3,1-2]'), 'node3');
  t.equal(firstSlurmHost('rack[1-2]-n[3-4]'), 'rack1-n3');
  t.equal(firstSlurmHost('a,b'), 'a');
  t.equal(firstSlurmHost('localhost'), 'localhost');
  t.throws(() => firstSlurmHost('node[01'), ClusterEnvError);
});

t.test('inconsistent environments are errors naming the variable', async (t) => {
  t.throws(() => clusterEnv({ RANK: '4', WORLD_SIZE: '4' }), /RANK=4 is not below WORLD_SIZE=4/);
  t.throws(() => clusterEnv({ RANK: '1' }), /RANK and WORLD_SIZE must be set together/);
  t.throws(() => clusterEnv({ RANK: 'one', WORLD_SIZE: '2' }), /RANK="one" must be an integer >= 0/);
  t.throws(() => clusterEnv({ RANK: '0', WORLD_SIZE: '0' }), /WORLD_SIZE="0" must be an integer >= 1/);
  t.throws(() => clusterEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '80' }), /MASTER_PORT is set but MASTER_ADDR is not/);
  t.throws(() => clusterEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '70000' }), /MASTER_PORT=70000 is not a TCP port/);
  t.throws(() => clusterEnv({ SLURM_PROCID: '2', SLURM_NTASKS: '2' }), /SLURM_PROCID=2 is not below SLURM_NTASKS=2/);
  t.throws(() => clusterEnv({ SLURM_NTASKS: '2' }), /run under srun/);
});
