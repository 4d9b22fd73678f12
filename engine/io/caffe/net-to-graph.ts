// A Caffe net as a LayerGraph. Caffe names blobs, not values: an in-place layer (top ==
// bottom, as ReLU usually is) overwrites its bottom blob. So the layers are first walked
// once to give every written blob version its own value name (the blob's name the first
// time, "blob@layer" after) and to count how often each value is read; the second walk
// translates the layers. The net's outputs are the values nobody reads, as in Caffe.
//
// Graph-level layer types live here: Input (net inputs), Split (aliases of its bottom),
// Silence (consumes, produces nothing) and Scale, which Squall supports only as the affine
// part of the BatchNorm whose output it alone reads, so it is folded into that node.
import { formatShape } from '../../tensor/tensor.js';
import { ModelFormatError, UnsupportedLayerError } from '../errors.js';
import type { GraphInput, GraphNode, LayerGraph } from '../graph/ir.js';
import type { LayerBlobs } from './layer-blobs.js';
import { LAYER_TRANSLATORS, LayerContext } from './layer-translators.js';
import type { BlobShapeMsg, LayerMsg, NetMsg } from './messages.js';
import { testPhaseLayers } from './net-layers.js';

interface PlannedLayer {
  layer: LayerMsg;
  /** Value names of its bottoms and tops. */
  inputs: string[];
  outputs: string[];
}

export function caffeNetToGraph(net: NetMsg, blobs: LayerBlobs, file: string): LayerGraph {
  return new NetTranslation(net, blobs, file).run();
}

class NetTranslation {
  private readonly inputs: GraphInput[] = [];
  private readonly plan: PlannedLayer[] = [];
  private readonly readers = new Map<string, number>();
  private readonly names = new Set<string>();
  private readonly alias = new Map<string, string>();
  private readonly shapes = new Map<string, number[] | null>();
  private readonly producer = new Map<string, GraphNode>();
  private readonly nodes: GraphNode[] = [];

  constructor(private readonly net: NetMsg, private readonly blobs: LayerBlobs, private readonly file: string) {}

  private at(layer: LayerMsg, detail: string): ModelFormatError {
    return new ModelFormatError(this.file, `layer "${layer.name}"`, `${layer.type}: ${detail}`);
  }

  run(): LayerGraph {
    const layers = testPhaseLayers(this.net);
    if (this.blobs.model) this.checkUniqueNames(layers);
    this.planValues(layers);
    for (const p of this.plan) this.translate(p);
    const outputs: string[] = [];
    for (const p of this.plan) {
      for (const v of p.outputs) {
        const r = this.resolve(v);
        if ((this.readers.get(v) ?? 0) === 0 && !outputs.includes(r)) outputs.push(r);
      }
    }
    if (outputs.length === 0) throw new ModelFormatError(this.file, 'net', 'has no layers that produce an output');
    return { source: this.file, format: 'caffe', inputs: this.inputs, nodes: this.nodes, outputs };
  }

  /** Weights are matched by layer name, so two layers of one name would be ambiguous. */
  private checkUniqueNames(layers: LayerMsg[]): void {
    const seen = new Set<string>();
    for (const l of layers) {
      if (seen.has(l.name)) throw this.at(l, 'two layers have this name, so the caffemodel\'s weights cannot be matched to them');
      seen.add(l.name);
    }
  }

  private fresh(blob: string, layerName: string): string {
    let name = this.names.has(blob) ? `${blob}@${layerName}` : blob;
    for (let i = 2; this.names.has(name); i++) name = `${blob}@${layerName}#${i}`;
    this.names.add(name);
    return name;
  }

  /** Per-sample shape (the batch dimension dropped) of a declared input shape. */
  private inputShape(where: string, dims: number[]): number[] {
    if (dims.length < 2 || dims.some((d) => !(Number.isInteger(d) && d >= 1))) {
      throw new ModelFormatError(this.file, where, `input shape ${formatShape(dims)} must have a batch and at least one more positive dimension`);
    }
    return dims.slice(1);
  }

  private declareInput(name: string, shape: number[] | null, where: string): string {
    if (this.names.has(name)) throw new ModelFormatError(this.file, where, `input "${name}" is declared twice`);
    this.names.add(name);
    this.inputs.push({ name, shape });
    this.shapes.set(name, shape);
    return name;
  }

