/**
 * Which PyTorch module each tfjs layer is, per architecture.
 *
 * The convention (shared by every model family): a tfjs layer named after the PyTorch module path (layer
 * `layer1.0.conv1` ↔ keys `layer1.0.conv1.weight`, ...) needs no table at all: DEFAULT_MAPPING is the identity.
 * The architectures written before that convention keep their layer names (old checkpoints' model.json carries
 * them) and get an explicit table below, written against the official code the published checkpoints come from.
 * A layer name that no table entry matches falls through to the identity, so a model whose layers were renamed to
 * module paths keeps working; a name that is neither shows up as a missing/unexpected key, never silently.
 *
 * How the tensors inside a layer correspond (convert.ts): conv kernel HWIO ↔ OIHW, depthwise kernel
 * [kh, kw, C, m] ↔ [C·m, 1, kh, kw], dense kernel [in, out] ↔ weight [out, in], BN gamma/beta/moving_mean/
 * moving_variance ↔ weight/bias/running_mean/running_var (num_batches_tracked ignored on import, 0 on export).
 */
import { NORMALIZATION_LAYER } from '../models/archs.js';
import { parseWrnArch } from '../models/types.js';

export interface TorchMapping {
  /** The PyTorch module path of a tfjs layer, or null when it has no PyTorch counterpart (fixed input normalisation). */
  modulePath(layerName: string): string | null;
  /** PyTorch keys that carry nothing the model needs (besides `*.num_batches_tracked`, always ignored). */
  ignoreKey?(key: string): boolean;
}

/** Layer name = PyTorch module path. */
export const DEFAULT_MAPPING: TorchMapping = { modulePath: (name) => (name === NORMALIZATION_LAYER ? null : name) };

type Rule = [RegExp, string];

/** A mapping from rewrite rules (first match wins, `$1`.. from the match); unmatched names map to themselves. */
export function ruleMapping(rules: readonly Rule[], ignoreKey?: (key: string) => boolean): TorchMapping {
  return {
    modulePath(name) {
      if (name === NORMALIZATION_LAYER) return null;
      for (const [re, to] of rules) if (re.test(name)) return name.replace(re, to);
      return name;
    },
    ignoreKey,
  };
}

/** TRADES / DKL / AWP `WideResNet` (block{1,2,3}.layer.{i}.*); some TRADES checkpoints also carry unused sub_block1. */
const TRADES_WRN = ruleMapping(
  [
    [/^block(\d+)_(\d+)_(bn1|conv1|bn2|conv2)$/, 'block$1.layer.$2.$3'],
    [/^block(\d+)_(\d+)_shortcut$/, 'block$1.layer.$2.convShortcut'],
    [/^bn_final$/, 'bn1'],
  ],
  (key) => key.startsWith('sub_block'),
);

/** DeepMind / Wang et al. 2023 `WideResNet` (Swish); mean/std are plain attributes there, not state_dict entries. */
const DM_WRN = ruleMapping([
  [/^conv1$/, 'init_conv'],
  [/^block1_(\d+)_bn1$/, 'layer.0.block.$1.batchnorm_0'],
  [/^block2_(\d+)_bn1$/, 'layer.1.block.$1.batchnorm_0'],
  [/^block3_(\d+)_bn1$/, 'layer.2.block.$1.batchnorm_0'],
  [/^block1_(\d+)_conv1$/, 'layer.0.block.$1.conv_0'],
  [/^block2_(\d+)_conv1$/, 'layer.1.block.$1.conv_0'],
  [/^block3_(\d+)_conv1$/, 'layer.2.block.$1.conv_0'],
  [/^block1_(\d+)_bn2$/, 'layer.0.block.$1.batchnorm_1'],
  [/^block2_(\d+)_bn2$/, 'layer.1.block.$1.batchnorm_1'],
  [/^block3_(\d+)_bn2$/, 'layer.2.block.$1.batchnorm_1'],
  [/^block1_(\d+)_conv2$/, 'layer.0.block.$1.conv_1'],
  [/^block2_(\d+)_conv2$/, 'layer.1.block.$1.conv_1'],
  [/^block3_(\d+)_conv2$/, 'layer.2.block.$1.conv_1'],
  [/^block1_(\d+)_shortcut$/, 'layer.0.block.$1.shortcut'],
  [/^block2_(\d+)_shortcut$/, 'layer.1.block.$1.shortcut'],
  [/^block3_(\d+)_shortcut$/, 'layer.2.block.$1.shortcut'],
  [/^bn_final$/, 'batchnorm'],
  [/^fc$/, 'logits'],
]);

