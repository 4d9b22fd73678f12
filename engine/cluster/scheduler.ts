// Drizzle's group scheduling (DESIGN.md §5) as the driver's plan of launches.
//
// `group` mode: iterations are cut into groups of G; the driver sends ONE launch per group
// (its iteration range, the shares of the global batch, the hyper-parameters) and hears
// from each worker only at the group's end. It keeps the next group's launch in the
// workers' hands before the current one ends (pre-scheduling): launches 0 and 1 leave at
// the start, and launch g + 2 leaves as soon as group g has completed on every worker, while
// the workers are running group g + 1. A worker therefore finds its next launch already
// queued when it finishes a group and never waits on the driver; the driver's latency is
// off the critical path.
//
// `bsp` mode (Spark's task-per-iteration scheduling, for comparison): one launch and one
// completion per worker per iteration, and launch k + 1 leaves only when iteration k has
// completed everywhere: the driver sits on the critical path of every iteration.
//
// Checkpoints (snapshots) are taken at group boundaries: every `snapshotEvery` groups of G
// iterations, counted from iteration 0 (so a resumed job keeps the same boundaries), and
// always at the end of the job when the driver wants the final weights. In bsp mode the
// boundaries are the same iteration numbers (the launch that ends a group of G).
//
// This file is pure bookkeeping (no I/O): the driver asks it what to send and when.

export type ScheduleMode = 'group' | 'bsp';
export const scheduleModes: readonly ScheduleMode[] = ['group', 'bsp'];

export function isScheduleMode(x: unknown): x is ScheduleMode {
  return x === 'group' || x === 'bsp';
}

export interface PlanOptions {
  mode: ScheduleMode;
  /** G: iterations per group (group mode: per launch; both modes: checkpoint granularity). */
  groupSize: number;
  /** The job runs iterations [start, end). */
  start: number;
  end: number;
  /** Snapshot every this many groups (0 or undefined: never, except `finalSnapshot`). */
  snapshotEvery?: number;
  /** Snapshot at the end of the job (to collect the final weights / write the final checkpoint). */
  finalSnapshot?: boolean;
  /** Evaluate the test set after the last launch. */
  evaluate?: boolean;
}

/** One launch of the plan. */
export interface PlannedLaunch {
  seq: number;
  first: number;
  count: number;
  snapshot: boolean;
  evaluate: boolean;
  last: boolean;
}

function checkInt(what: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${what} must be an integer >= ${min}, got ${v}`);
}

/**
 * The launches of a job. Group mode: ranges end at multiples of G (the first one may be
 * shorter when a resumed job starts inside a group, the last one when the end is not a
 * multiple of G); bsp mode: one iteration each. An empty range gives one empty last launch.
 */
export function planLaunches(o: PlanOptions): PlannedLaunch[] {
  if (!isScheduleMode(o.mode)) throw new RangeError(`schedule must be 'group' or 'bsp', got ${JSON.stringify(o.mode)}`);
  checkInt('groupSize', o.groupSize, 1);
  checkInt('start', o.start, 0);
  checkInt('end', o.end, o.start);
  const every = o.snapshotEvery ?? 0;
  checkInt('snapshotEvery', every, 0);
  const out: PlannedLaunch[] = [];
  const G = o.groupSize;
  let it = o.start;
  while (it < o.end) {
    const next = o.mode === 'group' ? Math.min(o.end, (Math.floor(it / G) + 1) * G) : it + 1;
    const boundary = next % G === 0;
    const last = next === o.end;
    const snapshot = (every > 0 && boundary && (next / G) % every === 0) || (last && (o.finalSnapshot ?? false));
    out.push({ seq: out.length, first: it, count: next - it, snapshot, evaluate: last && (o.evaluate ?? false), last });
    it = next;
  }
  // Nothing left to run (a job resumed at its end): one empty launch still collects the
  // state and evaluates, and tells the workers that the job is over.
  if (out.length === 0) out.push({ seq: 0, first: o.start, count: 0, snapshot: o.finalSnapshot ?? false, evaluate: o.evaluate ?? false, last: true });
  return out;
}

/**
 * When to send which launch. start() gives the launches to send at once; complete(seq)
 * records that every worker finished launch `seq` (in order) and gives the launches to send
 * now. Group mode keeps `ahead` launches beyond the running one in the workers' queues
 * (default 1: the next group); bsp mode sends one at a time.
 */
export class LaunchScheduler {
  readonly ahead: number;
  private sent = 0;
  private completed = 0;

  constructor(readonly launches: readonly PlannedLaunch[], readonly mode: ScheduleMode, ahead?: number) {
    this.ahead = mode === 'bsp' ? 0 : ahead ?? 1;
    checkInt('ahead', this.ahead, 0);
  }

  /** Launches sent so far. */
  get launched(): number {
    return this.sent;
  }

  /** Launches every worker has completed. */
  get done(): number {
    return this.completed;
  }

  get finished(): boolean {
    return this.completed === this.launches.length;
  }

  start(): PlannedLaunch[] {
    if (this.sent !== 0) throw new Error('LaunchScheduler.start: already started');
    return this.release();
  }

  complete(seq: number): PlannedLaunch[] {
    if (seq !== this.completed) throw new Error(`LaunchScheduler.complete: launch ${seq} completed, expected launch ${this.completed} next`);
    if (seq >= this.sent) throw new Error(`LaunchScheduler.complete: launch ${seq} was never sent`);
    this.completed++;
    return this.release();
  }

  /** Sends up to `ahead` launches beyond the first incomplete one. */
  private release(): PlannedLaunch[] {
    const limit = Math.min(this.launches.length, this.completed + 1 + this.ahead);
    const out = this.launches.slice(this.sent, limit);
    this.sent = Math.max(this.sent, limit);
    return out;
  }
}
