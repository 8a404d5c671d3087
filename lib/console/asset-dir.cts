// CommonJS in both builds (a .cts file), so `__dirname` is this file's folder whether the package
// was loaded by `import` or by `require` (tsc refuses `import.meta` in the CommonJS build). The
// page's files sit beside it in assets/: in lib/ as written, in dist/esm and dist/cjs copied there
// by the build.
import path = require('node:path')

const assetDir = { ASSET_DIR: path.join(__dirname, 'assets') }
export = assetDir
