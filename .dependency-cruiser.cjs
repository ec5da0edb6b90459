// Layering of src/ (docs/design.md, "Checks"), checked by `npm run lint` and so by `npm test`.
// Layers, lowest first; a module may import its own layer and the layers below it, never above.
// Each rule is named after the layer that breaks it, so the error line says which rule of the
// design was broken: `error layer-models: src/models/x.ts → src/cache/y.ts`.

const LAYERS = [
  // errors.ts is the floor: every layer may throw a StreamlmError.
  { name: 'errors', path: '^src/errors\\.ts$', what: 'src/errors.ts' },
  // The tokenizers read tokenizer.json or a GGUF vocabulary and know no model: they sit beside the
  // runtime, as do the platform seams (files, workers, kernel bytes) that the runtime is built on.
  {
    name: 'runtime',
    path: ['^src/runtime/', '^src/platform/', '^src/tokenizer(-gguf)?\\.ts$'],
    what: 'src/runtime, src/platform, src/tokenizer.ts, src/tokenizer-gguf.ts',
  },
  { name: 'models', path: '^src/models/', what: 'src/models' },
  { name: 'cache', path: '^src/cache/', what: 'src/cache' },
  { name: 'session', path: '^src/(session|model|defaults|fingerprint)\\.ts$', what: 'src/session.ts, src/model.ts, src/defaults.ts, src/fingerprint.ts' },
  // Users of a loaded model; they may import each other (chat uses generate), never what is above.
  {
    name: 'apps',
    path: '^src/(generate|eval|chat|lowrank|export|speech)/',
    what: 'src/generate, src/eval, src/chat, src/lowrank, src/export, src/speech',
  },
  // The front ends and the package entry; nothing in the engine imports them (rule engine-knows-no-front-end).
  // src/browser is the browser package entry (streamlm/browser) and its page: a front end like the CLI.
  { name: 'front', path: ['^src/(server|cli|browser)/', '^src/index\\.ts$'], what: 'src/server, src/cli, src/browser, src/index.ts' },
];

const list = (p) => (Array.isArray(p) ? p : [p]);


function layerRules() {
  const rules = [];
  for (let i = 0; i < LAYERS.length - 1; i++) {
    const layer = LAYERS[i];
    const above = LAYERS.slice(i + 1);
    const allowed = LAYERS.slice(0, i + 1).map((l) => l.name).join(', ');
    rules.push({
      name: `layer-${layer.name}`,
      severity: 'error',
      comment:
        `${layer.what} (layer "${layer.name}") imports a higher layer ` +
        `(${above.map((l) => l.name).join(', ')}); it may import only ${allowed}. See docs/design.md.`,
      from: { path: list(layer.path) },
      to: {
        path: above.flatMap((l) => list(l.path)),
      },
    });
  }
  return rules;
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'Import cycle in src/ that exists at run time (ES modules half-initialised, TDZ errors).',
      from: {},
      // Type-only edges are erased by tsc, so `import type` back to an interface file (policy.ts
      // names the policies, each policy imports the CachePolicy type) is no cycle at run time.
      // Upward type imports are still caught by the layer rules.
      to: {
        circular: true,
        dependencyTypesNot: ['type-only'],
        viaOnly: { dependencyTypesNot: ['type-only'] },
      },
    },
    ...layerRules(),
    // Every module of src/ sits in a layer: a new file or folder is placed in LAYERS before it imports anything.
    {
      name: 'file-in-no-layer',
      severity: 'error',
      comment: 'A module of src/ in no layer imports something: add its folder to LAYERS in .dependency-cruiser.cjs and docs/design.md.',
      from: { path: '^src/', pathNot: [...LAYERS.flatMap((l) => list(l.path)), '^src/kernels/'] },
      to: {},
    },
    {
      name: 'family-knows-no-policy',
      severity: 'error',
      comment: 'A model family (src/models/families) imports a cache policy (src/cache): families never know the policy.',
      from: { path: '^src/models/families/' },
      to: { path: '^src/cache/' },
    },
    {
      name: 'policy-knows-no-family',
      severity: 'error',
      comment: 'A cache policy (src/cache) imports a model family (src/models/families): policies never know the family.',
      from: { path: '^src/cache/' },
      to: { path: '^src/models/(families/|registry\\.ts$)' },
    },
    {
      name: 'engine-knows-no-front-end',
      severity: 'error',
      comment: 'Only src/cli and src/index.ts may import src/server, and only src/cli may import itself.',
      from: { path: '^src/', pathNot: '^src/(server/|cli/|index\\.ts$)' },
      to: { path: '^src/(server|cli)/' },
    },
    {
      name: 'server-knows-no-cli',
      severity: 'error',
      comment: 'src/server or src/index.ts imports src/cli: the CLI is the top; nothing imports it.',
      from: { path: '^src/(server/|index\\.ts$)' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'engine-knows-no-http',
      severity: 'error',
      comment: 'Only src/server may use node:http/https/http2; the engine knows no HTTP.',
      from: { path: '^src/', pathNot: '^src/server/' },
      to: { dependencyTypes: ['core'], path: '^(node:)?(http|https|http2)$' },
    },
    {
      name: 'no-kernel-import',
      severity: 'error',
      comment: 'src/kernels is AssemblyScript, compiled on its own to build/kernels.wasm: TypeScript must not import it.',
      from: { pathNot: '^src/kernels/' },
      to: { path: '^src/kernels/' },
    },
    {
      name: 'kernels-stay-in-kernels',
      severity: 'error',
      comment: 'src/kernels (layer "kernels", AssemblyScript) imports something outside src/kernels.',
      from: { path: '^src/kernels/' },
      to: { pathNot: '^src/kernels/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing (a typo, or a package missing from package.json).',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'src-no-dev-dependency',
      severity: 'error',
      comment: 'src/ imports a devDependency: a user installing streamlm would not have it.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    // build/ and dist/ are outputs. node_modules stays in: src-no-dev-dependency needs its edges.
    exclude: { path: '^(dist|build)/' },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
