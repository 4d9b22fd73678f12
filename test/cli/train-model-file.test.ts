// `squall train --model-file` end to end in a child process: PyTorch's LeNet-5 written as a
// Torch7 file (which does not declare its input shape: Fashion-MNIST's is taken) is
// fine-tuned by 2 in-process workers, and the checkpoint it writes is a Squall file that
// loads with its architecture. Oracles: the imported model (the weights must have moved
// from it) and the library's own evaluation of the saved file (it must give the accuracy
// the command printed). A file that is not a model is refused, naming it.
import { join } from 'node:path';
import t from 'tap';
import { loadBackend } from '../../engine/backends/registry.js';
import { readParameters } from '../../engine/cluster/job.js';
import { fashionMnistAvailable, loadFashionMnist, meanStd, normalise } from '../../engine/data/index.js';
import { loadModel } from '../../engine/io/index.js';
import { ClassNLLCriterion } from '../../engine/nn/index.js';
import { evaluate } from '../../engine/train/evaluate.js';
import { scratchDir } from '../io/checkpoint-util.js';
import { FIXTURES } from '../io/onnx-util.js';
import { testBackends } from '../cluster/pm-harness.js';
import { squall, stopSquallProcesses } from '../cluster/squall-cli.js';

t.teardown(stopSquallProcesses);
const t7 = join(FIXTURES, 'lenet5-torch7.t7');

t.test('fine-tune a Torch7 LeNet-5 with 2 workers, then load the checkpoint', { skip: fashionMnistAvailable() ? false : 'Fashion-MNIST is not installed' }, async (t) => {
  const dir = scratchDir(t, 'model-file');
  const ck = join(dir, 'fine-tuned.sqck');
  const r = await squall(['train', '--model-file', t7, '--workers', '2', '--transport', 'inproc', '--epochs', '1', '--max-iterations', '40',
    '--limit', '5120', '--checkpoint', ck]);
  t.equal(r.code, 0, `exit 0${r.code ? ` (stderr: ${r.err.trim()})` : ''}`);
  t.match(r.err, /lenet5-torch7\.t7 \(torch7\): 22278 parameters, input 1x28x28, 10 classes/, 'the command says what it loaded');
  const printed = /test accuracy ([\d.]+)%/.exec(r.out);
  t.ok(printed, `the command printed a test accuracy: ${r.out.trim()}`);

  const start = await loadModel(t7, { inputShape: [1, 28, 28] });
  const saved = await loadModel(ck);
  t.equal(saved.format, 'squall', 'the checkpoint is a Squall file');
  t.same(saved.inputShape, [1, 28, 28], 'with its input shape');
  const a = readParameters(start.model);
  const b = readParameters(saved.model);
  t.equal(b.length, a.length, 'the same parameters');
  t.ok(a.some((v, i) => v !== b[i]), 'the weights moved from the imported ones');

  const backend = loadBackend(testBackends()[0]!.name);
  const train = loadFashionMnist({ split: 'train' });
  const test = loadFashionMnist({ split: 'test' });
  const { mean, std } = meanStd(train);
  normalise(test, mean, std);
  const e = await evaluate(saved.model.to(backend), test, new ClassNLLCriterion());
  t.ok(Math.abs(100 * e.accuracy - Number(printed![1])) < 0.011, `the saved model's accuracy ${(100 * e.accuracy).toFixed(2)}% is the printed one (${printed![1]}%)`);
  saved.model.dispose();
});

t.test('a --model-file that is not a model is refused, naming it', async (t) => {
  const r = await squall(['train', '--model-file', join(FIXTURES, 'lenet5.json'), '--max-iterations', '1']);
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.err, /lenet5\.json/, `the message names the file: ${r.err.trim().split('\n').at(-1)}`);
});
