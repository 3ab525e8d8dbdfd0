/** Images kept as uint8 NHWC (N×32×32×3) in memory; float batches are built on demand. */
export interface ImageSet {
  name: string;
  images: Uint8Array;
  labels: Uint8Array;
  /** CIFAR-100 coarse labels, when known. */
  coarseLabels?: Uint8Array;
  n: number;
  numClasses: number;
  height: number;
  width: number;
  channels: number;
}

export const DATASETS = ['cifar10', 'cifar100', 'synthetic'] as const;
export type DatasetName = (typeof DATASETS)[number];
