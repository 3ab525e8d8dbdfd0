/**
 * The functional graph of a zoo model as a flat list (topological order, one call per layer), so our own
 * executors (training forward, inference) can walk it, fuse neighbouring layers and free each activation after
 * its last reader instead of keeping every intermediate until the end of the pass as `model.apply` does.
 */
import type * as tf from '@tensorflow/tfjs';

export interface GraphNode {
  layer: tf.layers.Layer;
  /** Indices (into the node list) of the nodes whose outputs this layer reads; -1 is the model input. */
  inputs: number[];
  /** Indices of the nodes that read this node's output. */
  readers: number[];
}

export interface LayerGraph {
  nodes: GraphNode[];
  /** Index of the node whose output is the model's output. */
  output: number;
}

const cache = new WeakMap<tf.LayersModel, LayerGraph>();

/** The graph of a single-input, single-output functional model whose layers are each called once. */
export function layerGraph(model: tf.LayersModel): LayerGraph {
  const hit = cache.get(model);
  if (hit) return hit;
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const index = new Map<tf.layers.Layer, number>(layers.map((l, i) => [l, i]));
  const nodes: GraphNode[] = layers.map((layer) => {
    if (layer.inboundNodes.length !== 1) throw new Error(`layerGraph: layer ${layer.name} is called ${layer.inboundNodes.length} times`);
    const inputs = layer.inboundNodes[0]!.inboundLayers.map((l) => index.get(l) ?? -1);
    return { layer, inputs, readers: [] };
  });
  nodes.forEach((n, i) => {
    for (const j of n.inputs) {
      if (j >= i) throw new Error(`layerGraph: layers of ${model.name} are not in topological order`);
      if (j >= 0) nodes[j]!.readers.push(i);
    }
  });
  if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new Error(`layerGraph: ${model.name} must have one input and one output`);
  const outLayer = model.outputLayers[0]!;
  const graph = { nodes, output: index.get(outLayer)! };
  cache.set(model, graph);
  return graph;
}

/** The layer's class name ('Conv2D', 'BatchNormalization', ...). */
export const kind = (n: GraphNode): string => n.layer.getClassName();

/** The activation of an Activation layer ('relu', 'swish', ...). */
export function activationOf(layer: tf.layers.Layer): string {
  return String((layer.getConfig() as { activation?: unknown }).activation);
}
