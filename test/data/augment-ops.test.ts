/**
 * Each augmentation op against PIL / torchvision / the reference code's output on synthetic images
 * (test/fixtures/augment/ops.json.gz, made by scripts/fixtures/augment_ops.py), plus hand-computed identities.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  type Affine,
  affineBicubic,
  affineNearest,
  autocontrast,
  brightness,
  color,
  contrast,
  equalize,
  flipHorizontal,
  inverseAffine,
  invert,
  posterize,
  rotate,
  sharpness,
  solarize,
} from '../../src/data/augment-ops.js';
import {
  AUTOAUGMENT_CIFAR10,
  autoAugmentOp,
  type IdbhColorOp,
  ILDOONET_OPS,
  idbhColorOp,
  ildoonetOp,
  ildoonetValue,
  type TvOp,
  tvApplyOp,
  tvMagnitude,
} from '../../src/data/augment.js';

const SHAPE = { height: 32, width: 32, channels: 3 };
const SIZE = 32 * 32 * 3;

interface Case {
  op: string;
  image: number;
  params: Record<string, unknown>;
  /** The expected output, or `same`: the index of an earlier case with the same output. */
  out?: string;
  same?: number;
}
const fixture = JSON.parse(gunzipSync(readFileSync(new URL('../../../test/fixtures/augment/ops.json.gz', import.meta.url))).toString()) as {
  images: string[];
  cases: Case[];
};
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
const images = fixture.images.map(bytes);

