// backwardParameters' onParametersReady: every parameter's gradient range is reported exactly
// once, in backward order, and is already final when reported (what lets a cluster worker
// send it while earlier layers still compute).
import t from 'tap';
import { inceptionBlock, lenet5 } from '../../engine/models/index.js';
import { Linear, Sequential, View, type Module } from '../../engine/nn/index.js';
import { Rng, forEachBackend } from '../conformance/util.js';
import { randomTensor } from './gradcheck.js';

forEachBackend(t, async (t, be) => {
  const cases: [string, () => Module, number[]][] = [
    ['lenet5', () => lenet5(), [3, 1, 28, 28]],
    ['an Inception block (Concat of Sequentials)', () => new Sequential(inceptionBlock(8, 4, 3, 4, 2, 3, 2), new View(13 * 5 * 5), new Linear(325, 3)), [2, 8, 5, 5]],
    ['a lone Linear', () => new Linear(5, 4), [3, 5]],
  ];
  for (const [name, build, shape] of cases) {
    await t.test(name, async (t) => {
      const rng = new Rng(31);
      const m = build().reset(2).to(be);
      const flat = m.flatParameters();
      const x = randomTensor(rng, shape);
      const y = await m.forward(x);
      const gy = randomTensor(rng, [...y.shape]);
      const reports: { offset: number; length: number; snapshot: Float32Array }[] = [];
      m.zeroGradParameters();
      await m.backwardParameters(x, gy, {
        onParametersReady: (offset, length) => reports.push({ offset, length, snapshot: flat.grads.slice(offset, offset + length) }),
      });
      const covered = new Uint8Array(flat.length);
      for (const r of reports) for (let i = r.offset; i < r.offset + r.length; i++) covered[i]!++;
      t.ok(covered.every((c) => c === 1), `${reports.length} reports cover all ${flat.length} gradient values exactly once`);
      t.ok(reports.every((r) => r.snapshot.every((v, i) => Object.is(v, flat.grads[r.offset + i]))), 'each range was final when reported');
      if (name === 'lenet5') {
        t.ok(reports.every((r, i) => i === 0 || r.offset < reports[i - 1]!.offset), 'a Sequential reports from the last layer to the first');
      }
      m.dispose();
    });
  }
});