  /** First walk: net inputs, Input layers, value names and read counts. */
  private planValues(layers: LayerMsg[]): void {
    const current = new Map<string, string>();
    const net = this.net;
    if (net.input_dim.length > 0 && net.input_dim.length !== 4 * net.input.length) {
      throw new ModelFormatError(this.file, 'net', `${net.input_dim.length} input_dim values for ${net.input.length} input(s): 4 per input are needed`);
    }
    for (const [i, name] of net.input.entries()) {
      const dims = net.input_shape[i]?.dim ?? (net.input_dim.length ? net.input_dim.slice(4 * i, 4 * i + 4) : null);
      current.set(name, this.declareInput(name, dims ? this.inputShape(`input "${name}"`, dims) : null, `input "${name}"`));
    }
    for (const layer of layers) {
      if (layer.type === 'Input') {
        const shapes: BlobShapeMsg[] = layer.input_param?.shape ?? [];
        if (shapes.length !== 1 && shapes.length !== layer.top.length) {
          throw this.at(layer, `${shapes.length} input shapes for ${layer.top.length} tops`);
        }
        for (const [i, top] of layer.top.entries()) {
          const dims = (shapes[i] ?? shapes[0])!.dim;
          current.set(top, this.declareInput(top, this.inputShape(`layer "${layer.name}"`, dims), `layer "${layer.name}"`));
        }
        continue;
      }
      const inputs = layer.bottom.map((b) => {
        const v = current.get(b);
        if (v === undefined) throw this.at(layer, `bottom "${b}" is not the top of an earlier layer nor a net input`);
        this.readers.set(v, (this.readers.get(v) ?? 0) + 1);
        return v;
      });
      const outputs = layer.top.map((t) => {
        const v = this.fresh(t, layer.name);
        current.set(t, v);
        return v;
      });
      this.plan.push({ layer, inputs, outputs });
    }
  }

  private resolve(v: string): string {
    return this.alias.get(v) ?? v;
  }

  /** Second walk: one layer. */
  private translate({ layer, inputs, outputs }: PlannedLayer): void {
    if (layer.type === 'Split') {
      for (const o of outputs) this.alias.set(o, this.resolve(inputs[0]!));
      return;
    }
    if (layer.type === 'Silence') return;
    const ins = inputs.map((v) => this.resolve(v));
    const ctx = new LayerContext(layer, ins.map((v) => this.shapes.get(v) ?? null), this.blobs, this.file);
    if (layer.type === 'Scale') {
      this.foldScale(ctx, inputs[0], outputs[0]);
      return;
    }
    const translator = LAYER_TRANSLATORS[layer.type];
    if (!translator) throw new UnsupportedLayerError(this.file, layer.name, layer.type || '(none)');
    const steps = translator(ctx);
    let from = ins;
    for (const [i, step] of steps.entries()) {
      const last = i === steps.length - 1;
      const output = last ? outputs[0]! : this.fresh(`${outputs[0]}:${step.suffix}`, layer.name);
      const node: GraphNode = {
        name: last ? layer.name : `${layer.name}:${step.suffix}`, sourceType: layer.type, layer: step.spec, inputs: from, output,
      };
      this.nodes.push(node);
      this.producer.set(output, node);
      this.shapes.set(output, step.shape);
      from = [output];
    }
  }

  private foldScale(ctx: LayerContext, input: string | undefined, output: string | undefined): void {
    const layer = ctx.layer;
    if (layer.bottom.length !== 1 || layer.top.length !== 1 || input === undefined || output === undefined) {
      throw ctx.unsupported('with other than one bottom and one top (a learned scale from a second bottom)');
    }
    const value = this.resolve(input);
    const bn = this.producer.get(value);
    if (!bn || bn.layer.op !== 'batchnorm' || bn.layer.affine || this.readers.get(input) !== 1) {
      throw ctx.unsupported('is supported only as the affine part of a BatchNorm layer (directly after it, the only reader of its output)');
    }
    const p = ctx.param('scale_param');
    if (p.axis !== 1 || p.num_axes !== 1) throw ctx.unsupported(`with axis ${p.axis} and num_axes ${p.num_axes} (only per-channel scaling is supported)`);
    const c = bn.layer.features;
    const w = ctx.weights([{ role: 'scale', shape: [c] }, ...(p.bias_term ? [{ role: 'bias', shape: [c] }] : [])]);
    bn.layer.affine = true;
    bn.layer.scale = w ? w[0]! : null;
    bn.layer.shift = w ? (p.bias_term ? w[1]! : new Float32Array(c)) : null;
    bn.name = `${bn.name}+${layer.name}`;
    this.alias.set(output, value);
  }
}
