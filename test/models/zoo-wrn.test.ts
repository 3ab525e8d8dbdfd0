import { testReferenceCounts } from './zoo-fixtures.js';

// Parameter counts of the PyTorch reference implementations (CIFAR heads), BN running statistics excluded.
testReferenceCounts([
  ['wrn-28-10', 10, 36_479_194],
  ['wrn-28-10-swish', 10, 36_479_194],
  ['wrn-34-10', 10, 46_160_474],
  ['wrn-34-10', 100, 46_218_164],
]);
