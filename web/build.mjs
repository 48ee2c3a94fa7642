// Builds the reader bundle into dist/: app.js (the page), decodeImageFrameWorker.js (the image
// loader's decoding worker) and the JPEG-LS codec's wasm. Codecs our data never uses (JPEG 2000,
// HTJ2K, JPEG XL, 8-bit baseline JPEG) are replaced by a module that fails with a clear message, so
// the bundle stays small; uncompressed, RLE, JPEG-LS and JPEG lossless decode.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

const dropped = /^@cornerstonejs\/codec-(openjpeg|openjph|libjxl|libjpeg-turbo-8bit)(\/.*)?$/;
const dropCodecs = {
  name: 'drop-codecs',
  setup(build) {
    build.onResolve({ filter: dropped }, (args) => ({ path: args.path, namespace: 'dropped' }));
    build.onLoad({ filter: /.*/, namespace: 'dropped' }, (args) => ({
      contents: `export default function(){ return Promise.reject(new Error(${JSON.stringify(
        'discus reader: codec not bundled: ' + args.path)})); }`,
      loader: 'js',
    }));
  },
};
// Node built-ins named by code paths that never run in a browser (emscripten's node branch,
// vtk.js's XML writer): empty stand-ins, so nothing node-only is bundled.
const nodeShims = {
  name: 'node-shims',
  setup(build) {
    build.onResolve({ filter: /^(fs|path|url|events|crypto)$/ }, (args) => ({ path: args.path, namespace: 'shim' }));
    build.onLoad({ filter: /.*/, namespace: 'shim' }, (args) => ({
      contents: args.path === 'events'
        ? 'class EventEmitter { on(){return this;} once(){return this;} off(){return this;} emit(){return false;} } module.exports = { EventEmitter };'
        : args.path === 'url' ? 'module.exports = { URL: globalThis.URL, URLSearchParams: globalThis.URLSearchParams };'
        : 'module.exports = {};',
      loader: 'js',
    }));
  },
};
rmSync('dist', { recursive: true, force: true });
mkdirSync('dist', { recursive: true });
const common = {
  bundle: true, format: 'esm', minify: true, target: 'es2022', logLevel: 'warning',
  plugins: [dropCodecs, nodeShims], legalComments: 'none',
  define: { 'process.env.NODE_ENV': '"production"' },
};
await esbuild.build({ ...common, entryPoints: ['src/app.js'], outfile: 'dist/app.js' });
await esbuild.build({
  ...common,
  entryPoints: ['node_modules/@cornerstonejs/dicom-image-loader/dist/esm/decodeImageFrameWorker.js'],
  outfile: 'dist/decodeImageFrameWorker.js',
});
copyFileSync('node_modules/@cornerstonejs/codec-charls/dist/charlswasm_decode.wasm', 'dist/charlswasm_decode.wasm');
copyFileSync('src/index.html', 'dist/index.html');
copyFileSync('src/reader.css', 'dist/reader.css');