/** Runs `fn(src, dst, scratch)` on the case's input and compares with its expected output, byte for byte. */
function check(c: Case, fn: (src: Uint8Array, dst: Uint8Array, scratch: Uint8Array) => void): void {
  const src = c.image >= 0 ? images[c.image]!.slice() : bytes(c.params.input as string);
  const before = src.slice();
  const dst = new Uint8Array(SIZE);
  fn(src, dst, new Uint8Array(SIZE));
  assert.deepEqual(src, before, `${c.op} ${JSON.stringify(c.params)}: the input was modified`);
  const want = bytes(c.out ?? fixture.cases[c.same!]!.out!);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < SIZE; i++) {
    if (dst[i] !== want[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  assert.equal(bad, 0, `${c.op} ${JSON.stringify(c.params)} image ${c.image}: ${bad} bytes differ, first at ${first}: got ${dst[first]}, PIL ${want[first]}`);
}

function cases(op: string): Case[] {
  const r = fixture.cases.filter((c) => c.op === op);
  assert.ok(r.length > 0, `fixture has no ${op} cases`);
  return r;
}

const num = (c: Case, k: string) => c.params[k] as number;

describe('augmentation ops match PIL', () => {
  it('invert, solarize, posterize', () => {
    for (const c of cases('invert')) check(c, (s, d) => invert(s, d));
    for (const c of cases('solarize')) check(c, (s, d) => solarize(s, d, num(c, 'threshold')));
    for (const c of cases('posterize')) check(c, (s, d) => posterize(s, d, num(c, 'bits')));
  });

  it('autocontrast and equalize (with a constant channel)', () => {
    for (const c of cases('autocontrast')) check(c, (s, d) => autocontrast(s, d, SHAPE));
    for (const c of cases('equalize')) check(c, (s, d) => equalize(s, d, SHAPE));
  });

  it('ImageEnhance Color, Contrast, Brightness, Sharpness at factors 0.1 .. 1.9', () => {
    for (const c of cases('color')) check(c, (s, d, sc) => color(s, d, SHAPE, num(c, 'factor'), sc));
    for (const c of cases('contrast')) check(c, (s, d, sc) => contrast(s, d, SHAPE, num(c, 'factor'), sc));
    for (const c of cases('brightness')) check(c, (s, d, sc) => brightness(s, d, num(c, 'factor'), sc));
    for (const c of cases('sharpness')) check(c, (s, d, sc) => sharpness(s, d, SHAPE, num(c, 'factor'), sc));
  });

  it('affine transforms: nearest (translations, shears), bicubic shears, rotations', () => {
    const fill = (c: Case) => [num(c, 'fill'), num(c, 'fill'), num(c, 'fill')] as const;
    for (const c of cases('affine_nearest')) check(c, (s, d) => affineNearest(s, d, SHAPE, c.params.m as unknown as Affine, fill(c)));
    for (const c of cases('affine_bicubic')) check(c, (s, d) => affineBicubic(s, d, SHAPE, c.params.m as unknown as Affine, fill(c)));
    for (const c of cases('rotate')) check(c, (s, d) => rotate(s, d, SHAPE, num(c, 'angle'), fill(c)));
  });

  it("torchvision's F.affine and F.rotate on a PIL image", () => {
    for (const c of cases('tv_affine')) {
      const p = c.params as { angle: number; translate: [number, number]; scale: number; shear: [number, number]; center: [number, number] | null };
      const m = inverseAffine(p.center ?? [16, 16], p.angle, p.translate, p.scale, p.shear);
      check(c, (s, d) => affineNearest(s, d, SHAPE, m, [0, 0, 0]));
    }
    for (const c of cases('tv_rotate')) check(c, (s, d) => rotate(s, d, SHAPE, num(c, 'angle'), [0, 0, 0]));
  });
});

describe('policy ops match the reference code', () => {
  it("torchvision RandAugment's 14 ops at magnitude 14 of 31, both signs", () => {
    for (const c of cases('tv_randaugment_op')) {
      const name = c.params.name as TvOp;
      const { magnitude } = tvMagnitude(name, 31, 14, SHAPE);
      check(c, (s, d, sc) => tvApplyOp(name, num(c, 'sign') * magnitude, [0, 0, 0], s, d, SHAPE, sc));
    }
  });

  it("torchvision AutoAugment(CIFAR10)'s ops at every (op, bin) of its table, 10 bins, fill 128, both signs", () => {
    const table = new Set(AUTOAUGMENT_CIFAR10.flatMap(([o1, , b1, o2, , b2]) => [`${o1}/${b1}`, `${o2}/${b2}`]));
    const seen = new Set<string>();
    for (const c of cases('tv_autoaugment_op')) {
      const name = c.params.name as TvOp;
      seen.add(name);
      const bin = (c.params.bin as number | null) ?? 0;
      const { magnitude } = tvMagnitude(name, 10, bin, SHAPE);
      check(c, (s, d, sc) => tvApplyOp(name, num(c, 'sign') * magnitude, [128, 128, 128], s, d, SHAPE, sc));
    }
    // Every op of the policy appears (torchvision spells them capitalised).
    assert.equal(seen.size, new Set([...table].map((k) => k.split('/')[0])).size);
  });

  it("DKL's CIFAR10Policy: every sub-policy with both ops applied, signs + and −, and with none", () => {
    const tmp = new Uint8Array(SIZE);
    for (const c of cases('autoaugment_sub')) {
      const [op1, p1, b1, op2, p2, b2] = AUTOAUGMENT_CIFAR10[num(c, 'index')]!;
      const sign = num(c, 'sign') as 1 | -1;
      check(c, (s, d, sc) => {
        d.set(s);
        if (p1 > 0) {
          autoAugmentOp(op1, b1, sign, d, tmp, SHAPE, sc);
          d.set(tmp);
        }
        if (p2 > 0) {
          autoAugmentOp(op2, b2, sign, d, tmp, SHAPE, sc);
          d.set(tmp);
        }
      });
    }
    assert.equal(cases('autoaugment_sub_off').length, 25);
    for (const c of cases('autoaugment_sub_off')) check(c, (s, d) => d.set(s));
  });

  it("ildoonet RandAugment's 16 ops at m = 14 (DM-Improves-AT's randaugment), sign kept and flipped", () => {
    for (const c of cases('ildoonet_op')) {
      const name = ILDOONET_OPS[num(c, 'index')]!;
      assert.equal(name, c.params.name);
      const flip = c.params.flip as boolean;
      // The fixture's np.random.uniform(w) returned 0.3·w (kept) or 0.8·w (flipped).
      const centre: [number, number] = [(flip ? 0.8 : 0.3) * 32, (flip ? 0.8 : 0.3) * 32];
      check(c, (s, d, sc) => ildoonetOp(name, ildoonetValue(name, 14), flip, centre, s, d, SHAPE, sc));
    }
  });

  it("IDBH's ColorShape transforms (DM-Improves-AT's idbh.py) with given strengths", () => {
    const fr = Math.fround;
    for (const c of cases('idbh_colorshape')) {
      const [op, lo, hi] = c.params.trans as [IdbhColorOp, number?, number?];
      const rand = (c.params.rand as number[] | undefined) ?? [];
      const randint = (c.params.randint as number[] | undefined) ?? [];
      let strength = 0;
      let shearX = true;
      // The reference draws in float32 tensors: rand·(hi − lo) + lo.
      if (op === 'rotate') strength = randint[0]! * (randint[1] ? -1 : 1);
      else if (lo !== undefined && hi !== undefined) strength = fr(fr(fr(rand[0]!) * fr(hi - lo)) + fr(lo));
      if (op === 'shear') {
        strength *= randint[0] ? -1 : 1;
        shearX = randint[1] === 1;
      }
      check(c, (s, d, sc) => idbhColorOp(op, strength, shearX, s, d, SHAPE, sc));
    }
  });
});

describe('augmentation ops: identities', () => {
  const img = images[0]!;
  const run = (fn: (s: Uint8Array, d: Uint8Array) => void) => {
    const d = new Uint8Array(SIZE);
    fn(img, d);
    return d;
  };
  it('magnitude 0 is the identity: factor 1 enhancements, solarize 256, posterize 8, rotate 0, zero shear/translation', () => {
    const sc = new Uint8Array(SIZE);
    assert.deepEqual(
      run((s, d) => color(s, d, SHAPE, 1, sc)),
      img,
    );
    assert.deepEqual(
      run((s, d) => contrast(s, d, SHAPE, 1, sc)),
      img,
    );
    assert.deepEqual(
      run((s, d) => brightness(s, d, 1, sc)),
      img,
    );
    assert.deepEqual(
      run((s, d) => sharpness(s, d, SHAPE, 1, sc)),
      img,
    );
    assert.deepEqual(
      run((s, d) => solarize(s, d, 256)),
      img,
    );
    assert.deepEqual(
      run((s, d) => posterize(s, d, 8)),
      img,
    );
    assert.deepEqual(
      run((s, d) => rotate(s, d, SHAPE, 0, [1, 2, 3])),
      img,
    );
    assert.deepEqual(
      run((s, d) => rotate(s, d, SHAPE, 360, [1, 2, 3])),
      img,
    );
    assert.deepEqual(
      run((s, d) => affineNearest(s, d, SHAPE, [1, 0, 0, 0, 1, 0], [1, 2, 3])),
      img,
    );
    assert.deepEqual(
      run((s, d) => affineNearest(s, d, SHAPE, inverseAffine([16, 16], 0, [0, 0], 1, [0, 0]), [1, 2, 3])),
      img,
    );
    for (const name of ['ShearX', 'TranslateY', 'Rotate', 'Color', 'Sharpness'] as const) {
      assert.deepEqual(
        run((s, d) => tvApplyOp(name, 0, [9, 9, 9], s, d, SHAPE, sc)),
        img,
        name,
      );
    }
  });
  it('twice is the identity: flip, invert; rotate 90 is a pixel permutation', () => {
    const flip2 = run((s, d) => {
      const t = new Uint8Array(SIZE);
      flipHorizontal(s, t, SHAPE);
      flipHorizontal(t, d, SHAPE);
    });
    assert.deepEqual(flip2, img);
    assert.notDeepEqual(
      run((s, d) => flipHorizontal(s, d, SHAPE)),
      img,
    );
    assert.deepEqual(
      run((s, d) => {
        const t = new Uint8Array(SIZE);
        invert(s, t);
        invert(t, d);
      }),
      img,
    );
    // Rotation by 90° about the centre of an even-sized image permutes pixels exactly: out(x, y) = in(y, W−1−x)-ish.
    const r = run((s, d) => rotate(s, d, SHAPE, 90, [0, 0, 0]));
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        // PIL's ROTATE_90 (counter-clockwise): out[y][x] = in[x][W−1−y].
        const o = (y * 32 + x) * 3;
        const s = (x * 32 + (31 - y)) * 3;
        assert.deepEqual([r[o], r[o + 1], r[o + 2]], [img[s], img[s + 1], img[s + 2]], `rotate 90 at (${y}, ${x})`);
      }
    }
  });
  it('brightness 0 is black; color 0 is grey (equal channels); posterize 1 keeps only the top bit', () => {
    const sc = new Uint8Array(SIZE);
    assert.ok(run((s, d) => brightness(s, d, 0, sc)).every((v) => v === 0));
    const g = run((s, d) => color(s, d, SHAPE, 0, sc));
    for (let i = 0; i < SIZE; i += 3) assert.ok(g[i] === g[i + 1] && g[i] === g[i + 2]);
    assert.ok(run((s, d) => posterize(s, d, 1)).every((v) => v === 0 || v === 128));
  });
});