/** Rice et al. / AWP `PreActResNet18` (shortcut = Sequential(conv)). */
const PREACT = ruleMapping([
  [/^layer(\d)_(\d+)_(bn1|conv1|bn2|conv2)$/, 'layer$1.$2.$3'],
  [/^layer(\d)_(\d+)_shortcut$/, 'layer$1.$2.shortcut.0'],
  [/^bn_final$/, 'bn'],
  [/^fc$/, 'linear'],
]);

/** TRADES / Madry CIFAR `ResNet18` (shortcut = Sequential(conv, BN)). */
const RESNET = ruleMapping([
  [/^layer(\d)_(\d+)_(bn1|conv1|bn2|conv2)$/, 'layer$1.$2.$3'],
  [/^layer(\d)_(\d+)_shortcut$/, 'layer$1.$2.shortcut.0'],
  [/^layer(\d)_(\d+)_shortcut_bn$/, 'layer$1.$2.shortcut.1'],
  [/^fc$/, 'linear'],
]);

/** Family of each zoo architecture (reduced-size test builds of a family share its mapping). */
export type Family = 'trades-wrn' | 'dm-wrn' | 'preact-resnet' | 'dm-preact-resnet' | 'resnet' | 'default';

const FAMILY_MAPPINGS: Record<Family, TorchMapping> = {
  'trades-wrn': TRADES_WRN,
  'dm-wrn': DM_WRN,
  'preact-resnet': PREACT,
  // DeepMind's PreActResNet (RobustBench DMPreActResNet): layers named by module path.
  'dm-preact-resnet': DEFAULT_MAPPING,
  resnet: RESNET,
  default: DEFAULT_MAPPING,
};

const ARCH_FAMILY: Record<string, Family> = {
  'wrn-34-10': 'trades-wrn',
  'wrn-28-10': 'trades-wrn',
  'wrn-28-10-swish': 'dm-wrn',
  'preact-resnet-18': 'preact-resnet',
  'dm-preact-resnet-18': 'dm-preact-resnet',
  'resnet-18': 'resnet',
};

/** The mapping of an architecture name; any architecture without a table uses the layer-name = module-path default. */
export function mappingFor(archOrFamily: string): TorchMapping {
  const family = ARCH_FAMILY[archOrFamily] ?? parseWrnArch(archOrFamily)?.family ?? 'default';
  return FAMILY_MAPPINGS[archOrFamily as Family] ?? FAMILY_MAPPINGS[family];
}

/** Architecture and class count recognised from a state_dict's keys and shapes (null: not one we know). */
export function recogniseArch(shapes: ReadonlyMap<string, readonly number[]>): { arch: string; numClasses: number } | { problem: string } {
  const has = (k: string): boolean => shapes.has(k);
  const count = (re: RegExp): number => new Set([...shapes.keys()].map((k) => re.exec(k)?.[1]).filter((x) => x !== undefined)).size;
  const head = (k: string): number => shapes.get(k)![0]!;
  const wrn = (blocksPerGroup: number, firstWidth: number, head: string, suffix: string) => {
    const depth = 6 * blocksPerGroup + 4;
    const widen = firstWidth / 16;
    const arch = `wrn-${depth}-${widen}${suffix}`;
    return { arch, numClasses: shapes.get(head)![0]! };
  };
  if (has('init_conv.weight') && has('logits.weight') && has('layer.0.block.0.conv_0.weight')) {
    return wrn(count(/^layer\.0\.block\.(\d+)\.conv_0\.weight$/), shapes.get('layer.0.block.0.conv_0.weight')![0]!, 'logits.weight', '-swish');
  }
  if (has('block1.layer.0.conv1.weight') && has('fc.weight')) {
    return wrn(count(/^block1\.layer\.(\d+)\.conv1\.weight$/), shapes.get('block1.layer.0.conv1.weight')![0]!, 'fc.weight', '');
  }
  if (has('conv_2d.weight') && has('layer_0.0.conv_2d_1.weight') && has('logits.weight'))
    return { arch: 'dm-preact-resnet-18', numClasses: head('logits.weight') };
  if (has('linear.weight') && has('bn.weight') && has('layer1.0.bn1.weight')) return { arch: 'preact-resnet-18', numClasses: head('linear.weight') };
  if (has('linear.weight') && has('bn1.weight') && has('layer1.0.conv1.weight')) return { arch: 'resnet-18', numClasses: head('linear.weight') };
  if (has('conv1.weight') && has('conv3.weight') && has('bn3.weight') && has('fc.weight')) return { arch: 'small-cnn', numClasses: head('fc.weight') };
  const first = [...shapes.keys()].slice(0, 4).join(', ');
  return { problem: `cannot recognise the architecture from its keys (first: ${first}); pass --arch` };
}
