// The driver's plan (engine/cluster/scheduler): group ranges end at multiples of G (also
// for a job resumed inside a group), bsp has one iteration per launch, snapshots fall on
// group boundaries counted from iteration 0 and at the end when asked; pre-scheduling keeps
// the next group's launch out before the current one completes, bsp waits for each.
import t from 'tap';
import { LaunchScheduler, planLaunches } from '../../engine/cluster/scheduler.js';

const ranges = (ls: { first: number; count: number }[]): string[] => ls.map((l) => `${l.first}+${l.count}`);

t.test('group mode: one launch per group of G', async (t) => {
  const p = planLaunches({ mode: 'group', groupSize: 4, start: 0, end: 10 });
  t.same(ranges(p), ['0+4', '4+4', '8+2'], 'groups of 4, the last one short');
  t.same(p.map((l) => l.seq), [0, 1, 2]);
  t.same(p.map((l) => l.last), [false, false, true]);
  t.ok(p.every((l) => !l.snapshot && !l.evaluate), 'no snapshot or evaluation unless asked');
  const r = planLaunches({ mode: 'group', groupSize: 4, start: 6, end: 13, snapshotEvery: 1, finalSnapshot: true, evaluate: true });
  t.same(ranges(r), ['6+2', '8+4', '12+1'], 'a resumed job finishes the group it started in, then keeps the boundaries');
  t.same(r.map((l) => l.snapshot), [true, true, true], 'snapshots at 8 and 12 (boundaries) and 13 (the end)');
  t.same(r.map((l) => l.evaluate), [false, false, true], 'evaluation after the last launch');
  const e = planLaunches({ mode: 'group', groupSize: 2, start: 0, end: 12, snapshotEvery: 3 });
  t.same(e.filter((l) => l.snapshot).map((l) => l.first + l.count), [6, 12], 'every 3 groups of 2');
});

t.test('bsp mode: one launch per iteration, snapshots at the same boundaries', async (t) => {
  const p = planLaunches({ mode: 'bsp', groupSize: 3, start: 1, end: 7, snapshotEvery: 1 });
  t.same(ranges(p), ['1+1', '2+1', '3+1', '4+1', '5+1', '6+1']);
  t.same(p.filter((l) => l.snapshot).map((l) => l.first + l.count), [3, 6], 'after iterations 3 and 6, as group mode with G = 3');
});

t.test('an empty range is one empty last launch', async (t) => {
  const p = planLaunches({ mode: 'group', groupSize: 5, start: 20, end: 20, finalSnapshot: true, evaluate: true });
  t.same(p, [{ seq: 0, first: 20, count: 0, snapshot: true, evaluate: true, last: true }]);
});

t.test('bad plans are refused', async (t) => {
  t.throws(() => planLaunches({ mode: 'stream' as never, groupSize: 1, start: 0, end: 1 }), /schedule must be 'group' or 'bsp'/);
  t.throws(() => planLaunches({ mode: 'group', groupSize: 0, start: 0, end: 1 }), /groupSize must be an integer >= 1/);
  t.throws(() => planLaunches({ mode: 'group', groupSize: 1, start: 5, end: 4 }), /end must be an integer >= 5/);
});

t.test('pre-scheduling: the next group is out before the current one completes', async (t) => {
  const plan = planLaunches({ mode: 'group', groupSize: 2, start: 0, end: 10 });
  const s = new LaunchScheduler(plan, 'group');
  const log: string[] = [];
  const send = (ls: { seq: number }[]): void => { for (const l of ls) log.push(`launch ${l.seq}`); };
  send(s.start());
  for (let g = 0; g < plan.length; g++) {
    log.push(`done ${g}`);
    send(s.complete(g));
  }
  t.same(log, ['launch 0', 'launch 1', 'done 0', 'launch 2', 'done 1', 'launch 3', 'done 2', 'launch 4', 'done 3', 'done 4'],
    'launch g + 1 is always sent before group g completes');
  t.ok(s.finished);
  t.throws(() => s.complete(5), /launch 5 completed, expected launch 5 next|never sent/);
});

t.test('bsp: each launch waits for the previous completion; ahead 0 turns pre-scheduling off', async (t) => {
  const plan = planLaunches({ mode: 'bsp', groupSize: 2, start: 0, end: 3 });
  const s = new LaunchScheduler(plan, 'bsp');
  t.same(s.start().map((l) => l.seq), [0]);
  t.same(s.complete(0).map((l) => l.seq), [1]);
  t.same(s.complete(1).map((l) => l.seq), [2]);
  t.same(s.complete(2), []);
  t.throws(() => s.complete(1), /expected launch 3/);
  const g = new LaunchScheduler(planLaunches({ mode: 'group', groupSize: 2, start: 0, end: 6 }), 'group', 0);
  t.same(g.start().map((l) => l.seq), [0], 'group mode with ahead 0 sends one launch at a time');
  const deep = new LaunchScheduler(planLaunches({ mode: 'group', groupSize: 1, start: 0, end: 6 }), 'group', 3);
  t.same(deep.start().map((l) => l.seq), [0, 1, 2, 3], 'ahead 3: four launches queued at the start');
});
