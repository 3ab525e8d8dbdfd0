/** The scalars of the TensorBoard fixture (scripts/fixtures/tensorboard-events.mjs writes them; the test again). */
export function fixtureScalars(): Array<{ step: number; wallTime: number; values: Record<string, number> }> {
  return Array.from({ length: 12 }, (_, i) => ({
    step: i + 1,
    wallTime: 1_700_000_000 + 0.25 * i,
    values: {
      'train/loss': 2.5 / (i + 1),
      'train/lr': 0.1 * Math.cos(i / 7),
      'train/epsilon': (8 / 255) * Math.min(1, (i + 1) / 6),
      'train/images_per_second': 1234.5 + i,
      // A negative value, a tiny one and a huge one: float32 throughout.
      'check/signed': -3.75 + i,
      'check/tiny': 1e-30 * (i + 1),
      'check/huge': 3e38,
    },
  }));
}
