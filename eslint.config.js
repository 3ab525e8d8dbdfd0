// ESLint: typescript-eslint's recommended rules, plus the module boundaries of docs/ARCHITECTURE.md as
// no-restricted-imports rules (one block per module: what it may NOT import). Formatting is prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const MODULES = ['losses', 'data', 'models', 'attacks', 'checkpoint', 'config', 'train', 'eval', 'interop', 'cli', 'collective'];

/** A rule forbidding imports of the listed sibling modules from a file inside src/<module>/. */
function boundary(module, forbidden, extra = []) {
  return {
    files: [`src/${module}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...forbidden.map((m) => ({ group: [`../${m}/*`, `../${m}`], message: `src/${module} may not import src/${m} (docs/ARCHITECTURE.md)` })),
            ...extra,
          ],
          paths: module === 'cli' ? [] : [{ name: 'cli-progress', message: 'progress bars belong to src/cli (fed by the library hooks)' }],
        },
      ],
    },
  };
}

/** config may read the name lists of the domain modules (their types.ts / names.ts), nothing else of them. */
const namesOnly = (m, files) => ({
  group: [`../${m}/*`, ...files.map((f) => `!../${m}/${f}`)],
  message: `src/config may only import the name lists of src/${m} (${files.join(', ')})`,
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', 'scripts/**', 'configs/**', 'bench/reference/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      // `_`-prefixed names are deliberately unused (destructuring a field away, an interface-mandated parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // Allowed where a shape check follows the cast (JSON files): typed as unknown first everywhere else.
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  // Root modules (src/*.ts, except the public index) import no module directory.
  {
    files: ['src/*.ts'],
    ignores: ['src/index.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: MODULES.map((m) => `./${m}/*`),
              message: 'root modules (errors, rng, log, backend, files, input, choices, tensorboard) depend on no module directory',
            },
          ],
          paths: [{ name: 'cli-progress', message: 'progress bars belong to src/cli' }],
        },
      ],
    },
  },
  boundary('losses', ['data', 'models', 'attacks', 'checkpoint', 'config', 'train', 'eval', 'interop', 'cli', 'collective']),
  boundary('data', ['losses', 'models', 'attacks', 'checkpoint', 'config', 'train', 'eval', 'interop', 'cli', 'collective']),
  boundary('models', ['losses', 'data', 'attacks', 'checkpoint', 'config', 'train', 'eval', 'interop', 'cli', 'collective']),
  boundary('attacks', ['data', 'models', 'checkpoint', 'config', 'train', 'eval', 'interop', 'cli']),
  boundary('checkpoint', ['losses', 'data', 'attacks', 'train', 'eval', 'interop', 'cli']),
  boundary(
    'config',
    ['losses', 'checkpoint', 'eval', 'interop', 'cli'],
    [namesOnly('data', ['types.js']), namesOnly('models', ['types.js']), namesOnly('attacks', ['types.js']), namesOnly('train', ['names.js'])],
  ),
  boundary('train', ['eval', 'cli']),
  boundary('eval', ['train', 'cli', 'losses']),
  // PyTorch state_dicts in and out: the model zoo and checkpoints, nothing of training, attacks or evaluation.
  // From data only the downloader (RobustBench files are fetched with the CIFAR download's code).
  boundary('interop', ['losses', 'attacks', 'config', 'train', 'eval', 'cli'], [namesOnly('data', ['download.js'])]),
  boundary('cli', []),
  // TensorFlow's collective runtime (cluster variables, ServerDef, the patched binding): root modules only.
  boundary('collective', ['losses', 'data', 'models', 'attacks', 'checkpoint', 'config', 'train', 'eval', 'interop', 'cli']),
  // The CIFAR download keeps its byte-progress bar for now (see docs/ARCHITECTURE.md, "known exceptions").
  {
    files: ['src/data/download.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../models/*', '../attacks/*', '../checkpoint/*', '../config/*', '../train/*', '../eval/*', '../interop/*', '../cli/*', '../losses/*'] },
          ],
        },
      ],
    },
  },
);
